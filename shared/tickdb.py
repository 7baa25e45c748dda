"""The SQLite system of record: its schema, migrations, and how each side opens it.

The writer is the only process that writes (`open_for_writing` applies migrations, WAL journal,
`synchronous=NORMAL`); everyone else reads through `open_for_reading` (read-only, never creates).
Prices and sizes are stored as the exchange's exact decimal text.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 5_000

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
)
SCHEMA_VERSION = len(MIGRATIONS)


class TickDbError(RuntimeError):
    """The database cannot be used: missing, or from a newer version of this program."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks, each in its own transaction; the new version."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise TickDbError(
            f"database schema v{current} is newer than this program's v{SCHEMA_VERSION}"
        )
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    return SCHEMA_VERSION


def open_for_writing(path: Path) -> sqlite3.Connection:
    """The writer's connection: creates the file and folder, WAL, migrations applied.

    Autocommit mode (`isolation_level=None`): the writer issues BEGIN/COMMIT itself, one
    transaction per batch.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    return conn


def open_for_reading(path: Path) -> sqlite3.Connection:
    """A read-only connection; `TickDbError` when the database does not exist yet."""
    if not path.exists():
        raise TickDbError(f"no tick database at {path} yet (the writer creates it)")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn
