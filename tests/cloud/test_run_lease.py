"""Issue 21 lever 4: one lease per transform run, not one per (table, symbol).

The steady tick's requests on ``curated/_locks/`` are counted on S3 (moto, every boto3 call
recorded): the same three for 1 symbol and for 4, where each symbol and table used to cost a
create and a delete. Then the exclusion between the run's lease and the per-pair leases that
rebuild, backfill and verify still take (lock.py explains the protocol): each waits for the
other, a pair outside the run's scope does not, a dead holder of either kind is taken over.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Iterator, List, Tuple

import boto3
import pytest
from moto import mock_aws

from binance_lake import layout, lock
from binance_lake.aws import extract_lambda
from binance_lake.errors import LeaseLost
from binance_lake.fold import pending_markers, transform_pending
from binance_lake.lake import Lake, LocalLake, S3Lake
from binance_lake.schema import CANDLES, ORDERS, TRADES
from binance_lake.times import MS_PER_MINUTE
from tests.cloud.accounts import candles_settings, fast_retries, orders_settings, trading_account
from tests.cloud.test_tick_requests import FilledSecret
from tests.helpers import curated

BUCKET, PREFIX = "run-lease", "lake"
TABLES = ["candles", "orders", "trades"]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def record_calls(client: Any) -> List[Tuple[str, str]]:
    """(operation, key or prefix) of every S3 request the client makes from now on."""
    calls: List[Tuple[str, str]] = []

    def record(params: dict, model: Any, **_: object) -> None:
        calls.append((model.name, params.get("Key") or params.get("Prefix") or ""))

    client.meta.events.register("provide-client-params.s3.*", record)
    return calls


def steady_tick_lock_calls(s3: Any, symbols: List[str], monkeypatch: pytest.MonkeyPatch
                           ) -> List[Tuple[str, str]]:
    """A first tick (extract + transform), then one steady tick; the second transform's lock calls."""
    fast_retries(monkeypatch)
    lake = S3Lake(f"s3://{BUCKET}/{PREFIX}", s3)
    emulator = trading_account(symbols, 4, 1, keep_one_open=True)
    with emulator.serve() as url:
        candles = candles_settings(lake.uri, symbols, url)
        orders = orders_settings(lake.uri, symbols, url, "arn:aws:secretsmanager:x")
        extract_lambda.extract_candles(candles, lake)
        extract_lambda.extract_orders(orders, lake, FilledSecret())
        transform_pending(lake, TABLES, symbols)
        emulator.advance(5 * MS_PER_MINUTE)
        for s in symbols:
            emulator.add_order(s, status="FILLED")  # new orders pages for every symbol
        extract_lambda.extract_candles(candles, lake)
        extract_lambda.extract_orders(orders, lake, FilledSecret())
    pending = {(t.name, layout.symbol_of(layout.raw_key_of_marker(m)))
               for t in (CANDLES, ORDERS, TRADES) for m in pending_markers(lake, t)}
    assert pending >= {(t, s) for t in ("candles", "orders") for s in symbols}  # work for every symbol
    calls = record_calls(s3)
    result = transform_pending(lake, TABLES, symbols)
    assert {layout.symbol_of(p) for p in result.partitions} == set(symbols)
    assert [m for t in (CANDLES, ORDERS, TRADES) for m in pending_markers(lake, t)] == []
    return [(op, key) for op, key in calls if f"{PREFIX}/{layout.LOCKS}" in key]


@pytest.mark.parametrize("count", [1, 4])
def test_a_steady_tick_takes_one_lease_whatever_the_symbols(s3, monkeypatch: pytest.MonkeyPatch,
                                                             count: int) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"][:count]
    run_key = f"{PREFIX}/{layout.run_lock_key()}"
    assert steady_tick_lock_calls(s3, symbols, monkeypatch) == [
        ("PutObject", run_key),  # create, If-None-Match
        ("ListObjectsV2", f"{PREFIX}/{layout.LOCKS}/"),  # no pair writer of these symbols is at work
        ("DeleteObject", run_key),  # release, If-Match
    ]
    assert curated(S3Lake(f"s3://{BUCKET}/{PREFIX}", s3), "candles").num_rows > 0


