"""Support shared by `tests/` and `bench/`: real servers (a private redis-server, Binance-format
WebSocket and REST servers, the pipeline's processes), the recorded data, and polling."""
