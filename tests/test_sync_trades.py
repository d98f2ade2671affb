"""Trades (myTrades fills): whole history by fromId, exactly once, incremental by changed orders,
24 h windows, keys without reading, never-traded symbols."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from binance_lake.errors import BadApiKeyError
from binance_lake.jobs import sync
from binance_lake.sources.rest.trades import TradesRequest, trades_cursor
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.conftest import API_SECRET, NOW_MS
from tests.helpers import curated

MT = "/api/v3/myTrades"
FIELDS = {"trade_id": "id", "order_id": "orderId", "order_list_id": "orderListId", "price": "price", "qty": "qty",
          "quote_qty": "quoteQty", "commission": "commission", "commission_asset": "commissionAsset",
          "is_buyer": "isBuyer", "is_maker": "isMaker", "is_best_match": "isBestMatch"}


def lake_trades(lake) -> List[Dict[str, Any]]:
    t = curated(lake, "trades")
    return [] if t.num_rows == 0 else sorted(t.to_pylist(), key=lambda r: r["trade_id"])


def assert_lake_equals(lake, truth):
    rows = lake_trades(lake)
    assert [r["trade_id"] for r in rows] == [t["id"] for t in truth]  # each exactly once
    for r, t in zip(rows, truth):
        for col, src in FIELDS.items():
            value = r[col]
            assert (f"{value:f}" if hasattr(value, "quantize") else value) == t[src], (t["id"], col)
        assert int(r["trade_time"].timestamp() * 1000) == t["time"]
        assert r["symbol"] == t["symbol"]


def trade_calls(emulator, since=0):
    return [(r.params, r.weight) for r in emulator.requests[since:] if r.path == MT and r.status == 200]


def test_sync_lands_every_trade_once_and_a_rerun_adds_nothing(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 1800, NOW_MS - 20 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=3)
    truth = emulator.trades("BTCUSDT")
    assert len(truth) > 1000  # more than one page
    s = sync.sync_trades(client, lake, "BTCUSDT")
    assert s["rows"] == len(truth) and s["transform"]["rows_in"] == len(truth)
    assert_lake_equals(lake, truth)
    pages = ["0", *(str(k * 1000 + 1) for k in range(1, len(truth) // 1000 + 1))]  # 1000 per page, by fromId
    assert [p["fromId"] for p, _ in trade_calls(emulator)] == pages
    assert trades_cursor(lake, "BTCUSDT") == truth[-1]["id"]
    seen = len(emulator.requests)
    s = sync.sync_trades(client, lake, "BTCUSDT")
    assert s["rows"] == 0
    assert [(p["fromId"], w) for p, w in trade_calls(emulator, seen)] == [(str(truth[-1]["id"] + 1), 20)]
    assert_lake_equals(lake, truth)


def test_refetched_trades_stay_one_row(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 200, NOW_MS - 2 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=4)
    sync.sync_trades(client, lake, "BTCUSDT")
    sync.sync_trades(client, lake, "BTCUSDT", TradesRequest(start=NOW_MS - 2 * MS_PER_DAY, end=NOW_MS))
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))


def test_start_window_over_24h_is_split_not_refused(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 300, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=5)
    s = sync.sync_trades(client, lake, "BTCUSDT", TradesRequest(start=NOW_MS - 3 * MS_PER_DAY, end=NOW_MS))
    windows = [(int(p["startTime"]), int(p["endTime"])) for p, _ in trade_calls(emulator)]
    assert len(windows) == 3 and all(e - s_ < MS_PER_DAY for s_, e in windows)
    assert s["rows"] == len(emulator.trades("BTCUSDT"))
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))


def test_account_sync_asks_only_for_orders_that_filled(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 300, NOW_MS - 2 * MS_PER_DAY, NOW_MS - 10 * MS_PER_MINUTE, seed=6)
    sync.sync_account(client, lake, "BTCUSDT")
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))
    # nothing filled since: no trades call at all
    seen = len(emulator.requests)
    s = sync.sync_account(client, lake, "BTCUSDT")
    assert trade_calls(emulator, seen) == [] and s["trades"]["rows"] == 0
    # one order fills: one orderId call of weight 5
    emulator.advance(MS_PER_MINUTE)
    order = emulator.add_order("BTCUSDT", price="60000.00000000", origQty="0.50000000", status="FILLED",
                               executedQty="0.50000000", cummulativeQuoteQty="30000.00000000")
    seen = len(emulator.requests)
    sync.sync_account(client, lake, "BTCUSDT")
    calls = trade_calls(emulator, seen)
    assert [(p["orderId"], w) for p, w in calls] == [(str(order["orderId"]), 5)]
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))
    # an order still on the book fills further: only it is asked again
    partial = next(o for o in emulator.orders("BTCUSDT") if o["status"] == "PARTIALLY_FILLED")
    emulator.advance(MS_PER_MINUTE)
    emulator.update_order("BTCUSDT", partial["orderId"], status="FILLED")
    seen = len(emulator.requests)
    sync.sync_account(client, lake, "BTCUSDT")
    assert [p["orderId"] for p, _ in trade_calls(emulator, seen)] == [str(partial["orderId"])]
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))


def test_account_sync_pages_by_from_id_when_many_orders_filled(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 50, NOW_MS - MS_PER_DAY, NOW_MS - 10 * MS_PER_MINUTE, seed=7)
    sync.sync_account(client, lake, "BTCUSDT")
    emulator.advance(MS_PER_MINUTE)
    for _ in range(5):
        emulator.add_order("BTCUSDT", price="60000.00000000", origQty="0.10000000", status="FILLED",
                           executedQty="0.10000000", cummulativeQuoteQty="6000.00000000")
    seen = len(emulator.requests)
    sync.sync_account(client, lake, "BTCUSDT")
    assert [w for _, w in trade_calls(emulator, seen)] == [20]  # 5 x 5 > 20: one fromId page
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))


def test_never_traded_symbol_is_empty_not_an_error(client, lake, emulator):
    s = sync.sync_trades(client, lake, "BTCUSDT")
    assert s["rows"] == 0 and lake_trades(lake) == []


def test_key_without_reading_is_a_clear_rejection(make_client, lake, emulator):
    emulator.add_api_key("read-less-key-0123456789", API_SECRET, can_read=False)
    client = make_client(api_key="read-less-key-0123456789")
    with pytest.raises(BadApiKeyError) as err:
        sync.sync_trades(client, lake, "BTCUSDT")
    assert err.value.exit_code == 3 and "-2015" in str(err.value) and "allows reading" in str(err.value)
    assert "read-less-key" not in str(err.value)


def test_python_api_trades_by_range_and_order(client, lake, emulator):
    import binance_lake

    emulator.generate_orders("BTCUSDT", 120, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=8)
    truth = emulator.trades("BTCUSDT")
    sync.sync_trades(client, lake, "BTCUSDT")
    reader = binance_lake.open_lake(lake.root)
    assert reader.symbols("trades") == ["BTCUSDT"]
    mid = truth[len(truth) // 2]["time"]
    got = reader.trades("btcusdt", start=None, end=_iso(mid))
    assert got["trade_id"].to_pylist() == [t["id"] for t in sorted(truth, key=lambda t: (t["time"], t["id"]))
                                           if t["time"] < mid]
    oid = truth[0]["orderId"]
    assert reader.trades("BTCUSDT", order_id=oid)["trade_id"].to_pylist() == [t["id"] for t in truth
                                                                              if t["orderId"] == oid]


def _iso(ms: int) -> str:
    from binance_lake.times import ms_to_iso

    return ms_to_iso(ms)


def test_rebuild_rederives_curated_trades_from_raw(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 150, NOW_MS - 2 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=13)
    sync.sync_trades(client, lake, "BTCUSDT")
    sync.sync_trades(client, lake, "BTCUSDT", TradesRequest(start=NOW_MS - 2 * MS_PER_DAY, end=NOW_MS))  # overlap
    for key in lake.list_keys("curated/trades"):
        lake.delete(key)
    sync.rebuild(lake, "BTCUSDT")  # one symbol as a bare str: not its letters
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))
    assert trades_cursor(lake, "BTCUSDT") == emulator.trades("BTCUSDT")[-1]["id"]


def test_microsecond_replies_land_the_same_rows(make_client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 60, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=14)
    sync.sync_trades(make_client(time_unit="MICROSECOND"), lake, "BTCUSDT")
    assert_lake_equals(lake, emulator.trades("BTCUSDT"))  # times back in ms, the same instants


def test_a_malformed_trade_is_quarantined_with_its_reason_and_the_rest_lands(client, lake, emulator):
    import json

    from binance_lake.fold import transform_pending
    from binance_lake.sources.rest.trades import TradesRun

    emulator.generate_orders("BTCUSDT", 40, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=15)
    truth = emulator.trades("BTCUSDT")
    bad = {**truth[0], "qty": "not-a-number"}
    run = TradesRun(client, lake, "BTCUSDT", None)
    run._write({"fromId": 0}, [bad, *truth[1:]], "history")
    transform_pending(lake, ["trades"], ["BTCUSDT"])
    assert [r["trade_id"] for r in lake_trades(lake)] == [t["id"] for t in truth[1:]]
    [qkey] = [k for k in lake.list_keys("quarantine/trades")]
    [entry] = json.loads(lake.read_bytes(qkey))["rows"]
    assert entry["row"]["id"] == truth[0]["id"] and "qty" in entry["reason"]


def test_start_not_before_end_is_a_clear_error(client, lake):
    from binance_lake.errors import BadInputError

    with pytest.raises(BadInputError, match=r"--start .* is not before --end"):
        sync.sync_trades(client, lake, "BTCUSDT", TradesRequest(start=NOW_MS, end=NOW_MS - 1))
