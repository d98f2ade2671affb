"""The Glue 5.0 Spark jobs' code paths under Python 3.11 with Glue 5.0's own library versions.

The venv holds the versions AWS lists as preinstalled in Glue 5.0
(tests/runtimes/glue5-provided.txt), pyspark 3.5.4, and on top exactly what the jobs install
from S3 (glue_scripts/requirements-glue.txt). A second venv without ours shows why ours are
needed: Glue's boto3 1.34.131 cannot make the lake's conditional writes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from binance_lake import layout
from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as fake
from binance_lake.fold import transform_pending
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import Lake, LocalLake, open_lake
from binance_lake.layout import lock_key
from binance_lake.schema import CANDLES
from binance_lake.sources.archive import ArchiveConfig, ArchiveFile, read_sidecar
from binance_lake.sources.coverage import exchange_gaps
from binance_lake.times import parse_time
from binance_lake.verify import VerifyOptions, verify
from tests.runtimes.conftest import MotoS3
from tests.runtimes.venvs import (
    GLUE5,
    GLUE5_STOCK,
    GLUE_PROVIDED,
    GLUE_REQUIREMENTS,
    RuntimeEnv,
    ensure_env,
    pins,
    python_env,
)

pytestmark = pytest.mark.runtime

RUNNER = str(Path(__file__).with_name("runner.py"))
NOW = parse_time("2025-01-03T00:00:30Z")
START, END = parse_time("2024-12-01"), parse_time("2025-01-03")
SYMBOL, LISTED = "SOLUSDT", parse_time("2024-12-28T00:00:00Z")
GAP = (parse_time("2024-12-30T05:00:00Z"), parse_time("2024-12-30T05:09:00Z"))
# S3 DeleteObject IfMatch needs botocore >= 1.35.70, PutObject IfNoneMatch >= ~1.35.2 (measured by
# the project under older botocore; 1.34.131 fails here, see docs/runtimes.md).
CONDITIONAL_WRITES_BOTOCORE = (1, 35, 70)


def run(env: RuntimeEnv, bundle: Path, command: str, args: Dict[str, Any], **extra: str):
    return env.run([RUNNER, command, json.dumps(args)], env=python_env(bundle, **extra), timeout=600)


def ok(proc) -> Any:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def java_or_skip() -> None:
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        reason = "no Java runtime (java not on PATH, JAVA_HOME unset): Spark cannot start"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One symbol's archive: a monthly file with an exchange gap, then two daily files."""
    root = tmp_path_factory.mktemp("glue-archive")
    emu = Emulator(now_ms=NOW, seed=3)
    emu.add_symbol(SYMBOL, listed_at_ms=LISTED)
    emu.add_exchange_gap(SYMBOL, *GAP)
    for period in fake.periods(START, END, END):
        s, e = fake.period_range(period)
        fake.write_file(root, SYMBOL, "1m", period, emu.klines(SYMBOL, "1m", s, e), header=True)
    with fake.ArchiveServer(root).serve() as url:
        yield url


def curated_rows(lake: Lake) -> pa.Table:
    keys = [k for k in lake.list_keys("curated/candles") if k.endswith(".parquet")]
    t = pa.concat_tables([pq.read_table(io.BytesIO(lake.read_bytes(k))) for k in keys])
    return t.drop_columns(["ingested_at"]).sort_by([("candle_open_time", "ascending")])  # download time differs


def test_glue5_env_is_glues_set_plus_exactly_our_wheels(glue_bundle: Path) -> None:
    env = ensure_env(GLUE5)
    provided, ours = pins(GLUE_PROVIDED), pins(GLUE_REQUIREMENTS)
    found = ok(run(env, glue_bundle, "versions", {"distributions": sorted({*provided, *ours, "pyspark"})}))
    assert found["python"].startswith("3.11.")
    assert found["pyspark"] == "3.5.4"
    assert {n: found[n] for n in provided} == {**provided, **{n: v for n, v in ours.items() if n in provided}}
    assert {n: found[n] for n in ours} == ours
    # requirements-glue.txt pins its whole closure and fits Glue's set: the S3 wheels the jobs
    # install need nothing from PyPI and break nothing we import.
    check = env.run(["-m", "pip", "check"])
    assert check.returncode == 0, check.stdout + check.stderr
    botocore = tuple(int(p) for p in ours["botocore"].split(".")[:3])
    assert botocore >= CONDITIONAL_WRITES_BOTOCORE


