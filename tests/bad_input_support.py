"""Hypothesis strategies for the bad-input sweep (tests/e2e/test_bad_input_sweep.py): Binance
frames, tick-stream entries, alert rules and CSV uploads, each valid, mutated or random, and
`sweep`, which runs the examples of a strategy against services running in the test's event loop.

Each generated item says what it is (`kind`) and what was done to it (`label`, shown when an
example fails). Only the pristine kinds have a known outcome; a mutated item may still be valid
(a mutation can hit a value that is allowed), so the sweep checks that it is accounted for and
explained, and, where the README states the rule precisely (tick entries), against a reference
reading of that rule written here independently of the services.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import example as hypothesis_example
from hypothesis import strategies as st

from shared.schemas import Tick
from testkit.binance_ws import frame_bytes, trade_event

T = TypeVar("T")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
INT64_MAX = 2**63 - 1
BASE_TS = 1_765_892_498_698

SERVICE_SWEEP = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # Examples share one running service, so shrinking (replaying variations against a service
    # whose state moved on) would take long and say little; a failure prints the example.
    phases=(Phase.explicit, Phase.generate),
)
PURE_SWEEP = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def sweep(
    strategy: st.SearchStrategy[T],
    example: Callable[[T], Awaitable[None]],
    examples: int,
    explicit: Sequence[T] = (),
) -> None:
    """Run `example` on the `explicit` values, then on `examples` values of `strategy`, each in
    this event loop, where the services under test keep running between examples. Hypothesis
    drives from a worker thread, so the loop (and the services) never stop while it draws."""
    loop = asyncio.get_running_loop()

    def check(value: T) -> None:
        asyncio.run_coroutine_threadsafe(example(value), loop).result(timeout=60)

    for value in explicit:
        check = hypothesis_example(value)(check)
    await asyncio.to_thread(settings(SERVICE_SWEEP, max_examples=examples)(given(strategy)(check)))


# Values a mutation puts into a field: wrong types, signs, spacing, digits of other scripts,
# exponents, zero, too large for 64 bits or for a double, NaN, nesting.
JSON_JUNK: tuple[Any, ...] = (
    None, True, False, -1, 0, 1.5, -0.0, 2**63, 2**64 - 1, "", "abc", "12\n", " 12", "+12",
    "١٢", "1e5", "-1", "0", "0.000", "9" * 400, "0." + "0" * 400 + "1", "NaN", "Infinity",
    [], {}, [[[1]]], {"p": "1"}, "x" * 300,
)  # fmt: skip
DECIMAL_JUNK: tuple[Any, ...] = (
    "12\n", "12 ", " 12", "+12", "١٢", "1e5", "-1", "1.", ".5", "1.2.3", "9" * 400,
    "0." + "0" * 400 + "1", "NaN", "", 12.5, 12,
)  # fmt: skip
INTEGER_JUNK: tuple[Any, ...] = (-1, 1.5, 2**63, 2**64 - 1, "12", True, None, 1e300)
FIELD_JUNK = {"p": DECIMAL_JUNK, "q": DECIMAL_JUNK, "t": INTEGER_JUNK, "T": INTEGER_JUNK}
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
"""Text that can travel in a WebSocket text frame (no lone surrogates)."""


def decimal_text(low: str, high: str) -> st.SearchStrategy[str]:
    return st.decimals(min_value=low, max_value=high, places=8).map(lambda d: format(d, "f"))


PRICES = decimal_text("0.00000001", "10000000")
SIZES = decimal_text("0.00000001", "100000")


# Ingestor frames.

VALID, NON_MARKET, REPLAY, MUTATED = "valid", "non-market", "replay", "mutated"


@dataclass(frozen=True)
class FramePlan:
    """One message for the stream of `symbol`, built when sent from the trade id and time the
    sweep gives it: `make(trade_id, ts)` is the message and, when it is a JSON object, the event
    it carries (to compare with what reaches Redis)."""

    symbol: str
    kind: str
    label: str
    make: Callable[[int, int], tuple[bytes | str, dict[str, Any] | None]] = field(repr=False)

    def __repr__(self) -> str:
        return f"{self.symbol}:{self.kind}:{self.label}"


def _message(event: dict[str, Any], text: bool) -> bytes | str:
    raw = frame_bytes(event)
    return raw.decode() if text else raw


@st.composite
def valid_frames(draw: st.DrawFn, symbol: str) -> FramePlan:
    """A market trade as Binance sends it; sometimes in the combined-stream envelope, with
    unknown extra fields, or with its fields in another order."""
    price, size, maker = draw(PRICES), draw(SIZES), draw(st.booleans())
    wrap = draw(st.sampled_from(["plain", "combined", "extra", "reordered"]))
    text = draw(st.booleans())

    def make(trade_id: int, ts: int) -> tuple[bytes | str, dict[str, Any] | None]:
        event = trade_event(symbol, trade_id, ts, price, size, maker=maker)
        if wrap == "extra":
            event |= {"st": 0, "zz": [1, {"a": None}]}
        if wrap == "reordered":
            event = dict(reversed(event.items()))
        if wrap == "combined":
            return _message({"stream": f"{symbol.lower()}@trade", "data": event}, text), event
        return _message(event, text), event

    return FramePlan(symbol, VALID, f"{wrap} p={price} q={size}", make)


@st.composite
def non_market_frames(draw: st.DrawFn, symbol: str) -> FramePlan:
    """An `NA`, `ADL` or `INSURANCE_FUND` print, or a market print of price or size zero."""
    execution = draw(st.sampled_from(["NA", "ADL", "INSURANCE_FUND", "MARKET"]))
    price, size = ("0", "0") if execution in ("NA", "MARKET") else (draw(PRICES), draw(SIZES))
    if execution == "MARKET":
        price, size = draw(st.sampled_from([("0", "1"), ("1", "0.000"), ("0.0", "0")]))

    def make(trade_id: int, ts: int) -> tuple[bytes | str, dict[str, Any] | None]:
        event = trade_event(symbol, trade_id, ts, price, size, execution=execution)
        return frame_bytes(event), event

    return FramePlan(symbol, NON_MARKET, f"X={execution} p={price} q={size}", make)


FRAME_FIELDS = ("e", "E", "T", "s", "t", "p", "q", "X", "m")


@st.composite
def mutated_frames(draw: st.DrawFn, symbol: str) -> FramePlan:
    """A trade event with a field removed or set to a junk value, a wrong event type or symbol,
    or its text broken: truncated, followed by junk, not UTF-8, an array, deep nesting, empty,
    over the size limit, a bare NaN; or random text or bytes."""
    how = draw(
        st.sampled_from(
            [
                "drop", "junk", "junk", "junk", "kind", "symbol", "truncate", "trailing",
                "not-utf8", "array", "nested", "empty", "oversize", "nan", "envelope",
                "text", "bytes",
            ]
        )
    )  # fmt: skip
    name = draw(st.sampled_from(FRAME_FIELDS))
    junk = draw(st.sampled_from(FIELD_JUNK.get(name, JSON_JUNK)) | st.sampled_from(JSON_JUNK))
    other = draw(
        st.sampled_from(["aggTrade", "depthUpdate", "trade ", "TRADE", None, 1, ["trade"]])
    )
    wrong_symbol = draw(st.sampled_from([*(s for s in SYMBOLS if s != symbol), symbol.lower(), ""]))
    cut = draw(st.floats(0, 1))
    text = draw(TEXT)
    blob = draw(st.binary(max_size=40))
    price, size = draw(PRICES), draw(SIZES)

    def make(trade_id: int, ts: int) -> tuple[bytes | str, dict[str, Any] | None]:
        event = trade_event(symbol, trade_id, ts, price, size)
        raw = frame_bytes(event)
        if how == "drop":
            del event[name]
        elif how == "junk":
            event[name] = junk
        elif how == "kind":
            event["e"] = other
        elif how == "symbol":
            event["s"] = wrong_symbol
        elif how == "truncate":
            return raw[: min(int(len(raw) * cut), len(raw) - 1)], None
        elif how == "trailing":
            return raw + b" ," + text.encode(), None
        elif how == "not-utf8":
            at = int(len(raw) * cut)
            return raw[:at] + b"\xff\xfe" + raw[at:], None
        elif how == "array":
            return orjson.dumps([event, event]), None
        elif how == "nested":
            return "[" * 2_000 + "]" * 2_000, None
        elif how == "empty":
            return draw_empty(cut), None
        elif how == "oversize":
            event["pad"] = "x" * 70_000
        elif how == "nan":
            return raw.replace(f'"p":"{price}"'.encode(), b'"p":NaN'), None
        elif how == "envelope":
            return orjson.dumps({"stream": f"{symbol.lower()}@trade", "data": junk}), None
        elif how == "text":
            return text, None
        else:
            return blob, None
        return frame_bytes(event), event

    return FramePlan(symbol, MUTATED, f"{how} {name}={junk!r:.40}", make)


def draw_empty(cut: float) -> str:
    return ("", " ", "\n", "null", "{}")[int(cut * 4.999)]


def frame_plans(symbol: str) -> st.SearchStrategy[FramePlan]:
    replay = st.just(
        FramePlan(symbol, REPLAY, "the last valid frame again", lambda _id, _ts: (b"", None))
    )
    return st.one_of(
        valid_frames(symbol),
        valid_frames(symbol),
        non_market_frames(symbol),
        replay,
        mutated_frames(symbol),
        mutated_frames(symbol),
        mutated_frames(symbol),
    )


FRAME_BATCHES = st.lists(st.sampled_from(SYMBOLS).flatmap(frame_plans), min_size=40, max_size=160)


# Tick-stream entries.

DUPLICATE = "duplicate"
Pairs = list[tuple[bytes, bytes]]

ENTRY_JUNK: tuple[bytes, ...] = (
    b"", b"abc", b"12\n", b" 12", b"12 ", b"+12", "١٢".encode(), "\uff11\uff12".encode(),
    b"1e5", b"-1",
    b"0", b"0.000", b"00", b"007", b"1_000", b"9" * 400, b"0." + b"0" * 400 + b"1",
    str(2**63).encode(), str(INT64_MAX).encode(), b"0" * 20 + b"1", b"NaN", b"inf",
    b"\xff\xfe", b"1\xff", b"1.5", b".5", b"5.", b"buy", b"sell", b"BUY", b"BTCUSDT",
    b"ETHUSDT", b"btcusdt", b"\x00",
)  # fmt: skip
FIELD_NAMES: tuple[bytes, ...] = (
    b"ts", b"symbol", b"price", b"size", b"trade_id", b"side", b"recv_ts", b"Price", b"price ",
    b"", b"\xffts", b"extra",
)  # fmt: skip


@dataclass(frozen=True)
class EntryPlan:
    """One entry for `ticks:<symbol>`: `make(trade_id, ts)` gives its field/value pairs."""

    symbol: str
    kind: str
    label: str
    make: Callable[[int, int], Pairs] = field(repr=False)

    def __repr__(self) -> str:
        return f"{self.symbol}:{self.kind}:{self.label}"


def tick_pairs(tick: Tick) -> Pairs:
    return [(str(k).encode(), str(v).encode()) for k, v in tick.to_fields().items()]


@st.composite
def valid_entries(draw: st.DrawFn, symbol: str) -> EntryPlan:
    price, size, side = draw(PRICES), draw(SIZES), draw(st.sampled_from(["buy", "sell"]))

    def make(trade_id: int, ts: int) -> Pairs:
        return tick_pairs(Tick(ts, symbol, price, size, trade_id, side, ts + 5))  # type: ignore[arg-type]

    return EntryPlan(symbol, VALID, f"p={price} q={size} {side}", make)


@st.composite
def mutated_entries(draw: st.DrawFn, symbol: str) -> EntryPlan:
    """A tick entry with a field dropped, set to a junk value, renamed, repeated, or with an
    extra field; its fields reordered; or random pairs of bytes."""
    how = draw(
        st.sampled_from(
            ["drop", "junk", "junk", "junk", "rename", "repeat", "extra", "reorder", "random"]
        )
    )
    name = draw(st.sampled_from(FIELD_NAMES[:7]))
    junk = draw(st.sampled_from(ENTRY_JUNK))
    other_name = draw(st.sampled_from(FIELD_NAMES))
    rest = draw(st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)), max_size=6))
    order = draw(st.permutations(range(7)))
    price, size = draw(PRICES), draw(SIZES)

    def make(trade_id: int, ts: int) -> Pairs:
        pairs = tick_pairs(Tick(ts, symbol, price, size, trade_id, "buy", ts + 5))
        index = next(i for i, (k, _) in enumerate(pairs) if k == name)
        if how == "drop":
            del pairs[index]
        elif how == "junk":
            pairs[index] = (name, junk)
        elif how == "rename":
            pairs[index] = (other_name, pairs[index][1])
        elif how == "repeat":
            pairs.append((name, junk))
        elif how == "extra":
            pairs.insert(order[0], (other_name + b"_x", junk))
        elif how == "reorder":
            pairs = [pairs[i] for i in order]
        else:
            pairs = rest or [(b"", b"")]
        return pairs

    return EntryPlan(symbol, MUTATED, f"{how} {name.decode()}={junk[:30]!r}", make)


def entry_plans(symbol: str) -> st.SearchStrategy[EntryPlan]:
    duplicate = st.just(EntryPlan(symbol, DUPLICATE, "an earlier valid entry", lambda _i, _t: []))
    return st.one_of(
        valid_entries(symbol), valid_entries(symbol), duplicate,
        mutated_entries(symbol), mutated_entries(symbol), mutated_entries(symbol),
    )  # fmt: skip


ENTRY_BATCHES = st.lists(st.sampled_from(SYMBOLS).flatmap(entry_plans), min_size=30, max_size=120)


def acceptable(pairs: Sequence[tuple[bytes, bytes]], symbol: str) -> bool:
    """The tick contract as the README states it, read independently of `shared.schemas`: the
    seven fields (a repeated field counts with its last value, unknown fields are ignored), the
    stream's symbol, side `buy` or `sell`, ids and times of ASCII digits within a signed 64-bit
    integer, price and size plain ASCII decimals above zero and finite as a double. Bytes that
    are not UTF-8 read as U+FFFD, as the services' clients decode them."""
    fields = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}
    try:
        values = [fields[name] for name in ("ts", "symbol", "price", "size", "trade_id")]
        side, recv_ts = fields["side"], fields["recv_ts"]
    except KeyError:
        return False
    ts, found, price, size, trade_id = values
    digits = set("0123456789")

    def count(text: str) -> bool:
        return 0 < len(text) <= 19 and set(text) <= digits and int(text) <= INT64_MAX

    def amount(text: str) -> bool:
        whole, _, part = text.partition(".")
        if not whole or not set(whole) <= digits or ("." in text and not part):
            return False
        if part and not set(part) <= digits:
            return False
        value = float(Decimal(text))
        return 0 < value < math.inf

    return (
        found == symbol
        and side in ("buy", "sell")
        and all(count(v) for v in (ts, trade_id, recv_ts))
        and amount(price)
        and amount(size)
    )


