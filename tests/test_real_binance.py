"""What real Binance does beyond the happy path (issue 12): WAF 403s, archived orders (-2026),
orders Binance forgot (-2013), symbols not TRADING, geo-blocking (451), µs timestamps, the
all-symbols /openOrders, and the emulator's -1104 / origClientOrderId contract."""

from __future__ import annotations

import json

import pytest

from binance_lake.cli import main
from binance_lake.emulator import Fault
from binance_lake.errors import BinanceUnavailableError, GeoBlockedError
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake
from binance_lake.sources import coverage
from binance_lake.sources.rest import orders as rest_orders
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_iso
from tests.conftest import API_KEY, API_SECRET, NOW_MS
from tests.helpers import candle_tuples, curated, order_rows, truth_tuples

MAR1 = 1709251200000  # 2024-03-01T00:00:00Z
OPEN = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")


# -- 1. WAF 403 ------------------------------------------------------------------------


def test_waf_403_every_few_requests_still_lands_every_candle(make_client, lake, emulator):
    emulator.inject(Fault("403", path=None, times=None, every=3))  # every 3rd request, any endpoint
    client = make_client()
    start, end = MAR1 - 10 * MS_PER_DAY, MAR1 + 15000 * MS_PER_MINUTE - 10 * MS_PER_DAY
    s = sync.sync_candles(client, lake, "BTCUSDT", start=start, end=end, workers=4)
    blocked = [r for r in emulator.requests if r.status == 403]
    assert len(blocked) >= 5 and client.stats.waf_blocked == len(blocked)
    assert s["rows"] == 15000 and s["exchange_gaps"] == []
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1m", start, end))


def test_waf_403_pauses_every_worker(make_client, emulator):
    emulator.inject(Fault("403", path="/api/v3/time", times=1))
    client = make_client(backoff_base_s=0.2, backoff_cap_s=0.2)
    paused = []
    client.budget.pause = lambda s: paused.append(s)  # the shared pause all threads wait on
    client.server_time()
    assert len(paused) == 1 and 0 <= paused[0] <= 0.2


def test_waf_403_that_persists_exits_4_with_a_clear_message(base_url, emulator, tmp_path, capsys):
    emulator.inject(Fault("403", path=None, times=None))
    code = main(["sync", "candles", "--symbol", "BTCUSDT", "--base-url", base_url, "--max-attempts", "2",
                 "--lake", str(tmp_path / "lake")])
    err = capsys.readouterr().err
    assert code == 4 and "firewall (WAF)" in err and "HTTP 403" in err and "after 2 attempts" in err


# -- 2. archived and forgotten orders --------------------------------------------------------


def _open_orders_then_cancel(emulator, client, lake, how_many: int) -> list:
    emulator.generate_orders("BTCUSDT", 400, NOW_MS - 5 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=4)
    sync.sync_orders(client, lake, "BTCUSDT")
    unexecuted = [o["orderId"] for o in emulator.orders("BTCUSDT")
                  if o["status"] == "NEW" and float(o["executedQty"]) == 0]
    assert len(unexecuted) >= how_many
    emulator.advance(MS_PER_MINUTE)
    for oid in unexecuted[:how_many]:
        emulator.update_order("BTCUSDT", oid, status="CANCELED")
    emulator.advance(91 * MS_PER_DAY)  # Binance archives them after 90 days
    emulator.archive_orders = True
    return unexecuted[:how_many]


def _assert_archived_final(lake, ids, emulator):
    rows = order_rows(lake)
    for oid in ids:
        row = rows[oid]
        extra = json.loads(row["extra_fields"])
        assert row["status"] == "CANCELED" and extra["lakeResolution"]["code"] == -2026
        assert extra["lakeResolution"]["storedStatus"] == "NEW" and "errors.md" in extra["lakeResolution"]["source"]
    index = rest_orders.read_orders_index(lake, "BTCUSDT")
    assert not set(ids) & set(index["open_order_ids"])
    # every other order is exactly what Binance serves
    for o in emulator.orders("BTCUSDT"):
        if o["orderId"] not in ids:
            assert rows[o["orderId"]]["status"] == o["status"]


def test_archived_orders_become_final_and_never_fail_a_sync(make_client, lake, emulator):
    client = make_client()
    ids = _open_orders_then_cancel(emulator, client, lake, 3)
    s = sync.sync_orders(make_client(), lake, "BTCUSDT")
    assert sorted(s["orders_resolved"]["-2026"]) == sorted(ids)
    _assert_archived_final(lake, ids, emulator)
    seen = len(emulator.requests)
    sync.sync_orders(make_client(), lake, "BTCUSDT")
    asked = [r.params.get("orderId") for r in emulator.requests[seen:] if r.path == "/api/v3/order"]
    assert asked == []  # final orders are never queried again


