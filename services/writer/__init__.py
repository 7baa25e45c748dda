"""Ticks from the Redis streams into SQLite, exactly once."""
