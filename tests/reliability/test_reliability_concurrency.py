"""Two runs at once on one lake: syncs (threads and processes), sync + transform, and the
transform lock itself on a local lake and on S3 (moto). Mechanism: docs/reliability.md."""

from __future__ import annotations

import threading
import time

import boto3
from moto import mock_aws

from binance_lake import fold
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake, S3Lake
from binance_lake.sources.rest.raw import write_raw
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.reliability import scenarios as S

MAR1 = S.MAR1


def test_two_syncs_in_threads_equal_ground_truth(tmp_path):
    emu = S.new_emulator(7, orders=1800)
    lake = LocalLake(str(tmp_path / "lake"))
    with emu.serve() as url:
        S.run_together(*[lambda: sync.sync_candles(S.fast_client(url), lake, "BTCUSDT", start=MAR1,
                                                   end=MAR1 + 2 * MS_PER_DAY)] * 2,
                       *[lambda: sync.sync_orders(S.fast_client(url), lake, "BTCUSDT")] * 2)
    assert S.compare_candles("threads", lake, emu, MAR1, MAR1 + 2 * MS_PER_DAY).ok
    assert S.compare_orders("threads", lake, emu).ok
    assert lake.list_keys("curated/_locks") == []  # every lock released


def test_two_sync_processes_and_a_transform_process_at_once(tmp_path):
    emu = S.new_emulator(8, orders=1800)
    lake_dir = tmp_path / "lake"
    with emu.serve() as url:
        results = S.processes_together([S.candle_args(url, lake_dir), S.candle_args(url, lake_dir),
                                        S.order_args(url, lake_dir), S.order_args(url, lake_dir),
                                        ["transform", "--lake", str(lake_dir)]])
    assert [rc for rc, _ in results] == [0] * 5, results
    lake = LocalLake(str(lake_dir))
    assert S.compare_candles("processes", lake, emu, MAR1, MAR1 + 2 * MS_PER_DAY).ok
    assert S.compare_orders("processes", lake, emu).ok


def _raw_day(emu, lake, start: int, minutes: int, name: str) -> None:
    rows = emu.klines("BTCUSDT", "1m", start, start + minutes * MS_PER_MINUTE)
    key = f"raw/klines/interval=1m/symbol=BTCUSDT/date=2024-03-01/{start}-{start + minutes * MS_PER_MINUTE}.json"
    write_raw(lake, key, {"format": 1, "table": "klines", "symbol": "BTCUSDT", "fetched_at": 1, "data": rows,
                          "name": name})


def _lost_update_race(lake, emu, monkeypatch) -> int:
    """Transform A is slow inside its partition rewrite; B starts meanwhile with newer raw.
    Without the lock B merges the old partition and A's write (or B's) drops rows."""
    _raw_day(emu, lake, MAR1, 60, "a")
    real_write, started = fold.write_partition, threading.Event()

    def slow_write(lk, partition, t, version):
        started.set()
        time.sleep(0.5)
        real_write(lk, partition, t, version)

    monkeypatch.setattr(fold, "write_partition", slow_write)
    a = threading.Thread(target=fold.transform_pending, args=(lake, ["candles"]))
    a.start()
    started.wait(5)
    _raw_day(emu, lake, MAR1 + 60 * MS_PER_MINUTE, 60, "b")
    monkeypatch.setattr(fold, "write_partition", real_write)
    fold.transform_pending(lake, ["candles"])
    a.join()
    fold.transform_pending(lake, ["candles"])  # whatever is still pending
    from tests.helpers import curated

    return curated(lake, "candles").num_rows if lake.local_path("") is not None else _s3_rows(lake)


def _s3_rows(lake) -> int:
    import io

    import pyarrow.parquet as pq

    keys = [k for k in lake.list_keys("curated/candles") if k.endswith(".parquet")]
    return sum(pq.read_table(io.BytesIO(lake.read_bytes(k))).num_rows for k in keys)


def test_concurrent_transforms_of_one_partition_lose_nothing_local(tmp_path, monkeypatch):
    emu = S.new_emulator(9)
    assert _lost_update_race(LocalLake(str(tmp_path / "lake")), emu, monkeypatch) == 120


def _fake_aws(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")


def test_concurrent_transforms_of_one_partition_lose_nothing_s3(monkeypatch):
    _fake_aws(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake-bucket")
        lake = S3Lake("s3://lake-bucket/prefix", s3)
        emu = S.new_emulator(9)
        assert _lost_update_race(lake, emu, monkeypatch) == 120
        assert lake.list_keys("curated/_locks") == []


def test_s3_lock_is_a_conditional_create(monkeypatch):
    from binance_lake.layout import lock_key
    from binance_lake.lock import lake_lock

    _fake_aws(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lock-bucket")
        lake = S3Lake("s3://lock-bucket", s3)
        with lake_lock(lake, "candles", "BTCUSDT"):
            assert not lake.write_bytes(lock_key("candles", "BTCUSDT"), b"{}", if_absent=True)
        assert not lake.exists(lock_key("candles", "BTCUSDT"))


def test_two_takers_of_an_expired_s3_lock_cannot_delete_each_others_lock(monkeypatch):
    """Both read the expired lock; the first takes over; the second's delete must not remove
    the first's fresh lock (conditional delete on the ETag it read)."""
    import json

    from binance_lake.layout import lock_key
    from binance_lake.lock import _delete_stale, _read, lake_lock

    _fake_aws(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lock-bucket")
        lake = S3Lake("s3://lock-bucket", s3)
        key = lock_key("candles", "BTCUSDT")
        lake.write_bytes(key, json.dumps({"owner": "dead", "expires_at": 0}).encode())
        stale, etag_seen_by_b = _read(lake, key)
        assert stale["owner"] == "dead"
        with lake_lock(lake, "candles", "BTCUSDT"):  # taker A
            owner_a = json.loads(lake.read_bytes(key))["owner"]
            _delete_stale(lake, key, etag_seen_by_b)  # taker B, late, with its stale view
            assert json.loads(lake.read_bytes(key))["owner"] == owner_a  # A still holds it
        assert not lake.exists(key)


def test_two_takers_of_a_dead_local_lock_cannot_delete_each_others_lock(tmp_path):
    import json

    from binance_lake.layout import lock_key
    from binance_lake.lock import _delete_stale, _read, lake_lock

    lake = LocalLake(str(tmp_path / "lake"))
    key = lock_key("candles", "BTCUSDT")
    lake.write_bytes(key, json.dumps({"owner": "dead", "expires_at": 0}).encode())
    _, seen_by_b = _read(lake, key)
    with lake_lock(lake, "candles", "BTCUSDT"):  # taker A
        owner_a = json.loads(lake.read_bytes(key))["owner"]
        _delete_stale(lake, key, seen_by_b)  # taker B, late
        assert json.loads(lake.read_bytes(key))["owner"] == owner_a
        assert lake.list_keys("curated/_locks") == [key]  # nothing left aside
    assert not lake.exists(key)


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    import json

    from binance_lake.layout import lock_key
    from binance_lake.lock import lake_lock

    lake = LocalLake(str(tmp_path / "lake"))
    key = lock_key("candles", "BTCUSDT")
    lake.write_bytes(key, json.dumps({"owner": "x", "host": "elsewhere", "pid": 1,
                                      "expires_at": time.time() - 1}).encode())  # lease over
    started = time.time()
    with lake_lock(lake, "candles", "BTCUSDT", wait_s=5):
        pass
    assert time.time() - started < 1 and not lake.exists(key)