# Alert rules.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON-like value (floats include NaN and infinities, which JSON text cannot hold)."""


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


RULE_JUNK: tuple[Any, ...] = (10**400, -(10**400), 10**5000, nested(1_200), "x" * 10_000)
"""Values only a rule built in Python can hold: beyond a double, beyond Python's int-to-text
limit, nested past the recursion limit."""
RULE_KEYS = (
    "name", "pair", "tf", "metric", "op", "threshold", "cooldown_s", "enabled", "conditions",
    "window", "method",
)  # fmt: skip


@st.composite
def valid_rules(draw: st.DrawFn) -> dict[str, Any]:
    """A rule `shared.alert_rules` accepts, for a pair the sweep's worker serves."""
    a, b = draw(st.permutations(SYMBOLS))
    rule: dict[str, Any] = {
        "name": draw(
            st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
                str.strip
            )
        ),
        "pair": f"{a}-{b}",
        "tf": draw(st.sampled_from(["1s", "1m"])),
        "metric": draw(st.sampled_from(["zscore", "corr", "beta", "adf_pvalue"])),
        "op": draw(st.sampled_from([">", "<", ">=", "<=", "abs>"])),
        "threshold": draw(st.floats(-1e6, 1e6) | st.integers(-1000, 1000)),
    }
    if draw(st.booleans()):
        rule["cooldown_s"] = draw(st.floats(0, 1e6))
    if draw(st.booleans()):
        rule["enabled"] = draw(st.booleans())
    if draw(st.booleans()):
        rule["conditions"] = [{"metric": "adf_pvalue", "op": "<", "threshold": 0.05}]
    if draw(st.booleans()):
        rule["window"] = draw(st.sampled_from([30, 60]))
        rule["method"] = draw(st.sampled_from(["ols", "kalman"]))
    return rule


