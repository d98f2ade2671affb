"""Analysis-ready reads: exact decimals by default, float64 frames with ``floats=True`` (pandas and
polars), and ``ohlcv()`` resampled from 1m candles in DuckDB equal to Binance's own candles of
the interval (the emulator's /klines for 1h, 4h, 1d) over the same range."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

import binance_lake
from binance_lake.errors import BadInputError
from binance_lake.jobs import sync
from binance_lake.times import parse_time

DAY = (parse_time("2024-03-01"), parse_time("2024-03-02"))
GAP = (parse_time("2024-03-01T05:17:00Z"), parse_time("2024-03-01T05:40:00Z"))  # exchange maintenance


@pytest.fixture
def reader(emulator, client, lake):
    emulator.add_exchange_gap("BTCUSDT", *GAP)
    sync.sync_candles(client, lake, "BTCUSDT", start=DAY[0], end=DAY[1])
    return binance_lake.open_lake(lake.root)


def as_binance(tbl) -> list:
    """Resampled rows in /klines' array form (decimals as Binance prints them)."""
    out = []
    for r in tbl.to_pylist():
        out.append([int(r["candle_open_time"].timestamp() * 1000), *(f"{r[c]:f}" for c in (
            "open_price", "high_price", "low_price", "close_price", "base_volume")),
            int(r["candle_close_time"].timestamp() * 1000), f"{r['quote_volume']:f}", r["number_of_trades"],
            f"{r['taker_buy_base_volume']:f}", f"{r['taker_buy_quote_volume']:f}", "0"])
    return out


@pytest.mark.parametrize("interval", ["1h", "4h", "1d"])
def test_ohlcv_equals_binances_own_candles(reader, emulator, interval):
    got = reader.ohlcv("BTCUSDT", interval, "2024-03-01", "2024-03-02")
    assert as_binance(got) == emulator.klines("BTCUSDT", interval, *DAY)
    assert got.num_rows == {"1h": 24, "4h": 6, "1d": 1}[interval]


def test_ohlcv_counts_the_minutes_of_each_bucket(reader):
    got = reader.ohlcv("BTCUSDT", "1h", "2024-03-01T04:00:00Z", "2024-03-01T06:30:00Z")
    # 05:17..05:40 is the exchange's gap; the range cuts the 06:00 hour at 06:30.
    assert got["candles_1m"].to_pylist() == [60, 60 - 23, 30]
    assert str(got.schema.field("open_price").type) == "decimal128(38, 8)"


def test_decimals_by_default_floats_when_asked(reader):
    exact = reader.candles("BTCUSDT", start="2024-03-01", end="2024-03-01T01:00:00Z")
    df = exact.to_pandas()
    assert df["close_price"].dtype == object and isinstance(df["close_price"].iloc[0], Decimal)
    floats = reader.candles("BTCUSDT", start="2024-03-01", end="2024-03-01T01:00:00Z", floats=True)
    fdf = floats.to_pandas()
    assert fdf["close_price"].dtype == "float64" and fdf["number_of_trades"].dtype == "int64"
    assert str(fdf["candle_open_time"].dtype) == "datetime64[ms, UTC]"
    assert fdf["close_price"].tolist() == [float(d) for d in df["close_price"]]
    frame = pl.from_arrow(reader.ohlcv("BTCUSDT", "1h", "2024-03-01", "2024-03-02", floats=True))
    assert frame.schema["high_price"] == pl.Float64 and frame.height == 24
    day_high = max(reader.candles("BTCUSDT", start="2024-03-01", end="2024-03-02")["high_price"].to_pylist())
    assert frame["high_price"].max() == float(day_high)


def test_ohlcv_bad_input_is_named(reader):
    with pytest.raises(BadInputError, match="cannot resample 1m candles to '1s'"):
        reader.ohlcv("BTCUSDT", "1s")
    with pytest.raises(BadInputError, match="no curated candles for ETHUSDT 1m"):
        reader.ohlcv("ETHUSDT", "1h")
