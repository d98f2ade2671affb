"""The daily Glue verify compares REST with Binance's daily archive files (issue 17, "reconcile REST
against the archive"), report only: the Glue entry (binance_lake.aws.spark.verify_glue_main) on a
local Spark against an S3 lake on moto_server, the archive served by the emulator's archive server.

A day whose settled file corrects one high and lacks one minute REST has is reported per minute
with both values under curated/_verify/<started>-<run>-archive.json, counted in the alarmed
VerifyUnrepairedPartitions, and the job fails; curated and raw are left exactly as they were.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Dict, Iterator, List

import boto3
import pytest

from binance_lake import layout
from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as fake
from binance_lake.jobs import sync
from binance_lake.lake import Lake, open_lake
from binance_lake.sources.rest.client import BinanceClient, ClientConfig
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, parse_time
from tests.spark_support import local_spark

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (requirements-dev.txt pins it)")

D1, D2 = "2025-02-01", "2025-02-02"
START = parse_time(D1)
EMULATOR_NOW = START + 2 * MS_PER_DAY + 30_000  # both days closed
CHANGED, DROPPED = START + 600 * MS_PER_MINUTE, START + 645 * MS_PER_MINUTE  # 10:00 and 10:45 of D1
BUCKET, REGION = "verify-archive", "eu-west-1"
LAKE_URI = f"s3://{BUCKET}/lake"
# The schedule's view: the job runs on 2025-02-04 at 01:30 UTC, verifies --days_back 2 days
# (02-02, 02-03) and, --archive_lag_days 1 earlier, compares 02-01 and 02-02 with the archive.
RUN_AT = parse_time("2025-02-04T01:30:00Z")


@pytest.fixture(scope="module")
def moto_env() -> Iterator[Dict[str, str]]:
    """moto_server on 127.0.0.1: the driver and the Spark workers reach S3 and CloudWatch through it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield env
    server.stop()


@pytest.fixture(scope="module")
def spark(moto_env) -> Iterator[object]:
    yield from local_spark("binance-lake-verify-archive-test", executor_env=moto_env)


@pytest.fixture(scope="module")
def world(moto_env, tmp_path_factory) -> Iterator[Dict[str, Any]]:
    """BTCUSDT and ETHUSDT from REST into the S3 lake. The archive: BTCUSDT's D1 corrected (one high)
    and without one minute REST has, its D2 as REST has it; ETHUSDT's D1 as REST has it, D2 not out."""
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    lake = open_lake(LAKE_URI)
    emu = Emulator(now_ms=EMULATOR_NOW, seed=5)
    emu.add_symbol("ETHUSDT", listed_at_ms=parse_time("2024-06-01"))
    with emu.serve() as url:
        client = BinanceClient(ClientConfig(base_url=url, timeout_s=5.0, backoff_base_s=0.01, backoff_cap_s=0.05))
        for symbol in ("BTCUSDT", "ETHUSDT"):
            sync.sync_candles(client, lake, symbol, start=START, end=START + 2 * MS_PER_DAY)
    root = tmp_path_factory.mktemp("archive")
    rows = emu.klines("BTCUSDT", "1m", *fake.period_range(D1))
    rest_high = next(r[2] for r in rows if r[0] == CHANGED)
    rows = [[*r[:2], "99999.00000000", *r[3:]] if r[0] == CHANGED else r for r in rows if r[0] != DROPPED]
    fake.write_file(root, "BTCUSDT", "1m", D1, rows)
    fake.write_file(root, "BTCUSDT", "1m", D2, emu.klines("BTCUSDT", "1m", *fake.period_range(D2)))
    fake.write_file(root, "ETHUSDT", "1m", D1, emu.klines("ETHUSDT", "1m", *fake.period_range(D1)))  # agrees
    server = fake.ArchiveServer(root)
    with server.serve() as archive_url:
        yield {"lake": lake, "server": server, "url": archive_url, "rest_high": rest_high}


def _argv(archive_url: str, against: str = "true") -> List[str]:
    return ["--lake_uri", LAKE_URI, "--symbols", "BTCUSDT,ETHUSDT", "--intervals", "1m", "--tables", "candles",
            "--days_back", "2", "--against_archive", against, "--archive_url", archive_url,
            "--archive_lag_days", "1", "--JOB_RUN_ID", "jr_archive"]


