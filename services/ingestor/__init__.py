"""Binance USD-M Futures trades to the ticks:<SYMBOL> Redis streams."""