def test_glue5_spark_backfill_equals_dev_venv(moto_s3: MotoS3, archive_url: str, glue_bundle: Path,
                                              tmp_path: Path) -> None:
    java_or_skip()
    env = ensure_env(GLUE5)
    bucket = moto_s3.bucket("runtime-glue-backfill")
    results = ok(run(env, glue_bundle, "backfill_spark", {
        "lake_uri": f"s3://{bucket}/lake", "archive_url": archive_url, "symbols": [SYMBOL], "start": START,
        "end": END, "now_ms": NOW}, AWS_ENDPOINT_URL=moto_s3.endpoint))
    assert sorted(r["status"] for r in results) == ["curated"] * 3  # December + 2 daily files

    single = LocalLake(str(tmp_path / "single"))  # the single-machine backfill in the dev venv
    backfill(single, SYMBOL, START, END, ArchiveConfig(base_url=archive_url, workers=2, backoff_s=0), now_ms=NOW)
    glue = open_lake(f"s3://{bucket}/lake", moto_s3.client)
    a, b = curated_rows(single), curated_rows(glue)
    assert a.num_rows == (END - LISTED) // 60_000 - 9  # minus the 9-minute exchange gap
    assert a.schema == b.schema and a.equals(b)
    # The gap record was written with PutObject(IfNoneMatch) by the shipped botocore.
    assert exchange_gaps(glue, SYMBOL, "1m") == exchange_gaps(single, SYMBOL, "1m") == [GAP]


def test_glue5_own_libraries_cast_but_cannot_write_the_lake(moto_s3: MotoS3, archive_url: str, glue_bundle: Path,
                                                            tmp_path: Path) -> None:
    """Without our wheels: Glue's pyarrow 17 runs the casts, Glue's boto3 1.34.131 fails the writes."""
    env = ensure_env(GLUE5_STOCK)
    found = ok(run(env, glue_bundle, "versions", {"distributions": ["pyarrow", "botocore"]}))
    assert found["pyarrow"] == pins(GLUE_PROVIDED)["pyarrow"] and found["botocore"] == "1.34.131"

    # Casts (string -> decimal128, int64 -> decimal, string -> date32) on a local lake: they pass,
    # which is why requirements-glue.txt does not ship pyarrow.
    local = tmp_path / "local"
    single = LocalLake(str(local))
    cfg = ArchiveConfig(base_url=archive_url, workers=1, backoff_s=0)
    backfill(single, SYMBOL, START, END, cfg, now_ms=NOW)  # the same archive files, curated by the dev venv
    sidecar = read_sidecar(single, ArchiveFile(SYMBOL, "1m", "2024-12"))
    assert sidecar, "the dev venv's backfill should have curated the December file"
    published = sidecar["published_checksum"]
    stock_local = tmp_path / "stock-local"
    proc = run(env, glue_bundle, "archive_file", {"lake_uri": str(stock_local), "archive_url": archive_url,
                                                  "symbol": SYMBOL, "period": "2024-12", "published": published})
    assert ok(proc)["status"] == "curated"
    assert curated_rows(LocalLake(str(stock_local))).equals(
        curated_rows(single).filter(pa.compute.less(curated_rows(single)["candle_open_time"].cast(pa.int64()),
                                                    parse_time("2025-01-01"))))

    # The REST raw -> curated casts the verify job re-derives with (string -> decimal128 / date32).
    rest = tmp_path / "rest"
    build_raw_lake(LocalLake(str(rest)))
    shutil.copytree(rest, tmp_path / "rest-dev")
    ok(run(env, glue_bundle, "casts", {"lake_dir": str(rest), "tables": ["candles", "orders"],
                                       "symbols": [REST_SYMBOL]}))
    transform_pending(LocalLake(str(tmp_path / "rest-dev")), ["candles", "orders"], [REST_SYMBOL])
    stock, dev = snapshot(rest / "curated"), snapshot(tmp_path / "rest-dev" / "curated")
    assert sorted(stock) == sorted(dev) and any("orders" in k for k in stock)
    assert all(stock[k].equals(dev[k]) for k in stock)

    # The same file into S3: the first conditional write, PutObject(IfNoneMatch) of the fold's
    # writer lease, is refused by botocore 1.34 (before, the exchange gap record was the first).
    bucket = moto_s3.bucket("runtime-glue-stock")
    proc = run(env, glue_bundle, "archive_file", {"lake_uri": f"s3://{bucket}/lake", "archive_url": archive_url,
                                                  "symbol": SYMBOL, "period": "2024-12", "published": published},
               AWS_ENDPOINT_URL=moto_s3.endpoint)
    assert proc.returncode != 0
    # botocore 1.34 does not know the parameter: ParamValidationError on the lease (if_absent).
    assert "ParamValidationError" in proc.stderr and "curated/_locks/" in proc.stderr, proc.stderr[-2000:]
    assert "botocore" in pins(GLUE_REQUIREMENTS) and "boto3" in pins(GLUE_REQUIREMENTS)