def test_archived_orders_left_out_of_allorders_do_not_stay_open_after_repaging(make_client, lake, emulator,
                                                                             monkeypatch):
    monkeypatch.setattr(rest_orders, "REFRESH_ONE_BY_ONE_MAX", 1)  # force the allOrders re-paging path
    ids = _open_orders_then_cancel(emulator, make_client(), lake, 3)
    seen = len(emulator.requests)
    sync.sync_orders(make_client(), lake, "BTCUSDT")
    calls = [(r.path, r.status) for r in emulator.requests[seen:] if "rder" in r.path]
    assert ("/api/v3/allOrders", 200) in calls and calls.count(("/api/v3/order", 400)) == 3
    _assert_archived_final(lake, ids, emulator)


def test_an_order_binance_forgot_is_kept_as_stored_and_not_queried_again(make_client, lake, emulator):
    emulator.generate_orders("BTCUSDT", 200, NOW_MS - 2 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=5)
    sync.sync_orders(make_client(), lake, "BTCUSDT")
    gone = next(o for o in emulator.orders("BTCUSDT") if o["status"] == "NEW")
    emulator.forget_order("BTCUSDT", gone["orderId"])
    s = sync.sync_orders(make_client(), lake, "BTCUSDT")
    assert s["orders_resolved"] == {"-2013": [gone["orderId"]]}
    assert order_rows(lake)[gone["orderId"]]["status"] == "NEW"  # last seen, not invented
    seen = len(emulator.requests)
    sync.sync_orders(make_client(), lake, "BTCUSDT")
    assert [r for r in emulator.requests[seen:] if r.path == "/api/v3/order"] == []


# -- 3. symbol status ----------------------------------------------------------------------


def test_a_symbol_in_break_is_reported_and_its_silence_is_no_exchange_gap(client, lake, emulator, tmp_path,
                                                                          base_url, capsys):
    brk = NOW_MS - 3 * MS_PER_DAY - 17 * MS_PER_MINUTE
    brk -= brk % MS_PER_MINUTE
    emulator.set_symbol_status("BTCUSDT", "BREAK", since_ms=brk)
    s = sync.sync_candles(client, lake, "BTCUSDT")  # empty lake, no range
    assert s["symbol_status"] == "BREAK" and "BREAK" in s["note"]
    assert s["exchange_gaps"] == [] and coverage.exchange_gaps(lake, "BTCUSDT", "1m") == []
    assert (s["start"], s["end"]) == (ms_to_iso(brk - MS_PER_DAY), ms_to_iso(brk))
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1m", brk - MS_PER_DAY, brk))
    # an explicit range across the break: history exact, still no gap after the last candle
    s2 = sync.sync_candles(client, lake, "BTCUSDT", start=brk - 2 * MS_PER_DAY)
    assert s2["exchange_gaps"] == [] and s2["end"] == ms_to_iso(brk)
    assert candle_tuples(lake) == truth_tuples(
        "BTCUSDT", emulator.klines("BTCUSDT", "1m", brk - 2 * MS_PER_DAY, brk))
    # the CLI's sync line and status name it
    lake_dir = str(tmp_path / "cli")
    assert main(["sync", "candles", "--symbol", "BTCUSDT", "--base-url", base_url, "--lake", lake_dir]) == 0
    assert "BTCUSDT is BREAK (not trading)" in capsys.readouterr().out
    assert main(["status", "--lake", lake_dir]) == 0
    assert "symbol status BREAK" in capsys.readouterr().out


def test_start_on_a_symbol_without_any_candle_says_so(client, lake, emulator):
    emulator.add_symbol("NEWUSDT", listed_at_ms=NOW_MS - MS_PER_DAY)
    emulator.set_symbol_status("NEWUSDT", "HALT", since_ms=0)
    with pytest.raises(Exception) as err:
        sync.sync_candles(client, lake, "NEWUSDT", start=MAR1)
    assert "no 1m candles at all" in str(err.value) and "HALT" in str(err.value) and "never" not in str(err.value)


# -- 4. geo-block ------------------------------------------------------------------------


def test_geo_block_fails_fast_naming_the_ways_out(base_url, emulator, tmp_path, capsys):
    emulator.geo_blocked = True
    code = main(["sync", "candles", "--symbol", "BTCUSDT", "--base-url", base_url, "--lake", str(tmp_path / "l")])
    err = capsys.readouterr().err
    assert code == 3 and "HTTP 451" in err and "https://api.binance.us" in err and "backfill" in err
    assert len(emulator.requests) == 1  # no retries: 451 will not change


