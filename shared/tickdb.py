"""The SQLite system of record: its schema, migrations, and how each side opens it.

The writer is the only process that writes (`open_for_writing` applies migrations, WAL journal,
`synchronous=NORMAL`); everyone else reads through `open_for_reading` (read-only, never creates).
Prices and sizes are stored as the exchange's exact decimal text. A row covers trade ids
`trade_id..last_trade_id`: one trade from the socket (`source` `ws`) or REST (`rest`), or, for a
gap back-filled from aggregate trades (`rest-agg`), the missing trades of one aggregate with their
summed size. No two rows cover the same id (the ingestor guarantees it; `History.overlaps` checks).

`bars_1s` holds one row per symbol and second with trades: OHLCV, notional and trade count of the
ticks of that second, so that bars of any timeframe are read without scanning millions of ticks.
Triggers keep it equal to an aggregation of `ticks` in the same transaction, whoever inserts:
`INSERT OR IGNORE` of a tick already stored fires no trigger, so a redelivery never counts twice;
a deleted tick recomputes its second; ticks are immutable (an UPDATE is refused).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT_MS = 5_000


def seconds_of(where: str, *, trades: str = "sum(t.last_trade_id - t.trade_id + 1)") -> str:
    """SELECT giving the `bars_1s` rows of the ticks `t` matching `where` (no CTE: triggers use it).

    Open and close are the prices of the lowest and highest trade id of each second (rows never
    share an id, so ordering by the first id of each row orders them by their last too);
    `trades` counts the trade ids the rows cover (a back-filled row may cover several).
    """
    return f"""
    SELECT agg.symbol AS symbol, agg.start AS start, open_id, CAST(o.price AS REAL) AS open,
           high, low, close_id, CAST(c.price AS REAL) AS close, volume, notional, trades
    FROM (
        SELECT t.symbol AS symbol, t.ts / 1000 * 1000 AS start,
               min(t.trade_id) AS open_id, max(t.trade_id) AS close_id,
               max(CAST(t.price AS REAL)) AS high, min(CAST(t.price AS REAL)) AS low,
               sum(CAST(t.size AS REAL)) AS volume,
               sum(CAST(t.price AS REAL) * CAST(t.size AS REAL)) AS notional,
               {trades} AS trades
        FROM ticks AS t WHERE {where} GROUP BY t.symbol, start
    ) AS agg
    JOIN ticks AS o ON o.symbol = agg.symbol AND o.trade_id = agg.open_id
    JOIN ticks AS c ON c.symbol = agg.symbol AND c.trade_id = agg.close_id
    """


def _bar_triggers(trades: str, seconds: str) -> str:
    """The triggers that keep `bars_1s` equal to an aggregation of `ticks`; `trades` is what
    one new row adds to its second's trade count."""
    return f"""
    CREATE TRIGGER ticks_add_to_bars_1s AFTER INSERT ON ticks BEGIN
        INSERT INTO bars_1s VALUES (
            NEW.symbol, NEW.ts / 1000 * 1000,
            NEW.trade_id, CAST(NEW.price AS REAL), CAST(NEW.price AS REAL),
            CAST(NEW.price AS REAL), NEW.trade_id, CAST(NEW.price AS REAL),
            CAST(NEW.size AS REAL), CAST(NEW.price AS REAL) * CAST(NEW.size AS REAL), {trades}
        )
        ON CONFLICT (symbol, start) DO UPDATE SET
            open = iif(excluded.open_id < open_id, excluded.open, open),
            open_id = min(open_id, excluded.open_id),
            high = max(high, excluded.high),
            low = min(low, excluded.low),
            close = iif(excluded.close_id > close_id, excluded.close, close),
            close_id = max(close_id, excluded.close_id),
            volume = volume + excluded.volume,
            notional = notional + excluded.notional,
            trades = trades + excluded.trades;
    END;
    CREATE TRIGGER ticks_remove_from_bars_1s AFTER DELETE ON ticks BEGIN
        DELETE FROM bars_1s WHERE symbol = OLD.symbol AND start = OLD.ts / 1000 * 1000;
        INSERT INTO bars_1s {seconds};
    END;
    CREATE TRIGGER ticks_are_immutable BEFORE UPDATE ON ticks BEGIN
        SELECT RAISE(ABORT, 'ticks are immutable: delete and insert instead');
    END;
    """


_OLD_SECOND = (
    "t.symbol = OLD.symbol AND t.ts >= OLD.ts / 1000 * 1000 AND t.ts < OLD.ts / 1000 * 1000 + 1000"
)
_V2_TRADES = "count(*)"
"""Before v3 every row was one trade."""


