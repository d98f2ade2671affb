"""The Spark backfill (local mode) writes exactly what the single-machine backfill writes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as fake
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import LocalLake
from binance_lake.sources.archive import ArchiveConfig
from binance_lake.sources.coverage import exchange_gaps
from binance_lake.times import parse_time
from tests.spark_support import local_spark

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (requirements-dev.txt pins it)")

NOW = parse_time("2025-01-03T00:00:30Z")
START, END = parse_time("2024-12-01"), parse_time("2025-01-03")
SYMBOLS = {"ETHUSDT": parse_time("2024-12-27T13:00:00Z"), "SOLUSDT": parse_time("2024-12-28T00:00:00Z")}
GAP = (parse_time("2024-12-30T05:00:00Z"), parse_time("2024-12-30T05:09:00Z"))


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    yield from local_spark("binance-lake-test")


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory) -> Iterator[str]:
    """Two symbols: a monthly file (ms, one with a header) and daily files (µs)."""
    root = tmp_path_factory.mktemp("spark-archive")
    emu = Emulator(now_ms=NOW, seed=3)
    for symbol, listed in SYMBOLS.items():
        emu.add_symbol(symbol, listed_at_ms=listed)
    emu.add_exchange_gap("SOLUSDT", *GAP)
    for symbol in SYMBOLS:
        for period in fake.periods(START, END, END):
            s, e = fake.period_range(period)
            fake.write_file(root, symbol, "1m", period, emu.klines(symbol, "1m", s, e), header=symbol == "SOLUSDT")
    with fake.ArchiveServer(root).serve() as url:
        yield url


def curated_rows(root: Path) -> pa.Table:
    """Every curated candle, sorted, without ingested_at (the download time differs per run)."""
    lake = LocalLake(str(root))
    keys = [k for k in lake.list_keys("curated/candles") if k.endswith(".parquet")]
    t = pa.concat_tables([pq.read_table(io.BytesIO(lake.read_bytes(k))) for k in keys])
    return t.drop_columns(["ingested_at"]).sort_by([("trading_pair", "ascending"), ("candle_open_time", "ascending")])


def test_spark_output_equals_single_machine_row_for_row(spark, archive_url, tmp_path):
    from binance_lake.aws.spark import backfill_spark

    cfg = ArchiveConfig(base_url=archive_url, workers=2, backoff_s=0)
    single, distributed = tmp_path / "single", tmp_path / "spark"
    for symbol in SYMBOLS:
        backfill(LocalLake(str(single)), symbol, START, END, cfg, now_ms=NOW)
    results = backfill_spark(spark, str(distributed), list(SYMBOLS), START, END, cfg, now_ms=NOW, partitions=2)
    assert sorted(r["status"] for r in results) == ["curated"] * 6  # per symbol: December + 2 daily files
    a, b = curated_rows(single), curated_rows(distributed)
    assert a.num_rows == sum((END - listed) // 60_000 for listed in SYMBOLS.values()) - 9
    assert a.schema == b.schema
    assert a.equals(b)
    # Same partitions, same exchange gaps, same sidecar coverage.
    same = LocalLake(str(single)), LocalLake(str(distributed))
    assert [k for k in same[0].list_keys("curated/candles")] == [k for k in same[1].list_keys("curated/candles")]
    assert exchange_gaps(same[1], "SOLUSDT", "1m") == exchange_gaps(same[0], "SOLUSDT", "1m") == [GAP]
    assert same[0].list_keys("raw/archive") == same[1].list_keys("raw/archive")
