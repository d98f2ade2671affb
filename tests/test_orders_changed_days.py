"""Issue 21 lever 6: a tick reads and rewrites only the orders days whose rows changed.

An open order re-fetched unchanged every tick is the same row and keeps the lineage of its first
fetch (``ORDERS.first_fetch_lineage``), so its day is neither read nor rewritten, and curated still
equals a rebuild from raw (the one derivation verify uses too).
"""

from __future__ import annotations

import io
import itertools
import json
import random
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from binance_lake import fold, layout
from binance_lake.columns import dedupe, orders_table
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake
from binance_lake.schema import OPEN_ORDER_STATUSES, ORDERS
from binance_lake.sources.rest import orders as rest_orders
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_date
from tests.conftest import NOW_MS
from tests.helpers import curated, order_rows

SYMBOL = "BTCUSDT"


def order_days(lake: LocalLake) -> Dict[str, str]:
    """day -> version of every curated orders partition."""
    keys = [k for k in lake.list_keys("curated/orders") if k.endswith(".parquet")]
    return {layout.date_of(k.rsplit("/", 1)[0]): lake.version_of(k) for k in keys}


def rows_with_lineage(lake: LocalLake) -> List[tuple]:
    t = curated(lake, "orders")
    return sorted(tuple(str(v) for v in r.values()) for r in t.to_pylist())


def rebuilt_copy(lake: LocalLake, tmp: Path) -> LocalLake:
    """The same lake after ``transform --rebuild`` of the orders: curated from raw alone."""
    shutil.copytree(lake.root, tmp)
    copy = LocalLake(str(tmp))
    fold.rebuild_orders(copy, SYMBOL)
    return copy


@pytest.fixture
def synced(client, lake, emulator):
    """Five days of orders, some left open on older days, synced once."""
    emulator.generate_orders(SYMBOL, 300, NOW_MS - 5 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=4)
    sync.sync_orders(client, lake, SYMBOL)
    open_orders = [o for o in emulator.orders(SYMBOL) if o["status"] in OPEN_ORDER_STATUSES]
    today = ms_to_date(emulator.now_ms())
    older = [o for o in open_orders if ms_to_date(o["time"]) != today]
    assert len({ms_to_date(o["time"]) for o in older}) >= 2, "the generator should leave orders open on older days"
    return older


def record_partition_io(monkeypatch) -> Dict[str, List[str]]:
    """Curated orders partitions read (with version) and written, by the fold."""
    calls: Dict[str, List[str]] = {"read": [], "write": []}
    read, write = LocalLake.read_with_version, LocalLake.write_if_version

    def reading(self, key):
        if key.startswith("curated/orders/"):
            calls["read"].append(key)
        return read(self, key)

    def writing(self, key, data, expected):
        if key.startswith("curated/orders/"):
            calls["write"].append(key)
        return write(self, key, data, expected)

    monkeypatch.setattr(LocalLake, "read_with_version", reading)
    monkeypatch.setattr(LocalLake, "write_if_version", writing)
    return calls


def test_a_tick_reads_and_writes_only_the_day_whose_rows_changed(client, lake, emulator, synced, monkeypatch,
                                                                 tmp_path):
    first_lineage = {oid: (r["ingested_at"], r["source_key"]) for oid, r in order_rows(lake).items()}
    before = order_days(lake)
    emulator.advance(60_000)
    new = emulator.add_order(SYMBOL, status="NEW")
    calls = record_partition_io(monkeypatch)
    sync.sync_orders(client, lake, SYMBOL)  # re-fetches every open order (unchanged) and the new one
    today = layout.partition(ORDERS, symbol=SYMBOL, date=ms_to_date(new["time"]))
    assert calls == {"read": [layout.part_key(today)], "write": [layout.part_key(today)]}
    after = order_days(lake)
    assert {d for d in after if after[d] != before.get(d)} == {ms_to_date(new["time"])}
    rows = order_rows(lake)
    assert rows[new["orderId"]]["status"] == "NEW"
    # Every order fetched before keeps its first fetch's lineage, today's open ones included.
    assert {oid: (r["ingested_at"], r["source_key"]) for oid, r in rows.items() if oid in first_lineage} \
        == first_lineage
    assert rows_with_lineage(lake) == rows_with_lineage(rebuilt_copy(lake, tmp_path / "rebuilt"))


def test_a_changed_order_rewrites_its_day_and_nothing_else(client, lake, emulator, synced, tmp_path):
    before = order_days(lake)
    emulator.advance(60_000)
    changed = synced[0]
    emulator.update_order(SYMBOL, changed["orderId"], status="FILLED")
    sync.sync_orders(client, lake, SYMBOL)
    after = order_days(lake)
    assert {d for d in after if after[d] != before[d]} == {ms_to_date(changed["time"])}
    assert order_rows(lake)[changed["orderId"]]["status"] == "FILLED"
    assert rows_with_lineage(lake) == rows_with_lineage(rebuilt_copy(lake, tmp_path / "rebuilt"))