MIGRATIONS: tuple[str, ...] = (
    # 1: one row per trade, keyed so that redeliveries and replays never duplicate.
    """
    CREATE TABLE ticks (
        symbol   TEXT    NOT NULL,
        trade_id INTEGER NOT NULL,
        ts       INTEGER NOT NULL,
        price    TEXT    NOT NULL,
        size     TEXT    NOT NULL,
        side     TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
        recv_ts  INTEGER NOT NULL,
        PRIMARY KEY (symbol, trade_id)
    ) WITHOUT ROWID;
    CREATE INDEX ticks_symbol_ts ON ticks (symbol, ts);
    """,
    # 2: one-second bars maintained from the ticks by triggers; filled from the ticks stored so far.
    f"""
    CREATE TABLE bars_1s (
        symbol   TEXT    NOT NULL,
        start    INTEGER NOT NULL,
        open_id  INTEGER NOT NULL,
        open     REAL    NOT NULL,
        high     REAL    NOT NULL,
        low      REAL    NOT NULL,
        close_id INTEGER NOT NULL,
        close    REAL    NOT NULL,
        volume   REAL    NOT NULL,
        notional REAL    NOT NULL,
        trades   INTEGER NOT NULL,
        PRIMARY KEY (symbol, start)
    ) WITHOUT ROWID;
    INSERT INTO bars_1s {seconds_of("1", trades=_V2_TRADES)};
    {_bar_triggers("1", seconds_of(_OLD_SECOND, trades=_V2_TRADES))}
    """,
    # 3: a row may cover several trade ids (a back-filled aggregate: trade_id..last_trade_id),
    # and says where it came from. The table is rebuilt (SQLite cannot add a NOT NULL column
    # without a constant default); every existing row covers its own id and came from `ws`.
    # `source` has no CHECK: `source IN (...)` made every insert 40% slower (measured); the
    # writer's contract (`shared.schemas.range_entry`) admits only `TICK_SOURCES`.
    f"""
    CREATE TABLE ticks_v3 (
        symbol        TEXT    NOT NULL,
        trade_id      INTEGER NOT NULL,
        ts            INTEGER NOT NULL,
        price         TEXT    NOT NULL,
        size          TEXT    NOT NULL,
        side          TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
        recv_ts       INTEGER NOT NULL,
        last_trade_id INTEGER NOT NULL,
        source        TEXT    NOT NULL DEFAULT 'ws',
        CHECK (last_trade_id >= trade_id),
        PRIMARY KEY (symbol, trade_id)
    ) WITHOUT ROWID;
    INSERT INTO ticks_v3
        SELECT symbol, trade_id, ts, price, size, side, recv_ts, trade_id, 'ws' FROM ticks;
    DROP TABLE ticks;
    ALTER TABLE ticks_v3 RENAME TO ticks;
    CREATE INDEX ticks_symbol_ts ON ticks (symbol, ts);
    {_bar_triggers("NEW.last_trade_id - NEW.trade_id + 1", seconds_of(_OLD_SECOND))}
    """,
    # 4: the market each symbol's ticks come from (`shared.market`): synthetic ticks never mix
    # with real ones of the same name.
    """
    CREATE TABLE market_kinds (
        symbol TEXT NOT NULL PRIMARY KEY,
        kind   TEXT NOT NULL CHECK (kind IN ('exchange', 'synthetic'))
    ) WITHOUT ROWID;
    INSERT INTO market_kinds SELECT DISTINCT symbol, 'exchange' FROM bars_1s;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
INSERT_TRADES = (
    "INSERT OR IGNORE INTO ticks"
    " (symbol, trade_id, ts, price, size, side, recv_ts, last_trade_id, source)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?2, 'ws')"
)
"""`executemany` of one-trade socket rows `(symbol, trade_id, ts, price, size, side, recv_ts)`:
each covers its own id. For tools and tests that load ticks without the writer."""


class TickDbError(RuntimeError):
    """The database cannot be used: missing, or from a newer version of this program."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _still_at(version: int) -> str:
    """Statements that fail (a CHECK) unless the database is at `version` once the migration
    holds the write lock: a writer that read an older version before another one migrated must
    not run a migration again (migration 3 can run twice, and set the version back)."""
    return (
        f"CREATE TEMP TABLE migration_guard (version INTEGER CHECK (version = {version}));\n"
        "INSERT INTO migration_guard SELECT user_version FROM pragma_user_version;\n"
        "DROP TABLE migration_guard;"
    )


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks, each in its own transaction; the new version."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise TickDbError(
            f"database schema v{current} is newer than this program's v{SCHEMA_VERSION}"
        )
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{_still_at(version - 1)}\n{script}\n"
                f"PRAGMA user_version = {version};\nCOMMIT;"
            )
        except (sqlite3.OperationalError, sqlite3.IntegrityError):
            # Two writers starting together: the other one applied this migration first.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if schema_version(conn) < version:
                raise
    return SCHEMA_VERSION


def open_for_writing(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """The writer's connection: creates the file and folder, WAL, migrations applied.

    Autocommit mode (`isolation_level=None`): the writer issues BEGIN/COMMIT itself, one
    transaction per batch. `busy_timeout_ms` is how long a statement waits for another writer's
    lock before failing with "database is locked".
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    _use_wal(conn, busy_timeout_ms)
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    return conn


def _use_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch to WAL, retrying: while another connection switches the same new file, SQLite
    answers "database is locked" at once, without waiting for the busy timeout."""
    deadline = time.monotonic() + max(busy_timeout_ms, 1_000) / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_for_reading(path: Path) -> sqlite3.Connection:
    """A read-only connection; `TickDbError` when the database does not exist yet."""
    if not path.exists():
        raise TickDbError(f"no tick database at {path} yet (the writer creates it)")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn
