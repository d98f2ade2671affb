"""Keys, statuses and column lists come from binance_lake.schema: dedupe/upsert follows
Table.primary_key and Table.version_columns, the open-order statuses reach SQL from one set,
and an export is one (symbol, interval): a second interval never mixes into a CSV."""

from __future__ import annotations

import csv
import dataclasses

import pyarrow as pa
import pytest

from binance_lake.columns import arrow_schema, candles_table, dedupe
from binance_lake.errors import BadInputError
from binance_lake.export import export_csv
from binance_lake.jobs import sync
from binance_lake.query import connect, orders_status
from binance_lake.schema import CANDLES, OPEN_ORDER_STATUSES, ORDERS
from binance_lake.times import parse_time

MAR1 = parse_time("2024-03-01")
KLINE = [MAR1, "1.0", "2.0", "0.5", "1.5", "10", MAR1 + 59_999, "15", 3, "5", "7.5", "0"]


def _candles(rows, ingested):
    t, rejected = candles_table("BTCUSDT", "1m", rows, ingested, [f"k{i}" for i in range(len(rows))])
    assert rejected == []
    return t


def test_dedupe_keeps_the_greatest_version_per_primary_key():
    later = [*KLINE[:4], "1.6", *KLINE[5:]]  # same open time, another close, fetched later
    t = _candles([KLINE, later], [1_000, 2_000])
    [row] = dedupe(t, CANDLES).to_pylist()
    assert str(row["close_price"]) == "1.60000000"  # the later fetch wins (version column ingested_at)


def test_dedupe_follows_the_table_definition_not_a_hard_coded_key():
    # k0: the earlier minute fetched later; k1: the later minute fetched earlier.
    t = _candles([KLINE, [MAR1 + 60_000, *KLINE[1:6], MAR1 + 119_999, *KLINE[7:]]], [2_000, 1_000])
    assert dedupe(t, CANDLES).num_rows == 2  # two open times: two rows
    per_pair = dataclasses.replace(CANDLES, primary_key=("trading_pair",))
    [row] = dedupe(t, per_pair).to_pylist()  # one key per pair: one row, the newest fetch (ingested_at)
    assert row["source_key"] == "k0"
    by_open_time = dataclasses.replace(per_pair, version_columns=("candle_open_time",))
    [row] = dedupe(t, by_open_time).to_pylist()  # another version column: the later minute wins
    assert row["source_key"] == "k1"


def test_open_order_statuses_reach_the_status_sql_from_the_schema(lake):
    statuses = [*sorted(OPEN_ORDER_STATUSES), "FILLED", "CANCELED"]
    n = len(statuses)
    t = pa.table({
        "symbol": ["BTCUSDT"] * n, "order_id": list(range(n)), "status": statuses,
        "update_time": pa.array([MAR1] * n, pa.timestamp("ms", tz="UTC")),
    })
    con = connect(lake)
    con.duckdb.register("orders_rows", t)
    con.execute("CREATE OR REPLACE VIEW orders AS SELECT * FROM orders_rows")
    [row] = orders_status(con)
    assert row["orders"] == n and row["open_orders"] == len(OPEN_ORDER_STATUSES)


def test_arrow_schema_is_built_from_the_table_definition():
    assert arrow_schema(ORDERS).names == ORDERS.column_names
    assert arrow_schema(CANDLES).field("close_price").type == pa.decimal128(38, 8)


@pytest.fixture
def two_intervals(client, lake):
    """BTCUSDT candles of 1m and 5m for the same two hours."""
    for interval in ("1m", "5m"):
        sync.sync_candles(client, lake, "BTCUSDT", interval, start=MAR1, end=MAR1 + 2 * 3_600_000)
    return lake


def _exported(lake, tmp_path, interval=None):
    out = tmp_path / f"candles-{interval}.csv"
    n = export_csv(lake, "candles", "BTCUSDT", str(out), interval=interval)
    rows = list(csv.reader(out.open()))[1:]
    assert len(rows) == n
    return rows


def test_export_is_one_interval_per_csv(two_intervals, tmp_path):
    """Before: the CSV held 1m and 5m rows interleaved (export filtered by symbol only)."""
    five = _exported(two_intervals, tmp_path, "5m")
    one = _exported(two_intervals, tmp_path, "1m")
    assert (len(one), len(five)) == (120, 24)
    opens = [r[8] for r in five]
    assert opens == sorted(set(opens)) and all(o[14:16] in ("00", "05", "10", "15", "20", "25", "30", "35",
                                                            "40", "45", "50", "55") for o in opens)
    with pytest.raises(BadInputError, match=r"several intervals \(1m, 5m\).*--interval"):
        _exported(two_intervals, tmp_path)  # none named: a clear error, never a mixed CSV


def test_export_of_a_single_interval_lake_needs_no_interval(client, lake, tmp_path):
    sync.sync_candles(client, lake, "BTCUSDT", "5m", start=MAR1, end=MAR1 + 3_600_000)
    assert len(_exported(lake, tmp_path)) == 12