@dataclass(frozen=True)
class RulePlan:
    """A rule as a decoded value, and the keys a mutation touched (None: pristine valid)."""

    value: Any
    touched: tuple[str, ...] | None


@st.composite
def mutated_rules(draw: st.DrawFn) -> RulePlan:
    """A valid rule with keys set to any JSON value, removed, or added; or a condition broken."""
    rule = draw(valid_rules())
    touched: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["set", "set", "drop", "add", "condition"]))
        key = draw(st.sampled_from(RULE_KEYS))
        if how == "set":
            rule[key] = draw(st.sampled_from(JSON_JUNK) | st.sampled_from(RULE_JUNK) | JSON_VALUES)
        elif how == "drop":
            rule.pop(key, None)
        elif how == "add":
            key = draw(st.text(max_size=10))
            rule[key] = draw(JSON_VALUES)
        else:
            key = "conditions"
            rule[key] = [
                draw(
                    st.dictionaries(
                        st.sampled_from(["metric", "op", "threshold", "x"]),
                        JSON_VALUES | st.sampled_from(["zscore", "<"]),
                    )
                )
            ]
        touched.append(key)
    return RulePlan(rule, tuple(touched))


RULE_PLANS = st.one_of(
    valid_rules().map(lambda rule: RulePlan(rule, None)),
    mutated_rules(),
    mutated_rules(),
    JSON_VALUES.map(lambda value: RulePlan(value, ("",))),
)