def _snapshot(lake: Lake) -> Dict[str, bytes]:
    """Every object but the verify reports (and the transient locks)."""
    return {k: lake.read_bytes(k) for k in lake.list_keys("")
            if not k.startswith((layout.VERIFY, layout.LOCKS))}


def _unrepaired(cw: Any) -> float:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    points = cw.get_metric_statistics(Namespace="BinanceLake", MetricName="VerifyUnrepairedPartitions",
                                      StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1),
                                      Period=3600, Statistics=["Sum"])["Datapoints"]
    return sum(p["Sum"] for p in points)


def test_a_mismatch_with_the_archive_is_reported_per_minute_alarmed_and_never_written(spark, world, capsys):
    from binance_lake.aws.spark import verify_glue_main

    lake, server = world["lake"], world["server"]
    before = _snapshot(lake)
    d2_zip = "/" + fake.archive_path("BTCUSDT", "1m", D2)
    server.corrupt[d2_zip] = 3  # every download of D2's zip fails its sha256: never compared, "failed"
    cw = boto3.client("cloudwatch")

    assert verify_glue_main(_argv(world["url"]), cloudwatch=cw, spark=spark, now_ms=RUN_AT) == 1
    out = capsys.readouterr().out
    summary = json.loads(next(line for line in out.splitlines() if line.startswith('{"against_archive"')))
    key = summary["against_archive"]
    assert key.startswith(layout.VERIFY + "/") and key.endswith("-jr_archive-archive.json")
    # BTCUSDT: D1 mismatched, D2 failed (checksum), both left for a person; ETHUSDT: D1 matches, D2
    # is not published yet (no alarm).
    assert (summary["days"], summary["match"], summary["mismatch"], summary["failed"], summary["not_published"],
            summary["unsettled"]) == (4, 1, 1, 1, 1, 2)
    assert _unrepaired(cw) == 2.0  # the verify itself found nothing: the alarm's count is the archive's

    report = json.loads(lake.read_bytes(key))
    assert (report["mode"], report["winner"], report["dates"]) == ("report-only", "archive", [D1, D2])
    checks = {(c["symbol"], c["date"]): c for c in report["checks"]}
    d1 = checks[("BTCUSDT", D1)]
    assert (d1["status"], d1["minutes_compared"], d1["differing"], d1["only_rest"], d1["only_archive"]) == \
        ("mismatch", 1440, 1, 1, 0)
    assert d1["differences"] == [{"minute": "2025-02-01T10:00:00Z", "column": "high_price",
                                  "rest": f"{Decimal(world['rest_high']):f}", "archive": "99999.00000000"}]
    assert d1["only_rest_minutes"] == ["2025-02-01T10:45:00Z"]
    d2 = checks[("BTCUSDT", D2)]
    assert d2["status"] == "failed" and "sha256" in d2["reason"]
    assert server.requests[d2_zip] == 3  # downloaded, checked, retried; never trusted
    assert (checks[("ETHUSDT", D1)]["status"], checks[("ETHUSDT", D2)]["status"]) == ("match", "not-published")
    assert checks[("ETHUSDT", D1)]["minutes_compared"] == 1440
    assert "BTCUSDT 1m 2025-02-01: mismatch" in out

    # Report only: curated keeps REST's high, raw gains no archive zip; only the reports are new.
    assert _snapshot(lake) == before
    assert not lake.list_keys(layout.ARCHIVE_ZONE)


def test_with_against_archive_false_nothing_is_downloaded(spark, world, capsys):
    from binance_lake.aws.spark import verify_glue_main

    server = world["server"]
    asked = sum(server.requests.values())
    reports = set(world["lake"].list_keys(layout.VERIFY))
    assert verify_glue_main(_argv(world["url"], "false"), cloudwatch=boto3.client("cloudwatch"), spark=spark,
                            now_ms=RUN_AT) == 0
    assert sum(server.requests.values()) == asked
    new = set(world["lake"].list_keys(layout.VERIFY)) - reports
    assert new and not any(k.endswith("-archive.json") for k in new)  # the verify report only
    assert "against_archive" not in capsys.readouterr().out

