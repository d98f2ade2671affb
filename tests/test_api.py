"""The Python API (binance_lake.open_lake): exact ranges, exact values, pruning, SQL, errors, S3."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import boto3
import pandas as pd
import pytest
from moto import mock_aws

import binance_lake
from binance_lake.errors import BadInputError, StorageError
from binance_lake.jobs import sync
from binance_lake.lake import S3Lake
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, parse_time
from tests.conftest import NOW_MS
from tests.helpers import DECIMAL_IDX, truth_tuples

MAR1 = parse_time("2024-03-01")
MAR2 = parse_time("2024-03-02")
MAR3 = parse_time("2024-03-03")


@pytest.fixture
def two_days(client, lake, emulator):
    """A lake with BTCUSDT 1m candles for 2024-03-01 and 2024-03-02, synced from the emulator."""
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR3)
    return lake


def tuples(tbl):
    """The API's rows as helpers.truth_tuples shapes them (decimals printed as Binance sends them)."""
    ms = lambda dt: int(dt.timestamp() * 1000)  # noqa: E731
    return [(r["trading_pair"], ms(r["candle_open_time"]), *(f"{r[c]:f}" for c in DECIMAL_IDX),
             r["number_of_trades"], ms(r["candle_close_time"])) for r in tbl.to_pylist()]


def open_times(tbl):
    return [int(t.timestamp() * 1000) for t in tbl.column("candle_open_time").to_pylist()]


