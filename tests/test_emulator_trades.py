"""The emulator's /api/v3/myTrades: fills consistent with its orders, Binance's parameter rules,
fromId paging, the 24 h window, weight 20 or 5, -2015 for a key without reading. Real HTTP."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests

from binance_lake.emulator import Emulator, hmac_signature

NOW = 1709424030000
KEY, SECRET = "emu-test-key", "emu-test-secret"
MT = "/api/v3/myTrades"


@pytest.fixture()
def trades_emu():
    emu = Emulator(now_ms=NOW)
    emu.add_api_key(KEY, SECRET)
    emu.generate_orders("BTCUSDT", 400, NOW - 3 * 86_400_000, NOW - 60_000, seed=5)
    with emu.serve() as url:
        yield emu, url


def my_trades(url, params, key=KEY):
    query = urlencode({"symbol": "BTCUSDT", **params, "timestamp": NOW})
    return requests.get(f"{url}{MT}?{query}&signature={hmac_signature(SECRET, query)}",
                        headers={"X-MBX-APIKEY": key}, timeout=5)


def test_trades_sum_to_their_orders_with_partial_fills_maker_taker_and_bnb_fees(trades_emu):
    emu, _ = trades_emu
    trades = emu.trades("BTCUSDT")
    qty, quote, fills = defaultdict(Decimal), defaultdict(Decimal), defaultdict(int)
    for t in trades:
        qty[t["orderId"]] += Decimal(t["qty"])
        quote[t["orderId"]] += Decimal(t["quoteQty"])
        fills[t["orderId"]] += 1
    for o in emu.orders("BTCUSDT"):
        assert qty.get(o["orderId"], Decimal(0)) == Decimal(o["executedQty"]), o["orderId"]
        if Decimal(o["cummulativeQuoteQty"]) >= 0:
            assert quote.get(o["orderId"], Decimal(0)) == Decimal(o["cummulativeQuoteQty"]), o["orderId"]
    assert [t["id"] for t in trades] == list(range(1, len(trades) + 1))
    assert max(fills.values()) > 1  # several fills per order
    assert {t["commissionAsset"] for t in trades} == {"BNB", "USDT"}
    assert {t["isMaker"] for t in trades} == {True, False}
    assert all(t["isBuyer"] == (o["side"] == "BUY") for o in emu.orders("BTCUSDT")
               for t in trades if t["orderId"] == o["orderId"])


def test_an_order_that_fills_further_gets_new_trades_only(trades_emu):
    emu, _ = trades_emu
    order = emu.add_order("BTCUSDT", price="60000.00000000", origQty="1.00000000", status="NEW")
    before = emu.trades("BTCUSDT")
    emu.advance(60_000)
    emu.update_order("BTCUSDT", order["orderId"], status="PARTIALLY_FILLED", executedQty="0.40000000",
                     cummulativeQuoteQty="24000.00000000")
    emu.advance(60_000)
    emu.update_order("BTCUSDT", order["orderId"], status="FILLED")
    after = emu.trades("BTCUSDT")
    assert after[:len(before)] == before  # append-only: nothing before changes
    mine = [t for t in after if t["orderId"] == order["orderId"]]
    assert sum(Decimal(t["qty"]) for t in mine) == Decimal("1")
    assert sum(Decimal(t["quoteQty"]) for t in mine) == Decimal("60000")


def test_from_id_paging_and_the_most_recent_default(trades_emu):
    emu, url = trades_emu
    truth = emu.trades("BTCUSDT")
    assert len(truth) > 120
    page = my_trades(url, {"fromId": 11, "limit": 100}).json()
    assert page == truth[10:110]
    assert my_trades(url, {"limit": 7}).json() == truth[-7:]  # no fromId: the most recent, ascending


def test_order_id_selects_its_fills_and_weighs_five(trades_emu):
    emu, url = trades_emu
    oid = emu.trades("BTCUSDT")[0]["orderId"]
    rows = my_trades(url, {"orderId": oid}).json()
    assert rows and rows == [t for t in emu.trades("BTCUSDT") if t["orderId"] == oid]
    assert [r.weight for r in emu.requests if r.path == MT] == [5]
    assert my_trades(url, {"orderId": oid, "fromId": rows[-1]["id"]}).json() == rows[-1:]
    my_trades(url, {"limit": 1})
    assert emu.requests[-1].weight == 20


def test_window_rules_and_bad_combinations(trades_emu):
    emu, url = trades_emu
    truth = emu.trades("BTCUSDT")
    start = truth[0]["time"]
    r = my_trades(url, {"startTime": start, "endTime": start + 86_400_001})
    assert (r.status_code, r.json()["code"]) == (400, -1127)
    rows = my_trades(url, {"startTime": start, "endTime": start + 3_600_000}).json()
    assert rows == [t for t in truth if start <= t["time"] <= start + 3_600_000]
    for combo in ({"fromId": 1, "startTime": start}, {"orderId": 1, "startTime": start},
                  {"fromId": 1, "endTime": start}):
        r = my_trades(url, combo)
        assert (r.status_code, r.json()["code"]) == (400, -1128), combo
    assert my_trades(url, {"fromId": "x"}).json()["code"] == -1100


def test_key_without_reading_gets_2015_and_archived_orders_have_no_trades():
    emu = Emulator(now_ms=NOW)
    emu.add_api_key("no-read-key", SECRET, can_read=False)
    emu.archive_orders = True
    old = emu.add_order("BTCUSDT", status="CANCELED", time=NOW - 200 * 86_400_000,
                        updateTime=NOW - 200 * 86_400_000)
    assert [t for t in emu.trades("BTCUSDT") if t["orderId"] == old["orderId"]] == []
    with emu.serve() as url:
        r = my_trades(url, {}, key="no-read-key")
    assert (r.status_code, r.json()["code"]) == (401, -2015)
