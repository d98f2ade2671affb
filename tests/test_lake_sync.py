"""LocalLake's deferred durability: same bytes, fsyncs moved to one sync() per caller thread."""

from __future__ import annotations

import os
import threading

from binance_lake.lake import LocalLake


def _count_fsyncs(monkeypatch) -> list:
    calls: list = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


def test_default_is_durable_per_write(tmp_path, monkeypatch):
    calls = _count_fsyncs(monkeypatch)
    LocalLake(str(tmp_path)).write_bytes("a/b.txt", b"x")
    assert len(calls) == 2  # the file, then its directory


def test_deferred_writes_sync_once_per_barrier(tmp_path, monkeypatch):
    lake = LocalLake(str(tmp_path), defer_sync=True)
    calls = _count_fsyncs(monkeypatch)
    for i in range(5):
        lake.write_bytes(f"d/{i}.txt", str(i).encode())
    assert lake.write_bytes("d/0.txt", b"again", if_absent=True) is False
    assert calls == [] and lake.read_bytes("d/3.txt") == b"3"
    lake.sync()
    assert len(calls) == 6  # 5 files + their one directory
    lake.sync()
    assert len(calls) == 6  # nothing left to sync


def test_sync_covers_only_the_calling_thread(tmp_path):
    lake = LocalLake(str(tmp_path), defer_sync=True)
    other = threading.Thread(target=lambda: lake.write_bytes("t/other.txt", b"o"))
    other.start()
    other.join()
    lake.write_bytes("t/mine.txt", b"m")
    assert lake._pending() == [os.path.join(lake.root, "t", "mine.txt")]


def test_deferred_sync_restores_the_lake(tmp_path):
    lake = LocalLake(str(tmp_path))
    with lake.deferred_sync():
        assert lake.defer_sync is True
    assert lake.defer_sync is False


def test_the_lake_interface_offers_what_locking_and_durability_need(tmp_path):
    """Conditional delete of the version read, and the durability barrier, on every Lake."""
    lake = LocalLake(str(tmp_path))
    lake.write_bytes("l/k", b"one")
    data, version = lake.read_with_version("l/k")
    lake.write_bytes("l/k", b"two")  # replaced after the read: the old version must not be deleted
    assert data == b"one" and lake.delete_if_match("l/k", version) is False
    assert lake.read_bytes("l/k") == b"two"
    _, version = lake.read_with_version("l/k")
    assert lake.delete_if_match("l/k", version) is True and not lake.exists("l/k")
    with lake.deferred_sync():
        lake.write_bytes("l/d", b"x")
    lake.sync()
    assert lake._pending() == []