# -- the run lease against the per-pair leases ------------------------------------------------------


@pytest.fixture
def lake(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    # Each thread here stands for another process (it has no in-process queue to wait in first).
    monkeypatch.setattr(lock, "_thread_lock", lambda lake, key: threading.Lock())
    return LocalLake(str(tmp_path / "lake"))


def in_thread(fn) -> Tuple[threading.Thread, threading.Event, threading.Event]:
    """Run ``fn(inside)`` in a thread; ``entered`` is set once it holds its lock, ``leave`` lets it go."""
    entered, leave = threading.Event(), threading.Event()

    def body() -> None:
        with fn():
            entered.set()
            leave.wait(30)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, entered, leave


def test_a_pair_writer_steps_back_while_a_run_covers_its_pair(lake: Lake) -> None:
    pair_key = layout.lock_key("candles", "BTCUSDT")
    with lock.run_lock(lake, {("candles", "BTCUSDT"), ("orders", "BTCUSDT")}):
        writer, entered, leave = in_thread(lambda: lock.lake_lock(lake, "candles", "BTCUSDT", wait_s=20))
        time.sleep(0.5)
        assert not entered.is_set() and not lake.exists(pair_key)  # waiting, its own key deleted
        other, other_entered, other_leave = in_thread(lambda: lock.lake_lock(lake, "candles", "ETHUSDT"))
        assert other_entered.wait(5)  # a pair outside the run's scope does not wait for it
        other_leave.set()
    assert entered.wait(10) and lake.exists(pair_key)  # the run ended: the writer takes its pair
    leave.set()
    writer.join(10)
    other.join(10)
    assert lake.list_keys(layout.LOCKS) == []


def test_a_run_waits_for_a_pair_writer_of_its_scope(lake: Lake) -> None:
    writer, entered, leave = in_thread(lambda: lock.lake_lock(lake, "orders", "BTCUSDT"))
    assert entered.wait(5)
    run, run_entered, run_leave = in_thread(lambda: lock.run_lock(lake, {("orders", "BTCUSDT")}, wait_s=20))
    time.sleep(0.5)
    assert not run_entered.is_set()  # the pair writer (a rebuild, a repair) finishes first
    leave.set()
    assert run_entered.wait(10)
    run_leave.set()
    writer.join(10)
    run.join(10)
    assert lake.list_keys(layout.LOCKS) == []


def test_a_run_takes_over_a_dead_pair_writers_lock(lake: Lake) -> None:
    """A SIGKILLed rebuild's lock (its pid gone) does not stop the tick."""
    key = layout.lock_key("trades", "BTCUSDT")
    dead = {"owner": "dead", "host": os.uname().nodename, "pid": 2 ** 22 + 7, "expires_at": time.time() + 300}
    lake.write_bytes(key, json.dumps(dead).encode())
    with lock.run_lock(lake, {("trades", "BTCUSDT")}, wait_s=5):
        assert not lake.exists(key)


def test_a_dead_run_does_not_block_a_pair_writer(tmp_path) -> None:
    s3_like = LocalLake(str(tmp_path / "lake"))
    dead = {"owner": "dead", "host": "gone", "pid": 1, "expires_at": time.time() - 1,
            "scope": [["candles", "BTCUSDT"]]}
    s3_like.write_bytes(layout.run_lock_key(), json.dumps(dead).encode())
    with lock.lake_lock(s3_like, "candles", "BTCUSDT", wait_s=5):
        pass  # another host's expired run: stale, so the pair writer goes ahead


def test_inside_a_run_a_lost_lease_stops_every_write_of_its_scope(lake: Lake) -> None:
    from binance_lake import fold
    from tests.test_cas_writes import PARTITION, _empty_candles

    with lock.run_lock(lake, {("candles", "BTCUSDT")}) as run:
        with lock.lake_lock(lake, "candles", "BTCUSDT") as held:
            assert held is run  # nothing taken: the run's lease stands for the pair
            run.lost.set()  # what a renewal that finds the run's key replaced does
            with pytest.raises(LeaseLost, match="taken over by another run"):
                fold.write_partition(lake, PARTITION, _empty_candles(), None)
        run.lost.clear()
