"""Test helpers: read the curated lake back and compare with the emulator's ground truth."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any, Dict, List

import pyarrow as pa
import pyarrow.parquet as pq

from binance_lake.lake import LocalLake
from binance_lake.times import to_ms

DECIMAL_IDX = {"open_price": 1, "high_price": 2, "low_price": 3, "close_price": 4, "base_volume": 5,
               "quote_volume": 7, "taker_buy_base_volume": 9, "taker_buy_quote_volume": 10}


def curated(lake: LocalLake, table: str) -> pa.Table:
    keys = [k for k in lake.list_keys(f"curated/{table}") if k.endswith(".parquet")]
    parts = [pq.read_table(io.BytesIO(lake.read_bytes(k))) for k in keys]
    return pa.concat_tables(parts) if parts else pa.table({})


def candle_tuples(lake: LocalLake) -> List[tuple]:
    """Curated candles as comparable tuples (open ms, 8 decimal strings, trades, close ms)."""
    t = curated(lake, "candles")
    if t.num_rows == 0:
        return []
    rows = t.to_pylist()
    out = [(r["trading_pair"], _ms(r["candle_open_time"]), *(f"{r[c]:f}" for c in DECIMAL_IDX),
            r["number_of_trades"], _ms(r["candle_close_time"])) for r in rows]
    return sorted(out)


def truth_tuples(symbol: str, rows: List[list]) -> List[tuple]:
    """The same tuples from /klines rows (ms or µs), as Binance sent them."""
    return sorted((symbol, to_ms(r[0]), *(r[i] for i in DECIMAL_IDX.values()), r[8], to_ms(r[6])) for r in rows)


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


def order_rows(lake: LocalLake) -> Dict[int, Dict[str, Any]]:
    t = curated(lake, "orders")
    return {} if t.num_rows == 0 else {r["order_id"]: r for r in t.to_pylist()}


def dec(value: Any) -> str:
    return f"{Decimal(value):f}" if value is not None else ""
