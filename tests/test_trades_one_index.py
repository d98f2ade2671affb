"""Issue 21: the trades cursors of every symbol in one index object, read once per extract run.

The tick's trades step asks only symbols whose orders filled; each asking symbol used to read its
own index file and list its pending pages. Now one read and one listing serve the run, and the
transform writes the index once (compare-and-swap, see tests/test_orders_changed_days.py).
"""

from __future__ import annotations

import json
from typing import List

from binance_lake import layout
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake
from binance_lake.schema import TRADES
from binance_lake.sources.rest.trades import TradesLedger, trades_cursor
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.conftest import NOW_MS

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


def record_lake_calls(monkeypatch) -> List[str]:
    calls: List[str] = []
    read, listing = LocalLake.read_bytes, LocalLake.list_keys

    def reading(self, key):
        calls.append(f"GET {key}")
        return read(self, key)

    def listing_keys(self, prefix):
        calls.append(f"LIST {prefix}")
        return listing(self, prefix)

    monkeypatch.setattr(LocalLake, "read_bytes", reading)
    monkeypatch.setattr(LocalLake, "list_keys", listing_keys)
    return calls


def test_every_symbols_cursor_from_one_read_and_one_listing(client, lake, emulator, monkeypatch):
    for i, symbol in enumerate(SYMBOLS):
        if symbol != "BTCUSDT":
            emulator.add_symbol(symbol)
        emulator.generate_orders(symbol, 40, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=i)
        sync.sync_trades(client, lake, symbol)
    body = json.loads(lake.read_bytes(layout.trades_index_key()))["symbols"]
    truth = {s: emulator.trades(s)[-1]["id"] for s in SYMBOLS}
    assert {s: e["history_through"] for s, e in body.items()} == truth
    assert lake.list_keys(layout.legacy_index_prefix(TRADES)) == []
    calls = record_lake_calls(monkeypatch)
    ledger = TradesLedger(lake)
    assert calls == []  # nothing read until a symbol asks
    assert {s: trades_cursor(lake, s, ledger) for s in SYMBOLS} == truth
    assert calls == [f"GET {layout.trades_index_key()}", f"LIST {layout.pending_prefix(TRADES)}/"]


def test_per_symbol_trades_cursors_of_an_older_lake_are_carried_over(client, lake, emulator):
    lake.write_bytes(f"{layout.legacy_index_prefix(TRADES)}symbol=ETHUSDT.json",
                     json.dumps({"symbol": "ETHUSDT", "history_through": 77, "max_trade_id": 77}).encode())
    assert trades_cursor(lake, "ETHUSDT") == 77
    emulator.generate_orders("BTCUSDT", 40, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=1)
    sync.sync_trades(client, lake, "BTCUSDT")
    assert trades_cursor(lake, "ETHUSDT") == 77  # the first write of the one object kept it
    assert trades_cursor(lake, "BTCUSDT") == emulator.trades("BTCUSDT")[-1]["id"]