def test_a_day_rewritten_behind_the_index_is_merged_again(client, lake, emulator, synced):
    """The index is a hint: a partition another writer (a repair, a lost lease) rewrote since is
    not the version it recorded, so the re-fetched rows are merged, and none is lost."""
    victim = synced[0]
    partition = layout.partition(ORDERS, symbol=SYMBOL, date=ms_to_date(victim["time"]))
    stored = pq.read_table(io.BytesIO(lake.read_bytes(layout.part_key(partition))))
    without = stored.filter(pa.compute.not_equal(stored["order_id"], victim["orderId"]))
    buf = io.BytesIO()
    pq.write_table(without, buf)
    lake.write_bytes(layout.part_key(partition), buf.getvalue())
    assert victim["orderId"] not in order_rows(lake)
    emulator.advance(60_000)
    sync.sync_orders(client, lake, SYMBOL)
    assert order_rows(lake)[victim["orderId"]]["status"] == victim["status"]


# -- the merge rule itself: order-free, so skipping unchanged rows equals a rebuild --------------


def _order(update_ms: int, status: str, executed: str) -> dict:
    return {"symbol": SYMBOL, "orderId": 7, "orderListId": -1, "clientOrderId": "c7", "price": "100.5",
            "origQty": "2", "executedQty": executed, "cummulativeQuoteQty": "0", "status": status,
            "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "time": NOW_MS - MS_PER_DAY,
            "updateTime": update_ms, "isWorking": True, "workingTime": NOW_MS - MS_PER_DAY}


def _fetches() -> List[Tuple[dict, int, str]]:
    """One order fetched six times: the same state again and again, then a fill, and a state that
    ties with another on updateTime but differs (the case 'latest fetch wins' made order-dependent)."""
    t0 = NOW_MS - MS_PER_DAY
    new, part = _order(t0, "NEW", "0"), _order(t0 + 5, "PARTIALLY_FILLED", "1")
    tie = _order(t0 + 5, "PARTIALLY_FILLED", "0.5")
    return [(new, 1, "p1"), (new, 2, "p2"), (tie, 3, "p3"), (part, 4, "p4"), (tie, 5, "p5"), (part, 6, "p6")]


def _table(fetches) -> pa.Table:
    t, rejected = orders_table([f[0] for f in fetches], [f[1] for f in fetches], [f[2] for f in fetches])
    assert not rejected
    return t


def test_the_orders_merge_does_not_depend_on_fold_order_or_grouping():
    fetches = _fetches()
    whole = dedupe(_table(fetches), ORDERS).to_pylist()
    assert [(r["status"], str(r["executed_qty"]), r["source_key"]) for r in whole] \
        == [("PARTIALLY_FILLED", "1.00000000", "p4")]  # the latest update; of equal rows the first fetch
    rng = random.Random(21)
    for perm in itertools.islice(itertools.permutations(fetches), 0, None, 7):
        stored = None
        rest = list(perm)
        while rest:  # fold in ticks of random sizes, each over what the previous ones stored
            n = rng.randint(1, len(rest))
            batch, rest = _table(rest[:n]), rest[n:]
            stored = dedupe(batch if stored is None else pa.concat_tables([stored, batch]), ORDERS)
        assert stored.to_pylist() == whole, perm


def test_an_unchanged_refetch_keeps_the_first_fetch_lineage():
    new = _order(NOW_MS - MS_PER_DAY, "NEW", "0")
    row = dedupe(_table([(new, 9, "later"), (new, 3, "first"), (new, 5, "middle")]), ORDERS).to_pylist()
    assert [(r["source_key"], int(r["ingested_at"].timestamp() * 1000)) for r in row] == [("first", 3)]


# -- issue 21 lever 7: one orders index for every symbol ------------------------------------------


def index_body(lake: LocalLake) -> dict:
    return json.loads(lake.read_bytes(layout.orders_index_key()))


def test_one_index_object_holds_every_symbols_cursor(client, lake, emulator):
    emulator.add_symbol("ETHUSDT")
    for symbol, seed in (("BTCUSDT", 4), ("ETHUSDT", 5)):
        emulator.generate_orders(symbol, 50, NOW_MS - 2 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=seed)
        sync.sync_orders(client, lake, symbol)
    body = index_body(lake)
    assert sorted(body["symbols"]) == ["BTCUSDT", "ETHUSDT"]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        truth = emulator.orders(symbol)
        entry = body["symbols"][symbol]
        assert entry["max_order_id"] == max(o["orderId"] for o in truth)
        assert entry["open_order_ids"] == sorted(o["orderId"] for o in truth if o["status"] in OPEN_ORDER_STATUSES)
    assert lake.list_keys(layout.legacy_index_prefix(ORDERS)) == []


def test_the_extract_run_reads_the_index_once_for_all_symbols(client, lake, emulator, monkeypatch):
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    emulator.add_symbol("ETHUSDT")
    emulator.add_symbol("BNBUSDT")
    for i, symbol in enumerate(symbols):
        emulator.generate_orders(symbol, 20, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=i)
        sync.sync_orders(client, lake, symbol)
    reads = record_index_reads(monkeypatch)
    ledger = rest_orders.orders_ledger(lake)
    cursors = {s: rest_orders.known_orders(lake, s, ledger) for s in symbols}
    assert reads == [layout.orders_index_key()]
    assert {s: c[0] for s, c in cursors.items()} == {s: max(o["orderId"] for o in emulator.orders(s)) for s in symbols}


