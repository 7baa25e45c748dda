"""Resampled bars, pair statistics and alerts from the tick streams."""