# -- 5. microseconds -----------------------------------------------------------------------


def _lake_rows(lake: LocalLake, table: str) -> list:
    t = curated(lake, table).drop_columns(["ingested_at", "source_key"])
    return sorted(t.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def test_microsecond_runs_without_range_give_identical_lakes(base_url, emulator, tmp_path, monkeypatch, capsys):
    emulator.generate_orders("BTCUSDT", 300, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=9)
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    lakes = {}
    for unit, how in (("ms", []), ("us-env", None), ("us-opt", ["--time-unit", "microsecond"])):
        if how is None:
            monkeypatch.setenv("BINANCE_TIME_UNIT", "MICROSECOND")
        else:
            monkeypatch.delenv("BINANCE_TIME_UNIT", raising=False)
        d = str(tmp_path / unit)
        for table in ("candles", "orders"):
            assert main(["sync", table, "--symbol", "BTCUSDT", "--base-url", base_url, "--lake", d, *(how or [])]) == 0
        lakes[unit] = LocalLake(d)
    capsys.readouterr()
    us_raw = json.loads(lakes["us-env"].read_bytes(lakes["us-env"].list_keys("raw/klines")[0]))
    assert us_raw["time_unit"] == "MICROSECOND" and us_raw["data"][0][0] >= 10**15
    for table in ("candles", "orders"):
        ms = _lake_rows(lakes["ms"], table)
        assert ms and _lake_rows(lakes["us-env"], table) == ms == _lake_rows(lakes["us-opt"], table)
    assert len(_lake_rows(lakes["ms"], "candles")) == 1440


def test_bad_time_unit_is_a_clear_error(base_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_TIME_UNIT", "nanos")
    code = main(["sync", "candles", "--symbol", "BTCUSDT", "--base-url", base_url, "--lake", str(tmp_path / "l")])
    assert code == 2 and "MICROSECOND" in capsys.readouterr().err


# -- 6. all-symbols /openOrders, origClientOrderId, -1104 ------------------------------------


def test_open_orders_of_many_symbols_in_one_call(make_client, lake, emulator):
    symbols = [f"C{i:02d}USDT" for i in range(14)]
    for sym in symbols:
        emulator.add_symbol(sym)
    for sym in symbols[:2]:
        emulator.generate_orders(sym, 50, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=2)
    client = make_client()
    for sym in symbols:
        sync.sync_orders(client, lake, sym)
    changed = next(o for o in emulator.orders(symbols[0]) if o["status"] == "NEW")
    emulator.update_order(symbols[0], changed["orderId"], status="FILLED")
    assert rest_orders.prefetch_open_orders(client, symbols[:13]) is None  # 13 x 6 < 80
    seen = len(emulator.requests)
    on_book = rest_orders.prefetch_open_orders(client, symbols)
    for sym in symbols:
        sync.sync_orders(client, lake, sym, open_orders=on_book)
    books = [r for r in emulator.requests[seen:] if r.path == "/api/v3/openOrders"]
    assert len(books) == 1 and "symbol" not in books[0].params and books[0].weight == 80
    rows = order_rows(lake)
    assert rows[changed["orderId"]]["status"] == "FILLED"


def _python_binance(base_url):
    from binance.client import Client

    c = Client(API_KEY, API_SECRET, ping=False)
    c.API_URL = base_url + "/api"
    c.timestamp_offset = NOW_MS - int(__import__("time").time() * 1000)
    return c


def test_emulator_order_by_client_id_and_unread_parameters(base_url, emulator):
    from binance.exceptions import BinanceAPIException

    order = emulator.add_order("BTCUSDT", clientOrderId="my-order-1", status="NEW")
    c = _python_binance(base_url)
    assert c.get_order(symbol="BTCUSDT", origClientOrderId="my-order-1")["orderId"] == order["orderId"]
    with pytest.raises(BinanceAPIException) as err:
        c.get_all_orders(symbol="BTCUSDT", colour="red")
    assert err.value.code == -1104
    # symbol, colour, recvWindow, timestamp, signature sent; colour is not read
    assert err.value.message == "Not all sent parameters were read; read '4' parameter(s) but was sent '5'."


def test_client_raises_typed_errors(make_client, emulator):
    emulator.geo_blocked = True
    with pytest.raises(GeoBlockedError):
        make_client().server_time()
    emulator.geo_blocked = False
    emulator.inject(Fault("403", path=None, times=None))
    with pytest.raises(BinanceUnavailableError) as err:
        make_client(max_attempts=2).server_time()
    assert err.value.exit_code == 4