REST_NOW = 1709424030000  # tests.conftest.NOW_MS: 2024-03-03T00:00:30Z
REST_SYMBOL = "BTCUSDT"


def test_glue5_spark_verify_equals_dev_venv(moto_s3: MotoS3, glue_bundle: Path) -> None:
    """The rebuild-and-verify job repairs a corrupted S3 lake exactly as the dev venv does."""
    java_or_skip()
    env = ensure_env(GLUE5)
    bucket = moto_s3.bucket("runtime-glue-verify")
    glue, dev = (open_lake(f"s3://{bucket}/{name}", moto_s3.client) for name in ("glue", "dev"))
    dates = build_corrupted_lake(dev)
    for key in dev.list_keys(""):  # byte-identical copy: both runs start from the same lake
        glue.write_bytes(key, dev.read_bytes(key))
    for lake in (glue, dev):  # a dead run's lock: the repair takes it over with DeleteObject(IfMatch)
        lake.write_bytes(lock_key("candles", REST_SYMBOL), json.dumps(
            {"owner": "dead", "host": "gone", "pid": 1, "expires_at": 0}).encode())

    found = ok(run(env, glue_bundle, "verify_spark", {"lake_uri": f"s3://{bucket}/glue", "symbols": [REST_SYMBOL],
                                                      "interval": "1m", "dates": dates, "run_id": "same"},
                   AWS_ENDPOINT_URL=moto_s3.endpoint))
    mine = verify(dev, [REST_SYMBOL], "1m", dates, VerifyOptions(run_id="same"))
    assert found["partitions"] == json.loads(json.dumps([dataclasses.asdict(p) for p in mine.partitions]))
    assert found["summary"] == json.loads(json.dumps(mine.summary()))
    assert found["summary"]["repaired"] == 1  # the corrupted candle day
    for key in [k for k in dev.list_keys("curated/candles") if k.endswith(".parquet")]:
        assert pq.read_table(io.BytesIO(glue.read_bytes(key))).equals(pq.read_table(io.BytesIO(dev.read_bytes(key))))
    assert glue.list_keys("curated/_locks") == []


def build_raw_lake(lake: Lake, transform: bool = False) -> None:
    """REST candles (a day) + orders of one symbol from the emulator, extracted in the dev venv."""
    from binance_lake.jobs import sync
    from binance_lake.sources.rest.client import BinanceClient, ClientConfig
    from tests.conftest import API_KEY, API_SECRET

    emu = Emulator(now_ms=REST_NOW, seed=11)
    emu.add_api_key(API_KEY, API_SECRET)
    emu.generate_orders(REST_SYMBOL, 30, REST_NOW - 2 * 86_400_000, REST_NOW - 60_000, seed=2)
    with emu.serve() as url:
        client = BinanceClient(ClientConfig(base_url=url, api_key=API_KEY, api_secret=API_SECRET, timeout_s=5.0,
                                            backoff_base_s=0.01, backoff_cap_s=0.05))
        sync.sync_candles(client, lake, REST_SYMBOL, start=REST_NOW - 86_400_000 - 30_000, end=REST_NOW,
                          transform=transform)
        sync.sync_orders(client, lake, REST_SYMBOL, transform=transform)


def snapshot(root: Path) -> Dict[str, pa.Table]:
    return {str(p.relative_to(root)): pq.read_table(p) for p in sorted(root.rglob("*.parquet"))}


def build_corrupted_lake(lake: Lake) -> List[str]:
    """REST candles + orders of one symbol, transformed, then one candle's price changed."""
    build_raw_lake(lake, transform=True)
    day = layout.partition(CANDLES, interval="1m", symbol=REST_SYMBOL, date="2024-03-02")
    key = next(k for k in lake.list_keys(day) if k.endswith(".parquet"))
    table = pq.read_table(io.BytesIO(lake.read_bytes(key)))
    prices = table["high_price"].to_pylist()
    prices[7] += Decimal("0.01")
    table = table.set_column(table.schema.get_field_index("high_price"), table.schema.field("high_price"),
                             pa.array(prices, table.schema.field("high_price").type))
    out = io.BytesIO()
    pq.write_table(table, out)
    lake.write_bytes(key, out.getvalue())
    return ["2024-03-01", "2024-03-02"]