def record_index_reads(monkeypatch) -> List[str]:
    """Index keys read (LocalLake.read_with_version reads through read_bytes: one record per read)."""
    reads: List[str] = []
    read = LocalLake.read_bytes

    def reading(self, key):
        if key.startswith(layout.INDEX):
            reads.append(key)
        return read(self, key)

    monkeypatch.setattr(LocalLake, "read_bytes", reading)
    return reads


def test_two_writers_of_the_shared_index_keep_both_changes(lake):
    """A writer whose read was overtaken loses its conditional write, re-reads and applies its
    change again: neither symbol's cursor is lost."""
    fold.update_orders_indexes(lake, {"BTCUSDT": lambda _: {"history_through": 1}})
    calls = []

    def btc(old):
        calls.append(dict(old))
        if len(calls) == 1:  # between this writer's read and its write, another one writes
            fold.update_orders_indexes(lake, {"ETHUSDT": lambda _: {"history_through": 7}})
        return {**old, "history_through": old["history_through"] + 1}

    fold.update_orders_indexes(lake, {"BTCUSDT": btc})
    assert len(calls) == 2  # the first write lost the race and was redone over the other's
    assert index_body(lake)["symbols"] == {"BTCUSDT": {"history_through": 2}, "ETHUSDT": {"history_through": 7}}


def test_per_symbol_cursors_of_an_older_lake_are_carried_over(client, lake, emulator):
    """Before issue 21 each symbol had its own index file: read until the first write, which then
    holds every symbol's cursor (a symbol not synced since keeps its history cursor)."""
    legacy = {"BTCUSDT": {"history_through": 10, "max_order_id": 10, "open_order_ids": []},
              "ETHUSDT": {"history_through": 42, "max_order_id": 42, "open_order_ids": [40]}}
    for symbol, entry in legacy.items():
        lake.write_bytes(f"{layout.legacy_index_prefix(ORDERS)}symbol={symbol}.json", json.dumps(entry).encode())
    assert rest_orders.known_orders(lake, "ETHUSDT") == (42, [40])
    emulator.generate_orders("BTCUSDT", 30, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=2)
    sync.sync_orders(client, lake, "BTCUSDT")
    pages = [r.params.get("orderId") for r in emulator.requests if r.path == "/api/v3/allOrders"]
    assert pages == ["11"]  # the carried-over cursor: orders 1-10 are not asked again
    body = index_body(lake)["symbols"]
    assert body["ETHUSDT"] == legacy["ETHUSDT"] and body["BTCUSDT"]["max_order_id"] == 30


def test_of_one_update_time_a_final_status_wins_in_any_order():
    """An archived order's final row (-2026) carries the updateTime of its last open copy: the
    final status wins whichever copy is folded last."""
    t0 = NOW_MS - MS_PER_DAY
    fetches = [(_order(t0, "NEW", "0"), 1, "open"), (_order(t0, "CANCELED", "0"), 2, "archived"),
               (_order(t0, "NEW", "0"), 3, "open-again")]
    for perm in itertools.permutations(fetches):
        stored = None
        for fetch in perm:
            batch = _table([fetch])
            stored = dedupe(batch if stored is None else pa.concat_tables([stored, batch]), ORDERS)
        assert [(r["status"], r["source_key"]) for r in stored.to_pylist()] == [("CANCELED", "archived")]


def test_an_unreadable_day_is_rebuilt_even_when_no_fetched_row_changed(client, lake, emulator, synced, tmp_path):
    victim = synced[0]
    key = layout.part_key(layout.partition(ORDERS, symbol=SYMBOL, date=ms_to_date(victim["time"])))
    lake.write_bytes(key, b"not parquet")
    emulator.advance(60_000)
    sync.sync_orders(client, lake, SYMBOL)  # re-fetches the victim unchanged: its day must still be repaired
    pq.read_table(io.BytesIO(lake.read_bytes(key)))  # readable again
    assert order_rows(lake)[victim["orderId"]]["status"] == victim["status"]
    assert rows_with_lineage(lake) == rows_with_lineage(rebuilt_copy(lake, tmp_path / "rebuilt"))


def test_row_values_do_not_depend_on_pyarrow_s_decimal_text():
    """Verify runs on Glue's pyarrow 17, the transform on 26: their decimal-to-string casts differ
    (``0.E-8`` against ``0E-8``), so the text that breaks ties is Python's, and instants are epochs."""
    from binance_lake.columns import row_values

    text = row_values(_table([(_order(NOW_MS, "NEW", "0"), 1, "p")]), ORDERS).to_pylist()[0]
    fields = text.split("\x1f")
    assert "=0.00000000" in fields and "=100.50000000" in fields and f"={NOW_MS}" in fields
    assert not any("E-" in f for f in fields)
