"""Redis stream entry ids (`1765892498698-3`): their time part and their order."""

from __future__ import annotations


def id_parts(entry_id: str) -> tuple[int, int]:
    """(milliseconds, sequence) of an entry id; a bare `1765892498698` has sequence 0.

    Ordering the tuples orders the entries as Redis does. `ValueError` for anything else.
    """
    ms, dash, seq = entry_id.partition("-")
    if not (ms.isascii() and ms.isdigit()) or (dash and not (seq.isascii() and seq.isdigit())):
        raise ValueError(f"{entry_id!r} is not a stream entry id (like 1765892498698-3)")
    return int(ms), int(seq) if dash else 0


def id_ms(entry_id: str) -> int:
    """The time part of an entry id: when Redis added it, in epoch milliseconds."""
    return id_parts(entry_id)[0]


__all__ = ["id_ms", "id_parts"]
