"""Writers that cannot overwrite each other (issue 17 item 1), on a local lake and on S3 (moto).

* The conditional write itself: a stale version or a create over an existing key is refused
  (``WriteConflict``) and leaves the stored bytes as they were; locally the check and the
  replace are one step for every process; a 409 ``ConditionalRequestConflict`` is a lost race.
* The lease: a live local holder is not taken over however old its lease; a holder renews while
  it works; a holder whose lease was taken over stops writing.
* Item 1 itself, in threads on moto S3 (each thread acting as its own process): a rebuild paused
  in its merge past its 1 s lease, while a transform of 360 newer minutes of the same day runs.
  With the renewal the transform waits; with the renewal defeated (a holder that froze) the
  transform takes over, and the rebuild's late write loses the race, re-derives and writes
  every candle. Before this, the late write dropped the transform's 360 candles.

The same race through the CLI, in processes on a local lake: tests/test_lease_expiry_cli.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from binance_lake import fold, layout, lock
from binance_lake.errors import LeaseLost, StorageError, WriteConflict
from binance_lake.lake import Lake, LocalLake, S3Lake
from binance_lake.sources.rest.raw import write_raw
from binance_lake.times import MS_PER_MINUTE
from tests.helpers import curated
from tests.reliability import scenarios as S

REPO = Path(__file__).resolve().parents[1]
KEY = "curated/candles/interval=1m/symbol=BTCUSDT/date=2024-03-01/part-0.parquet"
PARTITION = "curated/candles/interval=1m/symbol=BTCUSDT/date=2024-03-01"
MAR1 = S.MAR1


@pytest.fixture
def s3_lake(monkeypatch) -> Iterator[S3Lake]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cas-bucket")
        yield S3Lake("s3://cas-bucket/lake", s3)


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path) -> Lake:
    return LocalLake(str(tmp_path / "lake")) if request.param == "local" else request.getfixturevalue("s3_lake")


# -- the conditional write ---------------------------------------------------------------------


def test_conditional_write_creates_only_if_absent_and_replaces_only_the_version_read(lake):
    assert lake.version_of(KEY) is None
    first = lake.write_if_version(KEY, b"one", None)  # absent: create
    with pytest.raises(WriteConflict, match="changed since this run read it"):
        lake.write_if_version(KEY, b"other", None)  # create-only, but it exists now
    assert lake.read_bytes(KEY) == b"one"
    _, read = lake.read_with_version(KEY)
    assert read == first == lake.version_of(KEY)
    second = lake.write_if_version(KEY, b"two", read)  # the version read: replaced
    with pytest.raises(WriteConflict):
        lake.write_if_version(KEY, b"stale", read)  # the version read before "two": refused
    assert lake.read_bytes(KEY) == b"two" and lake.version_of(KEY) == second
    lake.delete(KEY)
    with pytest.raises(WriteConflict):
        lake.write_if_version(KEY, b"late", second)  # deleted meanwhile: refused, not recreated
    assert not lake.exists(KEY)
    assert lake.list_keys("curated") == []  # the local lock files are dot-files: never listed


def test_local_conditional_writes_are_atomic_across_processes(tmp_path):
    """Three processes each add 1 to a counter 30 times with read -> conditional write, retrying
    on a conflict. Every increment must survive: a check and a replace that another process can
    slip between would lose some."""
    root = tmp_path / "lake"
    LocalLake(str(root)).write_bytes("c/n", b"0")
    script = (
        "import sys\n"
        "from binance_lake.errors import WriteConflict\n"
        "from binance_lake.lake import LocalLake\n"
        "lake = LocalLake(sys.argv[1])\n"
        "done = 0\n"
        "while done < 30:\n"
        "    data, version = lake.read_with_version('c/n')\n"
        "    try:\n"
        "        lake.write_if_version('c/n', str(int(data) + 1).encode(), version)\n"
        "        done += 1\n"
        "    except WriteConflict:\n"
        "        pass\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root)], env=env) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert LocalLake(str(root)).read_bytes("c/n") == b"90"


class _Refusing:
    """An S3 client whose conditional requests lose to a concurrent one (HTTP 409)."""

    def _conflict(self, op: str) -> ClientError:
        return ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "conflict"},
                            "ResponseMetadata": {"HTTPStatusCode": 409}}, op)

    def put_object(self, **kw):
        raise self._conflict("PutObject")

    def delete_object(self, **kw):
        raise self._conflict("DeleteObject")


def test_s3_409_conditional_request_conflict_is_a_lost_race_not_a_storage_error():
    # S3 API Reference, PutObject If-Match / If-None-Match: "If a conflicting operation occurs during
    # the upload S3 returns a 409 ConditionalRequestConflict response ... retry" (issue 18 item 9).
    lake = S3Lake("s3://b/p", _Refusing())
    with pytest.raises(WriteConflict):
        lake.write_if_version(KEY, b"x", '"etag"')
    assert lake.delete_if_match(KEY, '"etag"') is False  # lost: not ours to delete, not an error
    assert lake.write_bytes(KEY, b"x", if_absent=True) is False


# -- the lease ---------------------------------------------------------------------------------


def _lock_body(pid: int, expires_at: float) -> bytes:
    return json.dumps({"owner": "other", "host": socket.gethostname(), "pid": pid,
                       "pid_start": lock._pid_start(pid), "expires_at": expires_at}).encode()


def test_a_live_local_holder_is_not_taken_over_when_its_lease_expired(tmp_path):
    lake = LocalLake(str(tmp_path / "lake"))
    key = layout.lock_key("candles", "BTCUSDT")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lake.write_bytes(key, _lock_body(holder.pid, expires_at=0))  # lease long over, process alive
        with pytest.raises(StorageError, match="is held by another run"), lake_lock_quick(lake):
            pass
        assert json.loads(lake.read_bytes(key))["pid"] == holder.pid  # still the holder's
    finally:
        holder.kill()
        holder.wait()
    with lake_lock_quick(lake):  # the holder is gone now: taken over at once
        assert json.loads(lake.read_bytes(key))["pid"] == os.getpid()
    assert not lake.exists(key)


def lake_lock_quick(lake: Lake):
    return lock.lake_lock(lake, "candles", "BTCUSDT", wait_s=0.5)


def test_a_holder_whose_lease_was_taken_over_stops_writing(s3_lake):
    key = layout.lock_key("candles", "BTCUSDT")
    with lock.lake_lock(s3_lake, "candles", "BTCUSDT", lease_s=60) as lease:
        s3_lake.write_bytes(key, json.dumps({"owner": "taker", "expires_at": 9e12}).encode())  # taken over
        lease.renew()  # what the heartbeat does every third of the lease
        with pytest.raises(LeaseLost, match="was taken over by another run"):
            fold.write_partition(s3_lake, PARTITION, _empty_candles(), None)
        assert not s3_lake.exists(KEY)
    assert json.loads(s3_lake.read_bytes(key))["owner"] == "taker"  # release left the taker's lock alone


def _empty_candles():
    from binance_lake.columns import arrow_schema
    from binance_lake.schema import CANDLES

    return arrow_schema(CANDLES).empty_table()


# -- item 1: a paused writer past its lease, a second writer of the same day ---------------------


def _raw_page(emu, lake: Lake, start: int, minutes: int) -> None:
    end = start + minutes * MS_PER_MINUTE
    write_raw(lake, layout.candle_raw_key("BTCUSDT", "1m", start, end),
              {"format": 1, "table": "klines", "symbol": "BTCUSDT", "fetched_at": 1,
               "data": emu.klines("BTCUSDT", "1m", start, end)})


def _paused_rebuild_and_a_transform(lake: Lake, monkeypatch, pause_s: float) -> threading.Thread:
    """Curated holds 720 minutes; a rebuild pauses before its write; meanwhile 360 newer minutes
    arrive in raw and a transform (as another process: its own thread lock) folds them."""
    emu = S.new_emulator(11)
    _raw_page(emu, lake, MAR1, 720)
    fold.transform_pending(lake, ["candles"])
    monkeypatch.setenv(lock.LEASE_ENV, "1")
    monkeypatch.setattr(lock, "_thread_lock", lambda lake, key: threading.Lock())  # each thread: a process
    paused, rebuild_thread = threading.Event(), []

    def pause_rebuild(name: str, detail: str = "") -> None:
        if threading.current_thread() is rebuild_thread[0] and not paused.is_set():
            paused.set()
            threading.Event().wait(pause_s)  # holds the read-to-write window open past the lease

    monkeypatch.setattr(fold, "pause_point", pause_rebuild)
    rebuild_thread.append(threading.Thread(target=fold.rebuild_candles, args=(lake, "BTCUSDT")))
    rebuild_thread[0].start()
    assert paused.wait(30), "the rebuild never reached its write"
    _raw_page(emu, lake, MAR1 + 720 * MS_PER_MINUTE, 360)  # what a sync fetches meanwhile
    fold.transform_pending(lake, ["candles"])
    return rebuild_thread[0]


def test_item1_s3_a_paused_writer_keeps_its_lease_and_no_candle_is_lost(s3_lake, monkeypatch):
    rebuild = _paused_rebuild_and_a_transform(s3_lake, monkeypatch, pause_s=3.0)
    rebuild.join(60)
    assert curated(s3_lake, "candles").num_rows == 1080
    assert s3_lake.list_keys(layout.pending_prefix(fold.CANDLES)) == []


def test_item1_a_frozen_writer_taken_over_loses_the_race_and_rewrites_every_candle(lake, monkeypatch, caplog):
    """No renewal (a holder frozen past its lease; and, as on a host that cannot see its pid, no
    liveness check): the transform takes over and writes 1080 minutes; the rebuild's conditional
    write then fails, and it derives the day again, now with the transform's page, instead of
    writing its 720 over them."""
    monkeypatch.setattr(lock, "_heartbeat", lambda lease: None)
    monkeypatch.setattr(lock, "_stale", lambda lake, held: float(held.get("expires_at", 0)) < time.time())
    with caplog.at_level("WARNING", logger="binance_lake.fold"):
        rebuild = _paused_rebuild_and_a_transform(lake, monkeypatch, pause_s=3.0)
        rebuild.join(60)
    assert curated(lake, "candles").num_rows == 1080
    assert any("another writer wrote it after this run read it" in r.getMessage() for r in caplog.records)


def test_verify_repair_over_a_partition_another_writer_changed_checks_again_and_loses_nothing(tmp_path, monkeypatch,
                                                                                             caplog):
    """verify has compared a damaged partition (10 of 60 minutes gone) with raw and is about to
    write its repair; meanwhile another writer (here one that got past the lease) folds 30 newer
    minutes and deletes their marker. The repair's conditional write fails, verify checks the
    partition again, now with the new page, and writes all 90; before, it wrote its 60 over them."""
    from binance_lake.schema import CANDLES
    from binance_lake.verify import VerifyOptions, verify

    lake, emu = LocalLake(str(tmp_path / "lake")), S.new_emulator(11)
    _raw_page(emu, lake, MAR1, 60)
    fold.transform_pending(lake, ["candles"])
    stored = fold.read_stored(lake, PARTITION, CANDLES)
    fold.write_partition(lake, PARTITION, stored.rows.slice(10), stored.version)
    real_pause, hooked = fold.pause_point, []

    def other_writer_meanwhile(name: str, detail: str = "") -> None:
        if hooked:
            return
        hooked.append(detail)
        _raw_page(emu, lake, MAR1 + 60 * MS_PER_MINUTE, 30)
        monkeypatch.setattr(fold, "lake_lock", lambda *a, **k: contextlib.nullcontext())
        monkeypatch.setattr(fold, "run_lock", lambda *a, **k: contextlib.nullcontext())  # the tick's one lease
        fold.transform_pending(lake, ["candles"])

    monkeypatch.setattr(fold, "pause_point", other_writer_meanwhile)
    with caplog.at_level("WARNING", logger="binance_lake.fold"):
        report = verify(lake, ["BTCUSDT"], "1m", ["2024-03-01"], VerifyOptions(), tables=("candles",), write=False)
    monkeypatch.setattr(fold, "pause_point", real_pause)
    assert hooked == [PARTITION]  # the other writer really ran inside verify's read-to-write window
    assert [p.status for p in report.partitions] == ["repaired"]
    assert curated(lake, "candles").num_rows == 90
    assert lake.list_keys(layout.pending_prefix(CANDLES)) == []
    assert any("another writer wrote it after this run read it" in r.getMessage() for r in caplog.records)