ACTIVE, DISABLED, INVALID, UNKNOWN = "active", "disabled", "invalid", "unknown"


@st.composite
def stored_rules(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    """(rule id, stored value, what the worker must make of it): valid rules under valid ids,
    active or disabled; invalid ones: bad ids (empty, spaces, too long, a newline, not UTF-8,
    two that decode alike), values that are not JSON, not UTF-8, or over the size limit; and
    mutated rules or random JSON, whose outcome the pure sweep checks (`UNKNOWN` here)."""
    rule_id = draw(st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)).encode()
    plan = draw(RULE_PLANS)
    if plan.touched is None and draw(st.integers(0, 3)) > 0:
        return (
            rule_id,
            orjson.dumps(plan.value),
            DISABLED if not plan.value.get("enabled", True) else ACTIVE,
        )
    how = draw(st.sampled_from(["id", "value", "value", "text", "bytes", "huge", "deep"]))
    valid_value = orjson.dumps(draw(valid_rules()))
    if how == "id":
        bad_ids = [b"", b"a b", b"x" * 65, b"r\n", b"r\xff", b"r\xfe", b"\xc3("]
        return draw(st.sampled_from(bad_ids)), valid_value, INVALID
    if how == "value":
        return rule_id, json_or_junk(plan.value), UNKNOWN
    if how == "text":
        return rule_id, valid_value[: draw(st.integers(0, len(valid_value) - 1))], INVALID
    if how == "bytes":
        return rule_id, draw(st.binary(max_size=30)) + b"\xff", INVALID
    if how == "deep":
        return rule_id, b'{"name":"n","pair":' + b"[" * 1_000 + b"]" * 1_000 + b"}", INVALID
    return rule_id, b'{"name": "' + b"x" * 5_000 + b'"}', INVALID


