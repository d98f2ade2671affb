"""Orders: whole history paged by orderId, upserts of status changes, samples, auth errors."""

from __future__ import annotations

import logging

import pytest

from binance_lake.errors import BadApiKeyError, ClockSkewError, MissingCredentialsError, SignatureError
from binance_lake.jobs import sync
from binance_lake.sources.rest import orders as rest_orders
from binance_lake.sources.rest.client import BinanceClient
from binance_lake.sources.rest.orders import OrdersRequest
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.conftest import API_KEY, API_SECRET, NOW_MS
from tests.helpers import dec, order_rows

DECIMALS = {"price": "price", "orig_qty": "origQty", "executed_qty": "executedQty",
            "cummulative_quote_qty": "cummulativeQuoteQty"}


def assert_equals_truth(lake, truth):
    stored = order_rows(lake)
    assert sorted(stored) == sorted(o["orderId"] for o in truth)
    for o in truth:
        row = stored[o["orderId"]]
        for col, src in DECIMALS.items():
            assert dec(row[col]) == dec(o[src]), (o["orderId"], col)
        assert (row["status"], row["type"], row["side"]) == (o["status"], o["type"], o["side"])
        assert int(row["update_time"].timestamp() * 1000) == o["updateTime"]
        assert int(row["order_time"].timestamp() * 1000) == o["time"]


def test_whole_history_over_many_pages(client, lake, emulator):
    truth = emulator.generate_orders("BTCUSDT", 2500, NOW_MS - 30 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=3)
    s = sync.sync_orders(client, lake, "BTCUSDT")
    assert s["rows"] == 2500 and s["raw_files"] == 3  # pages of 1000 by orderId
    assert_equals_truth(lake, truth)
    pages = [r.params for r in emulator.requests if r.path == "/api/v3/allOrders"]
    assert [p.get("orderId") for p in pages] == ["0", "1001", "2001"]


