"""`make up` / `make demo` tell which `redis-cli` reaches the database the services use."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.local_services import redis_cli


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("redis://127.0.0.1:6379/0", "redis-cli"),
        ("redis://localhost", "redis-cli"),
        ("redis://127.0.0.1:6379/1", "redis-cli -n 1"),
        ("redis://cache.internal:7000/2", "redis-cli -h cache.internal -p 7000 -n 2"),
        (
            "rediss://app:secret@10.0.0.5:6380/0",
            "redis-cli -h 10.0.0.5 -p 6380 --user app --askpass --tls",
        ),
    ],
)
def test_the_redis_cli_command_names_host_port_and_database(url: str, command: str) -> None:
    assert redis_cli(url) == command


def test_the_demo_database_is_named() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    demo_url = next(line for line in makefile.splitlines() if line.startswith("DEMO_REDIS_URL"))
    assert redis_cli(demo_url.split("=", 1)[1].strip()) == "redis-cli -n 1"
