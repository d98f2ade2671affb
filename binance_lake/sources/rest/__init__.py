"""Binance REST API: client, candle and order pages into raw. Never imports pyarrow."""