def _sync_with_changes(client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 300, NOW_MS - 5 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=4)
    sync.sync_orders(client, lake, "BTCUSDT")
    open_before = [o for o in emulator.orders("BTCUSDT") if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    assert len(open_before) >= 3, "the generator should leave some orders open"
    emulator.advance(60_000)
    emulator.update_order("BTCUSDT", open_before[0]["orderId"], status="FILLED")
    emulator.update_order("BTCUSDT", open_before[1]["orderId"], status="CANCELED")
    new = emulator.add_order("BTCUSDT", status="NEW")
    seen = len(emulator.requests)
    s = sync.sync_orders(client, lake, "BTCUSDT")
    assert_equals_truth(lake, emulator.orders("BTCUSDT"))
    assert order_rows(lake)[open_before[0]["orderId"]]["status"] == "FILLED"
    assert order_rows(lake)[new["orderId"]]["status"] == "NEW"
    # Successful order calls only (the clock jump above costs one -1021 and a resync).
    return s, open_before, [(r.path, r.params) for r in emulator.requests[seen:]
                            if r.status == 200 and ("Order" in r.path or r.path == "/api/v3/order")]


def test_status_changes_are_upserted_cheaply(client, lake, emulator):
    s, open_before, calls = _sync_with_changes(client, lake, emulator)
    assert s["raw_files"] == 3  # the book, the two changed orders, the page of new orders
    paths = [p for p, _ in calls]
    # One openOrders call, one lookup per order that left the book, then new orders after the highest id.
    assert paths == ["/api/v3/openOrders", "/api/v3/order", "/api/v3/order", "/api/v3/allOrders"]
    assert {int(p["orderId"]) for _, p in calls[1:3]} == {o["orderId"] for o in open_before[:2]}
    assert calls[-1][1]["orderId"] == "301"


def test_many_changed_orders_are_refreshed_by_paging(client, lake, emulator, monkeypatch):
    monkeypatch.setattr(rest_orders, "REFRESH_ONE_BY_ONE_MAX", 1)
    _, open_before, calls = _sync_with_changes(client, lake, emulator)
    assert [p for p, _ in calls][:2] == ["/api/v3/openOrders", "/api/v3/allOrders"]
    assert int(calls[1][1]["orderId"]) == min(o["orderId"] for o in open_before[:2])


def test_latest_n_sample(client, lake, emulator):
    truth = emulator.generate_orders("BTCUSDT", 1500, NOW_MS - 10 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=5)
    sync.sync_orders(client, lake, "BTCUSDT", OrdersRequest(latest=700))
    assert sorted(order_rows(lake)) == sorted(o["orderId"] for o in truth)[-700:]


def test_window_sample_and_multi_day_window(client, lake, emulator):
    truth = emulator.generate_orders("BTCUSDT", 3000, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=6)
    start = NOW_MS - 15 * MS_PER_MINUTE
    sync.sync_orders(client, lake, "BTCUSDT", OrdersRequest(start=start, end=NOW_MS))
    expected = {o["orderId"] for o in truth if start <= o["time"] < NOW_MS}
    assert expected and expected <= set(order_rows(lake))
    # A 3-day window is split into 24-hour requests (Binance rejects longer ones with -1127).
    sync.sync_orders(client, lake, "BTCUSDT", OrdersRequest(start=NOW_MS - 3 * MS_PER_DAY, end=NOW_MS))
    assert set(order_rows(lake)) == {o["orderId"] for o in truth}
    windows = [r.params for r in emulator.requests if r.path == "/api/v3/allOrders" and "startTime" in r.params]
    assert all(int(p["endTime"]) - int(p["startTime"]) < MS_PER_DAY for p in windows)


def test_ccxt_captured_real_order_shape_lands(client, lake, emulator):
    [real] = emulator.load_orders_fixture("tests/fixtures/allOrders_spot_LTCUSDT_ccxt-fixture.json")
    sync.sync_orders(client, lake, "LTCUSDT")
    row = order_rows(lake)[real["orderId"]]
    assert (dec(row["price"]), row["status"], row["self_trade_prevention_mode"]) == (
        "50.00000000", "CANCELED", "EXPIRE_MAKER")


def test_auth_errors_are_clear(make_client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 5, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=1)
    with pytest.raises(MissingCredentialsError, match="BINANCE_API_KEY and BINANCE_API_SECRET"):
        sync.sync_orders(make_client(api_key=None, api_secret=None), lake, "BTCUSDT")
    with pytest.raises(BadApiKeyError, match="-2015"):
        sync.sync_orders(make_client(api_key="not-a-known-key"), lake, "BTCUSDT")
    with pytest.raises(SignatureError, match="BINANCE_API_SECRET does not match"):
        sync.sync_orders(make_client(api_secret="wrong-secret"), lake, "BTCUSDT")
    assert lake.list_keys("raw/orders") == []


def test_clock_skew_is_resynced_once_then_reported(make_client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 5, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=1)
    client = make_client()
    client.sync_clock()
    emulator.advance(3_600_000)  # the server's clock jumps: our offset is now an hour off
    sync.sync_orders(client, lake, "BTCUSDT")  # -1021, resync, success
    assert len(order_rows(lake)) == 5

    class BrokenClock(BinanceClient):
        def sync_clock(self) -> int:  # a clock that cannot be fixed (e.g. huge network delay)
            self._offset_ms, self._clock_synced = -3_600_000, True
            return 0

    broken = BrokenClock(make_client().config)
    with pytest.raises(ClockSkewError, match="outside recvWindow"):
        sync.sync_orders(broken, lake, "BTCUSDT", OrdersRequest(latest=5))


def test_secrets_never_reach_logs_or_lake(make_client, lake, emulator, caplog):
    caplog.set_level(logging.DEBUG)
    emulator.generate_orders("BTCUSDT", 50, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=2)
    sync.sync_orders(make_client(), lake, "BTCUSDT")
    with pytest.raises(SignatureError) as err:
        sync.sync_orders(make_client(api_secret="wrong-secret-value"), lake, "BTCUSDT")
    blobs = [lake.read_bytes(k) for k in lake.list_keys("")]
    for secret in (API_KEY, API_SECRET, "wrong-secret-value"):
        assert secret not in caplog.text and secret not in str(err.value)
        assert not any(secret.encode() in b for b in blobs)
    assert "test-api" not in repr(make_client().config)


def test_unset_working_time_is_null_not_1969(client, lake, emulator):
    """Binance sends workingTime -1 for a stop order that has not triggered yet."""
    o = emulator.add_order("BTCUSDT", type="STOP_LOSS_LIMIT", status="NEW", stopPrice="25000.00000000",
                           workingTime=-1, time=NOW_MS - MS_PER_MINUTE)
    sync.sync_orders(client, lake, "BTCUSDT")
    row = order_rows(lake)[o["orderId"]]
    assert row["working_time"] is None and dec(row["stop_price"]) == "25000.00000000"


def test_a_sample_first_does_not_hide_the_history_from_the_incremental_sync(client, lake, emulator):
    """--window/--limit store real orders but prove nothing about older ids: the next plain
    sync must still page the whole history (this lost orders before the history cursor existed)."""
    truth = emulator.generate_orders("BTCUSDT", 1200, NOW_MS - 5 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=8)
    sync.sync_orders(client, lake, "BTCUSDT", OrdersRequest(start=NOW_MS - 15 * MS_PER_MINUTE, end=NOW_MS))
    sync.sync_orders(client, lake, "BTCUSDT", OrdersRequest(latest=10))
    assert 0 < len(order_rows(lake)) < 1200
    sync.sync_orders(client, lake, "BTCUSDT")
    assert_equals_truth(lake, truth)
