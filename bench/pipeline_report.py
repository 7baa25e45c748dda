"""The pipeline benchmark's tables (Markdown, as the README shows them) and its plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LATENCIES = (
    ("receive_to_redis", "receive → Redis"),
    ("tick_to_sqlite", "tick → SQLite"),
    ("tick_to_analytics", "tick → analytics"),
)
SERVICES = ("ingestor", "writer", "analytics", "dashboard")
CPU = ("ingestor", "writer", "analytics", "redis", "feed", "bench")
STYLES = ("o-", "s--", "^-.", "v:")
"""One per stage, so that stages that achieved the same rate stay visible on top of another."""
STAGES = (
    ("delivered_per_s", "delivered by the feed"),
    ("published_per_s", "published to Redis"),
    ("stored_per_s", "stored in SQLite"),
    ("analytics_read_per_s", "read by analytics"),
)


def _n(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ms(value: float) -> str:
    if value != value:  # NaN: nothing measured
        return "n/a"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table with the first column and every numeric one right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def throughput_table(rows: Sequence[dict[str, Any]]) -> str:
    header = [
        "offered/s", "delivered/s", "published/s", "stored/s", "analytics read/s", "sustained",
        "zero loss", "ingestor % of receive+parse", "Redis % of XADD (server / client loop)",
        "writer % of SQLite insert",
    ]  # fmt: skip
    cells = [
        [
            *(_n(r[k]) for k in ("offered_per_s", *(key for key, _ in STAGES))),
            _yes(r["sustained"]),
            _yes(r["zero_loss"]),
            f"{r['ingestor_pct_of_receive_parse']:.0f}%",
            f"{r['redis_pct_of_server_xadd']:.0f}% / {r['redis_pct_of_client_xadd']:.0f}%",
            f"{r['writer_pct_of_sqlite_insert']:.0f}%",
        ]
        for r in rows
    ]
    return markdown(header, cells)


def latency_table(rows: Sequence[dict[str, Any]]) -> str:
    header = [
        "offered/s", *(f"{label} p50 / p99 ms" for _, label in LATENCIES),
        "RSS MB ingestor / writer / analytics / dashboard", "Redis used / RSS MB",
        "CPU ingestor / writer / analytics / Redis / feed / probes",
    ]  # fmt: skip
    cells = [
        [
            _n(r["offered_per_s"]),
            *(f"{_ms(r[f'{key}_p50_ms'])} / {_ms(r[f'{key}_p99_ms'])}" for key, _ in LATENCIES),
            " / ".join(f"{r[f'rss_mb_{n}']:.0f}" for n in SERVICES),
            f"{r['redis_used_memory_mb']:.0f} / {r['rss_mb_redis']:.0f}",
            " / ".join(f"{r[f'cpu_{n}']:.2f}" for n in CPU),
        ]
        for r in rows
    ]
    return markdown(header, cells)


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Latency p50/p99 (log scale) and achieved throughput against the offered rate."""
    offered = [r["offered_per_s"] for r in rows]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110)
    for index, (key, label) in enumerate(LATENCIES):
        color = f"C{index}"
        latency.plot(offered, [r[f"{key}_p99_ms"] for r in rows], "o-", color=color,
                     label=f"{label} p99")  # fmt: skip
        latency.plot(offered, [r[f"{key}_p50_ms"] for r in rows], "s--", color=color,
                     alpha=0.6, label=f"{label} p50")  # fmt: skip
    latency.set_yscale("log")
    latency.set_xlabel("offered ticks/s")
    latency.set_ylabel("latency, ms (log)")
    latency.set_title("Latency")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(fontsize=7)
    for index, (key, label) in enumerate(STAGES):
        throughput.plot(offered, [r[key] for r in rows], STYLES[index], color=f"C{index}",
                        label=label, linewidth=3 - index * 0.6, alpha=0.8)  # fmt: skip
    throughput.plot(offered, offered, ":", color="grey", label="offered")
    for r in rows:
        if not (r["sustained"] and r["zero_loss"]):
            throughput.axvline(r["offered_per_s"], color="red", alpha=0.15, linewidth=6)
    throughput.set_xlabel("offered ticks/s")
    throughput.set_ylabel("achieved ticks/s")
    throughput.set_title("Throughput (red: not sustained or not lossless)")
    throughput.grid(True, alpha=0.3)
    throughput.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
