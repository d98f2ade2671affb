"""SIGKILL at named points (BINANCE_LAKE_CRASH_AT, see binance_lake/crash.py), then rerun.

The sync runs as a real ``binance-lake`` process against an emulator served by this test
process. After the kill a reader must still find every Parquet file readable; after the
rerun the lake must equal ground truth (leftover temp files are ignored by readers).
"""

from __future__ import annotations

import random

import pytest

from tests.reliability import scenarios as S

# Seeded: which occurrence of each point dies. Candles: 2 days = 3 pages, 4 raw files,
# 2 partitions; orders: 1600 orders = 2 pages, ~20 date partitions, one transform.
_rng = random.Random(6)
CASES = [("candles", p, _rng.randint(1, S.REACHED["candles"][p])) for p in S.CRASH_POINTS] + \
        [("orders", p, _rng.randint(1, S.REACHED["orders"][p])) for p in S.CRASH_POINTS]


@pytest.fixture(scope="module")
def served():
    emu = S.new_emulator(seed=5, orders=1600)
    with emu.serve() as url:
        yield emu, url


@pytest.mark.parametrize(("table", "point", "n"), CASES)
def test_killed_sync_then_rerun_equals_ground_truth(served, tmp_path, table, point, n):
    emu, url = served
    out = S.crash_and_rerun(table, point, n, tmp_path, emu, url)
    assert out.notes[0].startswith("killed"), out.notes
    assert (out.lost, out.duplicated, out.changed) == (0, 0, 0), out


def test_unknown_crash_point_is_inert(served, tmp_path):
    _emu, url = served
    proc = S.cli(S.candle_args(url, tmp_path / "lake"), {"BINANCE_LAKE_CRASH_AT": "nowhere:1"})
    assert proc.returncode == 0, proc.stderr


# -- the same on an S3 lake (moto_server shared with the killed process) -------------------------

S3_POINTS = [("candles", "marker", 2), ("candles", "raw", 3), ("candles", "curated", 1),
             ("orders", "marker", 1), ("orders", "raw", 2), ("orders", "curated", 1)]


@pytest.fixture(scope="module")
def s3_endpoint():
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    s3 = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                       region_name="eu-west-1").client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="crash-lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert "AWS_SESSION_TOKEN" not in env and os.environ.get("BINANCE_LAKE_CRASH_AT") is None
    yield env, s3
    server.stop()


@pytest.mark.parametrize(("table", "point", "n"), S3_POINTS)
def test_killed_sync_on_s3_then_rerun_equals_ground_truth(served, s3_endpoint, table, point, n):
    """On S3 every write is one PUT: a kill leaves whole objects or none, and the rerun heals."""
    import io

    import pyarrow.parquet as pq

    from binance_lake.lake import S3Lake

    emu, url = served
    env, s3 = s3_endpoint
    uri = f"s3://crash-lake/{table}-{point}-{n}"
    args = [a if a != "LAKE" else uri for a in (S.candle_args(url, "LAKE") if table == "candles"
                                                  else S.order_args(url, "LAKE"))]
    # A holder killed inside the transform leaves its lock: no pid to check on S3, so the rerun
    # waits for the lease (300 s by default, the next tick); here it is 2 s.
    env = {**env, "BINANCE_LAKE_LOCK_LEASE_S": "2"}
    first = S.cli(args, {**env, "BINANCE_LAKE_CRASH_AT": f"{point}:{n}"})
    assert first.returncode == -9, first.stderr[-800:]
    lake = S3Lake(uri, s3)
    for key in (k for k in lake.list_keys("curated") if k.endswith(".parquet")):
        pq.read_table(io.BytesIO(lake.read_bytes(key)))  # every object a reader can see is whole
    again = S.cli(args, env)
    assert again.returncode == 0, again.stderr[-1500:]
    if point == "curated":
        assert "waiting for curated/_locks/" in again.stderr  # it said why it paused
    out = (S.compare_candles("s3 crash", lake, emu, S.MAR1, S.MAR1 + 2 * 86_400_000) if table == "candles"
           else S.compare_orders("s3 crash", lake, emu))
    assert (out.lost, out.duplicated, out.changed) == (0, 0, 0), out
