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


def _popen(args, env):
    """``S.cli`` as a process the test can watch while it runs (stderr streamed, stdout dropped)."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, "BINANCE_API_KEY": S.API_KEY, "BINANCE_API_SECRET": S.API_SECRET,
                "PYTHONPATH": str(S.ROOT)}
    full_env.pop("BINANCE_LAKE_CRASH_AT", None)
    full_env.update(env)
    return subprocess.Popen([sys.executable, "-m", "binance_lake.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd=str(S.ROOT))


def _rerun_waits_for_the_dead_lock_then_takes_it_over(args, env, s3, bucket, lock_key):
    """The rerun must wait while the dead holder's lease runs, say why, and go on once it ends.

    The lease is far longer than the test (600 s), so the rerun surely finds it unexpired: no race
    with the clock. The test then ends the lease by rewriting the lock's ``expires_at`` into the
    past (what waiting out the lease would do) and the rerun takes the lock over on its next poll.
    """
    import json
    import queue
    import threading
    import time

    proc = _popen(args, env)
    lines: queue.Queue = queue.Queue()
    err: list = []

    def pump() -> None:
        for line in proc.stderr:
            err.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.time() + 180
    try:
        while True:
            try:
                if "waiting for curated/_locks/" in lines.get(timeout=0.5):  # it said why it paused
                    break
            except queue.Empty:
                assert proc.poll() is None, f"the rerun ended without waiting: {''.join(err)[-1500:]}"
                assert time.time() < deadline, f"the rerun never said it waits: {''.join(err)[-1500:]}"
        time.sleep(1.0)  # several poll rounds (0.02 s doubling to 0.5 s) while the lease is valid
        assert proc.poll() is None, "the rerun went on while the dead holder's lease was still valid"
        held = json.loads(s3.get_object(Bucket=bucket, Key=lock_key)["Body"].read())
        assert held["expires_at"] > time.time()  # still the dead run's lock, unexpired
        s3.put_object(Bucket=bucket, Key=lock_key, Body=json.dumps({**held, "expires_at": time.time() - 1}))
        proc.wait(timeout=300)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=10)
    return proc.returncode, "".join(err)


@pytest.mark.parametrize(("table", "point", "n"), S3_POINTS)
def test_killed_sync_on_s3_then_rerun_equals_ground_truth(served, s3_endpoint, table, point, n):
    """On S3 every write is one PUT: a kill leaves whole objects or none, and the rerun heals."""
    import io

    import pyarrow.parquet as pq

    from binance_lake.lake import S3Lake

    emu, url = served
    env, s3 = s3_endpoint
    prefix = f"{table}-{point}-{n}"
    uri = f"s3://crash-lake/{prefix}"
    args = [a if a != "LAKE" else uri for a in (S.candle_args(url, "LAKE") if table == "candles"
                                                  else S.order_args(url, "LAKE"))]
    # A holder killed inside the transform leaves its lock: no pid to check on S3, so the rerun
    # waits for the lease (300 s by default, the next tick). Here the lease is longer than the test
    # and the test ends it by hand once the rerun waits (see the helper): deterministic under load.
    env = {**env, "BINANCE_LAKE_LOCK_LEASE_S": "600"}
    first = S.cli(args, {**env, "BINANCE_LAKE_CRASH_AT": f"{point}:{n}"})
    assert first.returncode == -9, first.stderr[-800:]
    lake = S3Lake(uri, s3)
    for key in (k for k in lake.list_keys("curated") if k.endswith(".parquet")):
        pq.read_table(io.BytesIO(lake.read_bytes(key)))  # every object a reader can see is whole
    locks = list(lake.list_keys("curated/_locks"))
    # Killed inside the transform, and only then, the run dies holding its symbol's lock.
    assert len(locks) == (1 if point == "curated" else 0), locks
    if locks:
        code, stderr = _rerun_waits_for_the_dead_lock_then_takes_it_over(
            args, env, s3, "crash-lake", f"{prefix}/{locks[0]}")
    else:
        again = S.cli(args, env)
        code, stderr = again.returncode, again.stderr
    assert code == 0, stderr[-1500:]
    assert not list(lake.list_keys("curated/_locks"))  # the rerun released the lock it took over
    out = (S.compare_candles("s3 crash", lake, emu, S.MAR1, S.MAR1 + 2 * 86_400_000) if table == "candles"
           else S.compare_orders("s3 crash", lake, emu))
    assert (out.lost, out.duplicated, out.changed) == (0, 0, 0), out
