"""Generate curated candle partitions quickly, straight from Arrow, with the core's schema.

Going through the emulator and the transform would take minutes for millions of rows; the
query and tick benchmarks only need a lake of the right shape and size. Prices are a random
walk in cents (pyarrow compute only: no numpy in the runtime set), volumes are random; the
file layout, schema and compression are the ones ``binance_lake.fold`` writes.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from binance_lake import layout
from binance_lake.columns import arrow_schema
from binance_lake.lake import Lake
from binance_lake.layout import PART_NAME
from binance_lake.schema import CANDLES
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_date

DEC = pa.decimal128(38, 8)


def _decimal_from_units(units: pa.Array, scale: int) -> pa.Array:
    """int64 units of 10**-scale -> decimal128(38, 8), exactly (via the decimal string)."""
    sign = pc.if_else(pc.less(units, 0), "-", "")
    mag = pc.abs(units)
    div = 10**scale
    whole = pc.cast(pc.divide(mag, div), pa.string())
    frac = pc.utf8_lpad(pc.cast(pc.subtract(mag, pc.multiply(pc.divide(mag, div), div)), pa.string()), scale, "0")
    text = pc.binary_join_element_wise(sign, whole, ".", frac, "")
    return pc.cast(text, DEC)


def _to_int(x: pa.Array) -> pa.Array:
    return pc.cast(pc.floor(x), pa.int64())


def _rand_int(n: int, low: int, high: int, seed: int) -> pa.Array:
    r = pc.random(n, initializer=seed)
    return pc.cast(pc.floor(pc.add(pc.multiply(r, high - low), low)), pa.int64())


def candles(symbol: str, start_ms: int, n: int, seed: int = 0) -> pa.Table:
    """n consecutive 1m candles from start_ms (minute-aligned), valid OHLC invariants."""
    steps = _rand_int(n, -500, 501, seed)
    close = pc.add(pc.cumulative_sum(steps), 3_000_000)  # cents, around 30 000 USDT
    close = pc.max_element_wise(close, 100_000)
    open_ = pc.max_element_wise(pc.subtract(close, steps), 100_000)
    high = pc.add(pc.max_element_wise(open_, close), _rand_int(n, 0, 300, seed + 1))
    low = pc.subtract(pc.min_element_wise(open_, close), _rand_int(n, 0, 300, seed + 2))
    vol = _rand_int(n, 0, 5_000_000_000, seed + 3)  # 1e-8 BTC units: up to 50 BTC a minute
    taker = _to_int(pc.multiply(pc.cast(vol, pa.float64()), pc.random(n, initializer=seed + 4)))
    opens = pa.array(range(start_ms, start_ms + n * MS_PER_MINUTE, MS_PER_MINUTE), pa.int64())
    ts = pa.timestamp("ms", tz="UTC")
    quote = pc.divide(pc.multiply(pc.cast(vol, pa.float64()), pc.cast(close, pa.float64())), 100.0)
    cols: dict[str, Any] = {
        "trading_pair": pa.array([symbol] * n, pa.string()),
        "open_price": _decimal_from_units(open_, 2), "high_price": _decimal_from_units(high, 2),
        "low_price": _decimal_from_units(low, 2), "close_price": _decimal_from_units(close, 2),
        "base_volume": _decimal_from_units(vol, 8),
        "quote_volume": _decimal_from_units(_to_int(quote), 8),
        "taker_buy_base_volume": _decimal_from_units(taker, 8),
        "taker_buy_quote_volume": _decimal_from_units(_to_int(pc.divide(pc.multiply(
            pc.cast(taker, pa.float64()), pc.cast(close, pa.float64())), 100.0)), 8),
        "number_of_trades": _rand_int(n, 0, 2000, seed + 5),
        "candle_open_time": opens.cast(ts),
        "candle_close_time": pc.add(opens, MS_PER_MINUTE - 1).cast(ts),
        "ingested_at": pc.add(opens, MS_PER_MINUTE + 5_000).cast(ts),
        "source_key": pa.array(["generated"] * n, pa.string()),
    }
    schema = arrow_schema(CANDLES)
    return pa.table([cols[name] for name in schema.names], schema=schema)


def write_days(lake: Lake, symbol: str, first_day_ms: int, days: int, interval: str = "1m", seed: int = 0) -> int:
    """Write ``days`` whole curated partitions; returns the number of rows."""
    per_day = MS_PER_DAY // MS_PER_MINUTE
    total = 0
    chunk = 64  # days generated per Arrow batch: big enough to vectorise, small enough for memory
    for first in range(0, days, chunk):
        n_days = min(chunk, days - first)
        t = candles(symbol, first_day_ms + first * MS_PER_DAY, n_days * per_day, seed + first)
        for d in range(n_days):
            day = t.slice(d * per_day, per_day)
            date = ms_to_date(first_day_ms + (first + d) * MS_PER_DAY)
            buf = io.BytesIO()
            pq.write_table(day, buf, compression="zstd")
            part = layout.partition(CANDLES, interval=interval, symbol=symbol, date=date)
            lake.write_bytes(f"{part}/{PART_NAME}", buf.getvalue())
            total += day.num_rows
    return total