def json_or_junk(value: Any) -> bytes:
    """The JSON text of a value, or text that is not JSON when the value has no JSON form."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError among them: NaN is fine, 10**400 is not
        return b"{not JSON"


RULE_SETS = st.lists(stored_rules(), min_size=1, max_size=25)
HARD_RULES: list[tuple[bytes, bytes, str]] = [
    (b"deep", b'{"name":"n","pair":' + b"[" * 1_000 + b"]" * 1_000 + b"}", INVALID),
    (b"r\xff", b"{}", INVALID),
    (b"r\xfe", b"{}", INVALID),
    (b"r\n", orjson.dumps({"name": "n", "pair": "BTCUSDT-ETHUSDT", "tf": "1s", "metric": "beta",
                           "op": ">", "threshold": 1}), INVALID),
    (b"ok", orjson.dumps({"name": "n", "pair": "BTCUSDT-ETHUSDT", "tf": "1s", "metric": "beta",
                         "op": ">", "threshold": 1}), ACTIVE),
    (b"tf", orjson.dumps({"name": "n", "pair": "BTCUSDT-ETHUSDT", "tf": "1m\n", "metric": "beta",
                         "op": ">", "threshold": 1}), INVALID),
]  # fmt: skip
"""Stored rules that once stopped the worker or were counted wrong, checked on every run."""


# CSV uploads.

UPLOAD_LIMIT = 65_536
"""The largest upload the sweep allows (`decode_contents`'s limit), so "too big" is cheap."""
CELL_JUNK = ("", "abc", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "12abc", "--1", "0x1A")
"""Cell values that are not finite numbers (the upload must name their row and column)."""
CSV_JUNK = (
    *CELL_JUNK, "-5", "0", "1e300", "١٢", " 7 ", '"', '"a,b"', "a\nb", "\x00", "1,2", "é",
    "2025-13-45", "99999999999999999999999",
)  # fmt: skip
NUMERIC = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class UploadPlan:
    """Files to upload (name, bytes); `cell` is (file, data row from 1, column) when the only
    mutation put a `CELL_JUNK` value in a numeric column; `valid` when nothing was mutated."""

    files: list[tuple[str, bytes]]
    label: str
    valid: bool = False
    rows: int = 0
    cell: tuple[str, int, str] | None = None

    def __repr__(self) -> str:
        return f"UploadPlan({self.label}, {[(n, d[:200]) for n, d in self.files]})"


@st.composite
def upload_plans(draw: st.DrawFn) -> UploadPlan:
    rows = draw(st.integers(4, 25))
    step = draw(st.sampled_from([1_000, 60_000]))
    start = draw(st.integers(1_600_000_000, 1_800_000_000)) * 1000
    form = draw(st.sampled_from(["ms", "s", "iso"]))
    one_file = draw(st.booleans())
    tables: dict[str, list[dict[str, str]]] = {}
    for symbol in SYMBOLS:
        close = draw(st.floats(1, 1e5))
        bars = []
        for i in range(rows):
            ms = start + i * step
            moves = draw(st.lists(st.floats(-0.01, 0.01), min_size=3, max_size=3))
            open_, close = close, close * (1 + moves[0])
            high = max(open_, close) * (1 + abs(moves[1]))
            low = min(open_, close) * (1 - abs(moves[2]))
            when = {"ms": str(ms), "s": str(ms // 1000), "iso": _iso(ms)}[form]
            bars.append({
                "time": when, "symbol": symbol, "open": repr(open_), "high": repr(high),
                "low": repr(low), "close": repr(close), "volume": repr(draw(st.floats(0, 1e6))),
            })  # fmt: skip
        tables[symbol] = bars
    header = ["time", "symbol", *NUMERIC] if one_file else ["time", *NUMERIC]
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    names = {"time": draw(st.sampled_from(["time", "Time", "timestamp", "ts", "open_time"]))}
    files: list[tuple[str, list[list[str]]]] = []
    if one_file:
        records = [bar for symbol in SYMBOLS for bar in tables[symbol]]
        files.append(("pair.csv", [[bar[c] for c in header] for bar in records]))
    else:
        for symbol in SYMBOLS:
            name = draw(st.sampled_from([f"{symbol}.csv", f"{symbol.lower()}_1m.csv"]))
            files.append((name, [[bar[c] for c in header] for bar in tables[symbol]]))
    shown_header = [names.get(c, c) for c in header]
    for _, body in files:
        if draw(st.booleans()):
            body[:] = draw(st.permutations(body))
    how = draw(
        st.sampled_from(
            ["none", "none", "cell", "cell", "cell", "junk", "header", "drop-column",
             "repeat-column", "short-row", "long-row", "repeat-row", "negative", "high-low",
             "far-time", "empty", "header-only", "binary", "latin-1", "utf-16", "truncate",
             "semicolon", "oversize", "one-symbol"]
        )
    )  # fmt: skip
    target = draw(st.integers(0, len(files) - 1))
    name, body = files[target]
    row = draw(st.integers(0, len(body) - 1))
    column = draw(st.integers(0, len(header) - 1))
    junk = draw(st.sampled_from(CELL_JUNK if how == "cell" else CSV_JUNK))
    cell: tuple[str, int, str] | None = None
    if how == "cell" and header[column] in NUMERIC:
        body[row][column] = junk
        cell = (name, row + 1, header[column])
    elif how in ("cell", "junk"):
        body[row][column] = junk
    elif how == "header":
        shown_header[column] = junk
    elif how == "drop-column":
        for line in body:
            del line[column]
        if target == 0 or len(files) == 1:
            del shown_header[column]
    elif how == "repeat-column":
        shown_header.append(shown_header[column])
        for line in body:
            line.append(line[column])
    elif how == "short-row":
        del body[row][-1]
    elif how == "long-row":
        body[row].append("1")
    elif how == "repeat-row":
        body.append(list(body[row]))
    elif how == "negative" and header[column] in NUMERIC:
        body[row][column] = "-" + body[row][column]
    elif how == "high-low":
        high, low = header.index("high"), header.index("low")
        body[row][high], body[row][low] = body[row][low], body[row][high]
    elif how == "far-time":
        body[row][header.index("time")] = draw(st.sampled_from(["1", "4102444800000", "9" * 25]))
    elif how == "one-symbol" and len(files) == 2:
        files.pop(1 - target)
    texts = {
        file_name: _csv_text(shown_header, lines, draw(st.booleans()), draw(st.booleans()))
        for file_name, lines in files
    }
    data = {file_name: text.encode() for file_name, text in texts.items()}
    if how == "empty":
        data[name] = draw(st.sampled_from([b"", b"\n\n", b"   "]))
    elif how == "header-only":
        data[name] = ",".join(shown_header).encode() + b"\n"
    elif how == "binary":
        data[name] = draw(st.binary(min_size=1, max_size=200))
    elif how == "latin-1":
        data[name] = texts[name].replace("open", "öpen", 1).encode("latin-1")
    elif how == "utf-16":
        data[name] = texts[name].encode("utf-16")
    elif how == "truncate":
        data[name] = data[name][: draw(st.integers(0, len(data[name])))]
    elif how == "semicolon":
        data[name] = texts[name].replace(",", ";").encode()
    elif how == "oversize":
        data[name] = data[name] + b"\n" * UPLOAD_LIMIT
    if draw(st.booleans()):
        data[name] = b"\xef\xbb\xbf" + data[name]
    plan_files = [(file_name, data[file_name]) for file_name, _ in files if file_name in data]
    return UploadPlan(plan_files, f"{how} {header[column]}={junk!r}", how == "none", rows, cell)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _csv_text(header: list[str], lines: list[list[str]], crlf: bool, blanks: bool) -> str:
    end = "\r\n" if crlf else "\n"
    out = [",".join(_quoted(c) for c in header)]
    for n, line in enumerate(lines):
        if blanks and n % 7 == 3:
            out.append("")
        out.append(",".join(_quoted(c) for c in line))
    return end.join(out) + end


def _quoted(cell: str) -> str:
    if any(c in cell for c in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell
