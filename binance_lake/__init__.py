"""binance-lake: Binance spot candles and account orders into a correct data lake."""

__version__ = "0.1.0"
