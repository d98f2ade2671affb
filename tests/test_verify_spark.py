"""The Spark verify (local[2]) reports and repairs exactly what the single-machine verify does,
and the Glue entry publishes the BinanceLake metrics and fails the run on an unrepaired mismatch."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Iterator

import boto3
import pyarrow as pa
import pytest

from binance_lake import layout
from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as fake
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import LocalLake
from binance_lake.schema import CANDLES, ORDERS
from binance_lake.sources.archive import ArchiveConfig
from binance_lake.times import parse_time
from binance_lake.verify import VerifyOptions, verify
from tests.spark_support import local_spark
from tests.test_verify import TICK, build_lake, read, set_value, snapshot, write

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (requirements-dev.txt pins it)")

ARCHIVE_NOW = parse_time("2025-01-03T00:00:30Z")
ARCHIVE_START, ARCHIVE_END = parse_time("2025-01-01"), parse_time("2025-01-03")
DATES = ["2024-03-01", "2024-03-02", "2025-01-01", "2025-01-02"]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
# The archive comparison is off here (tests/test_verify_archive_spark.py runs it); the settings are required.
NO_ARCHIVE = ["--against_archive", "false", "--archive_url", "https://data.binance.vision", "--archive_lag_days", "2"]


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    yield from local_spark("binance-lake-verify-test")


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory) -> Path:
    """BTCUSDT from REST (candles + orders), ETHUSDT from archive zips; then three corruptions."""
    root = tmp_path_factory.mktemp("verify-spark") / "lake"
    build_lake(root)
    archive_root = tmp_path_factory.mktemp("verify-archive")
    emu = Emulator(now_ms=ARCHIVE_NOW, seed=3)
    emu.add_symbol("ETHUSDT", listed_at_ms=parse_time("2024-06-01"))
    for period in fake.periods(ARCHIVE_START, ARCHIVE_END, ARCHIVE_END):
        s, e = fake.period_range(period)
        fake.write_file(archive_root, "ETHUSDT", "1m", period, emu.klines("ETHUSDT", "1m", s, e))
    lake = LocalLake(str(root))
    with fake.ArchiveServer(archive_root).serve() as url:
        backfill(lake, "ETHUSDT", ARCHIVE_START, ARCHIVE_END, ArchiveConfig(base_url=url, backoff_s=0),
                 now_ms=ARCHIVE_NOW)
    eth = layout.partition(CANDLES, interval="1m", symbol="ETHUSDT", date="2025-01-01")
    write(lake, eth, read(lake, eth).slice(0, 1000))  # rows only the archive zip can restore
    btc = layout.partition(CANDLES, interval="1m", symbol="BTCUSDT", date="2024-03-02")
    day = read(lake, btc)
    write(lake, btc, set_value(day, 7, "high_price", day["high_price"][7].as_py() + TICK))
    orders = layout.partition(ORDERS, symbol="BTCUSDT", date="2024-03-01")
    o = read(lake, orders)
    write(lake, orders, pa.concat_tables([o, set_value(o.slice(0, 1), 0, "order_id", 10**12)]))  # foreign
    return root


def _reports(report) -> list:
    return [dataclasses.asdict(p) for p in report.partitions]


def test_spark_verify_equals_single_machine_exactly(spark, corrupted, tmp_path):
    from binance_lake.aws.spark import verify_spark

    single, distributed = tmp_path / "single", tmp_path / "spark"
    shutil.copytree(corrupted, single)
    shutil.copytree(corrupted, distributed)
    a = verify(LocalLake(str(single)), SYMBOLS, "1m", DATES, VerifyOptions(run_id="same"))
    b = verify_spark(spark, str(distributed), SYMBOLS, "1m", DATES, VerifyOptions(run_id="same"), partitions=2)
    assert len(a.partitions) == 16 and _reports(a) == _reports(b)
    assert a.summary() == b.summary()
    assert (a.summary()["repaired"], a.summary()["raw_missing"], a.summary()["ok"]) == (2, 1, 13)
    by = {p.partition: p for p in a.partitions}
    assert by[layout.partition(CANDLES, interval="1m", symbol="ETHUSDT", date="2025-01-01")].missing == 440
    assert by[layout.partition(ORDERS, symbol="BTCUSDT", date="2024-03-01")].extra_keys == [10**12]
    # Same repaired lake, file for file (the reports differ only in their time stamps).
    left, right = snapshot(single / "curated" / "candles"), snapshot(distributed / "curated" / "candles")
    assert left == right and snapshot(single / "curated" / "orders") == snapshot(distributed / "curated" / "orders")


def test_glue_entry_publishes_metrics_and_fails_on_unrepaired(spark, corrupted, tmp_path, capsys):
    from moto import mock_aws

    from binance_lake.aws.spark import verify_glue_main

    root = tmp_path / "lake"
    shutil.copytree(corrupted, root)
    argv = ["--lake_uri", str(root), "--symbols", "BTCUSDT,ETHUSDT", "--intervals", "1m", "--tables",
            "candles,orders", "--days_back", "1", "--start", "2024-03-01",
            "--end", "2024-03-03", "--JOB_RUN_ID", "jr_0123abc", "--job-bookmark-option", "job-bookmark-disable",
            *NO_ARCHIVE]
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        assert verify_glue_main(argv, cloudwatch=cw, spark=spark) == 1  # the foreign order stays: a human looks
        values = {m["MetricName"]: _sum(cw, m["MetricName"]) for m in
                  cw.list_metrics(Namespace="BinanceLake")["Metrics"]}
    # Only the alarmed count is a metric; the others stay in the report (issue 14, lever 11).
    assert values == {"VerifyUnrepairedPartitions": 1.0}
    out = capsys.readouterr().out
    assert '"report_key": "curated/_verify/' in out and "-jr_0123abc.json" in out
    assert len(LocalLake(str(root)).list_keys("curated/_verify")) == 1
    # --days_back relative to a fixed clock: yesterday of 2024-03-03 is 2024-03-02, already repaired.
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        assert verify_glue_main(["--lake_uri", str(root), "--symbols", "BTCUSDT", "--intervals", "1m", "--tables",
                                 "candles,orders", "--days_back", "1", *NO_ARCHIVE],
                                cloudwatch=cw, spark=spark, now_ms=parse_time("2024-03-03T01:00:00Z")) == 0
    assert '"partitions": 2, "ok": 2' in capsys.readouterr().out


def _sum(cw, name: str) -> float:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    points = cw.get_metric_statistics(Namespace="BinanceLake", MetricName=name, StartTime=now - timedelta(hours=1),
                                      EndTime=now + timedelta(hours=1), Period=3600, Statistics=["Sum"])["Datapoints"]
    return sum(p["Sum"] for p in points)



def test_archive_day_is_repaired_to_what_the_stored_zips_rebuild(corrupted, tmp_path):
    """Candles the archive brought are re-derived from the verified zips, as `transform --rebuild` does."""
    from binance_lake.jobs.sync import rebuild

    fixed, rebuilt = tmp_path / "fixed", tmp_path / "rebuilt"
    shutil.copytree(corrupted, fixed)
    shutil.copytree(corrupted, rebuilt)
    report = verify(LocalLake(str(fixed)), ["ETHUSDT"], "1m", DATES[2:], VerifyOptions(), tables=["candles"])
    assert [(p.status, p.missing) for p in report.partitions] == [("repaired", 440), ("ok", 0)]
    shutil.rmtree(rebuilt / "curated")
    assert rebuild(LocalLake(str(rebuilt)), ["ETHUSDT"]).rows_written > 0  # curated gone: the zips alone
    for d in DATES[2:]:
        part = layout.partition(CANDLES, interval="1m", symbol="ETHUSDT", date=d)
        assert read(LocalLake(str(fixed)), part).equals(read(LocalLake(str(rebuilt)), part))