def test_importing_the_package_loads_neither_pyarrow_nor_duckdb():
    code = ("import sys, binance_lake; binance_lake.open_lake; "
            "print(sorted(m for m in ('pyarrow', 'duckdb', 'pandas', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_candles_range_is_start_inclusive_end_exclusive_and_equals_binance(two_days, emulator):
    lake = binance_lake.open_lake(two_days.root)
    lo, hi = MAR1 + 10 * MS_PER_MINUTE, MAR1 + 70 * MS_PER_MINUTE
    tbl = lake.candles("BTCUSDT", "1m", start="2024-03-01T00:10:00Z", end="2024-03-01T01:10:00Z")
    assert open_times(tbl) == list(range(lo, hi, MS_PER_MINUTE))  # 00:10 in, 01:10 out, sorted
    assert tuples(tbl) == truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1m", lo, hi))
    assert str(tbl.schema.field("open_price").type) == "decimal128(38, 8)"
    assert str(tbl.schema.field("candle_open_time").type) == "timestamp[ms, tz=UTC]"


def test_every_time_form_means_the_same_utc_instant(two_days):
    lake = binance_lake.open_lake(two_days.root)
    iso = lake.candles("BTCUSDT", start="2024-03-01T23:30:00Z", end="2024-03-02T00:30:00Z")
    naive = lake.candles("BTCUSDT", start=datetime(2024, 3, 1, 23, 30), end=datetime(2024, 3, 2, 0, 30))
    plus2 = timezone(timedelta(hours=2))
    aware = lake.candles("BTCUSDT", start=datetime(2024, 3, 2, 1, 30, tzinfo=plus2),
                         end=datetime(2024, 3, 2, 2, 30, tzinfo=plus2))
    assert open_times(iso) == open_times(naive) == open_times(aware) == list(
        range(MAR2 - 30 * MS_PER_MINUTE, MAR2 + 30 * MS_PER_MINUTE, MS_PER_MINUTE))  # across midnight
    day = lake.candles("BTCUSDT", start=date(2024, 3, 2), end=date(2024, 3, 3))
    assert open_times(day) == list(range(MAR2, MAR3, MS_PER_MINUTE))
    everything = lake.candles("BTCUSDT")
    assert open_times(everything) == list(range(MAR1, MAR3, MS_PER_MINUTE))


def test_a_one_day_read_opens_only_that_days_partition(two_days):
    # Corrupt 03-02's only file: a read of 03-01 never opens it, so it still works.
    [bad] = [k for k in two_days.list_keys("curated/candles") if "date=2024-03-02" in k]
    two_days.write_bytes(bad, b"not parquet")
    lake = binance_lake.open_lake(two_days.root)
    assert lake.candles("BTCUSDT", start="2024-03-01", end="2024-03-02").num_rows == 1440
    assert lake.candles("BTCUSDT", end="2024-03-02").num_rows == 1440  # end exclusive: 03-02 not opened
    with pytest.raises(StorageError, match=r"date=2024-03-02.*transform --rebuild --symbol BTCUSDT"):
        lake.candles("BTCUSDT", start="2024-03-01T23:59:00Z", end="2024-03-02T00:01:00Z")
    # Locally, DuckDB prunes the hive `date` column of the sql() views the same way.
    assert lake.sql("SELECT count(*) AS n FROM candles WHERE date = '2024-03-01'").column("n").to_pylist() == [1440]
    with pytest.raises(StorageError, match="rebuild it from raw"):
        lake.sql("SELECT count(*) FROM candles")


def test_sql_runs_over_the_cli_views_with_params(two_days):
    lake = binance_lake.open_lake(two_days.root)
    per_day = lake.sql("SELECT date, count(*) AS n, sum(base_volume) AS vol FROM candles "
                       "WHERE symbol = ? AND interval = ? GROUP BY date ORDER BY date", ["BTCUSDT", "1m"])
    assert per_day.column("date").to_pylist() == ["2024-03-01", "2024-03-02"]
    assert per_day.column("n").to_pylist() == [1440, 1440]
    day1 = lake.candles("BTCUSDT", start="2024-03-01", end="2024-03-02")
    exact = sum(day1.column("base_volume").to_pylist(), Decimal(0))
    assert per_day.column("vol").to_pylist()[0] == exact  # decimal sum, no float rounding
    with pytest.raises(BadInputError, match="query failed"):
        lake.sql("SELECT nope FROM candles")
    rows = lake.sql("SELECT epoch_ms(candle_open_time) AS t FROM candles WHERE candle_open_time >= ? "
                    "AND candle_open_time < ? ORDER BY t", ["2024-03-01T23:58:00Z", "2024-03-02T00:02:00Z"])
    assert rows.column("t").to_pylist() == list(range(MAR2 - 2 * MS_PER_MINUTE, MAR2 + 2 * MS_PER_MINUTE,
                                                      MS_PER_MINUTE))  # session time zone UTC


def test_pandas_conversion_keeps_exact_decimals_and_utc_times(two_days, emulator):
    lake = binance_lake.open_lake(two_days.root)
    df = lake.candles("BTCUSDT", start="2024-03-01T12:00:00Z", end="2024-03-01T12:03:00Z").to_pandas()
    truth = emulator.klines("BTCUSDT", "1m", MAR1 + 12 * 3600_000, MAR1 + 12 * 3600_000 + 3 * MS_PER_MINUTE)
    assert [f"{v:f}" for v in df["close_price"]] == [k[4] for k in truth]
    assert all(isinstance(v, Decimal) for v in df["close_price"])
    assert list(df["candle_open_time"]) == [pd.Timestamp(k[0], unit="ms", tz="UTC") for k in truth]


def test_symbols_intervals_status(two_days):
    lake = binance_lake.open_lake(two_days.root)
    assert lake.symbols() == ["BTCUSDT"] and lake.symbols("orders") == []
    assert lake.intervals() == ["1m"] and lake.intervals("ETHUSDT") == []
    [st] = lake.status()["candles"]
    assert (st["symbol"], st["rows"], st["first_candle"], st["gaps"]) == ("BTCUSDT", 2880, "2024-03-01T00:00:00Z", [])


def test_clear_errors_name_the_problem_and_what_exists(two_days, tmp_path):
    lake = binance_lake.open_lake(two_days.root)
    with pytest.raises(BadInputError, match=r"ETHUSDT 1m .*it holds: BTCUSDT 1m"):
        lake.candles("ETHUSDT")
    with pytest.raises(BadInputError, match=r"BTCUSDT 5m .*it holds: BTCUSDT 1m"):
        lake.candles("BTCUSDT", "5m")
    with pytest.raises(BadInputError, match="unsupported interval '7m'; use one of 1s, 1m"):
        lake.candles("BTCUSDT", "7m")
    with pytest.raises(BadInputError, match="end 2024-03-01T00:00:00Z is not after start"):
        lake.candles("BTCUSDT", start="2024-03-01", end="2024-03-01")
    with pytest.raises(BadInputError, match=r"bad start 1709251200000 \(int\)"):
        lake.candles("BTCUSDT", start=1709251200000)
    with pytest.raises(BadInputError, match="bad end 'yesterday'"):
        lake.candles("BTCUSDT", end="yesterday")
    with pytest.raises(BadInputError, match=r"no curated orders for BTCUSDT .*it holds: nothing yet"):
        lake.orders("BTCUSDT")
    with pytest.raises(BadInputError, match="does not exist"):
        binance_lake.open_lake(str(tmp_path / "no-such-lake"))


def test_orders_by_creation_time_and_status(client, lake, emulator):
    truth = emulator.generate_orders("BTCUSDT", 300, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=5)
    sync.sync_orders(client, lake, "BTCUSDT")
    api = binance_lake.open_lake(lake.root)
    lo, hi = NOW_MS - 2 * MS_PER_DAY, NOW_MS - MS_PER_DAY
    tbl = api.orders("btcusdt", start=datetime.fromtimestamp(lo / 1000, timezone.utc),
                     end=datetime.fromtimestamp(hi / 1000, timezone.utc))
    want = sorted((o["time"], o["orderId"]) for o in truth if lo <= o["time"] < hi)
    got = [(int(r["order_time"].timestamp() * 1000), r["order_id"]) for r in tbl.to_pylist()]
    assert got == want and len(want) > 10
    by_id = {o["orderId"]: o for o in truth}
    assert all(f"{r['price']:f}" == by_id[r["order_id"]]["price"] for r in tbl.to_pylist())
    filled = api.orders("BTCUSDT", status=["FILLED", "canceled"])
    assert sorted(filled.column("order_id").to_pylist()) == sorted(
        o["orderId"] for o in truth if o["status"] in ("FILLED", "CANCELED"))
    assert set(filled.column("status").to_pylist()) == {"FILLED", "CANCELED"}


def test_an_s3_lake_reads_the_same_as_the_local_one(two_days):
    local = binance_lake.open_lake(two_days.root)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="quant")
        remote = S3Lake("s3://quant/lake", s3)
        for key in two_days.list_keys("curated"):
            remote.write_bytes(key, two_days.read_bytes(key))
        lake = binance_lake.open_lake("s3://quant/lake", s3_client=s3)
        assert lake.symbols() == ["BTCUSDT"]
        one_hour = {"start": "2024-03-02T05:00:00Z", "end": "2024-03-02T06:00:00Z"}
        assert lake.candles("BTCUSDT", **one_hour).equals(local.candles("BTCUSDT", **one_hour))
        q = "SELECT date, count(*) AS n, max(high_price) AS hi FROM candles GROUP BY date ORDER BY date"
        assert lake.sql(q).equals(local.sql(q))
