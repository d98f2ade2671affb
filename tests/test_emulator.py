"""Tests of the Binance emulator: real HTTP against the served emulator (requests and
python-binance), plus its pure generator. Offline and deterministic."""

from __future__ import annotations

import csv
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from binance.client import Client

from binance_lake.emulator import MS_PER_MINUTE, Emulator, Fault, generate_row, hmac_signature
from binance_lake.emulator.candles import SymbolSpec

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1709424030000  # 2024-03-03 00:00:30 UTC: 30 s into an open candle
OPEN = NOW // 60_000 * 60_000  # open time of the still-open candle
KEY, SECRET = "emu-test-key", "emu-test-secret"
KL = "/api/v3/klines"
AO = "/api/v3/allOrders"


@pytest.fixture()
def emu():
    return Emulator(now_ms=NOW)


@pytest.fixture()
def served(emu):
    with emu.serve() as url:
        yield emu, url


def get(url, path, params=None, headers=None, timeout=5):
    return requests.get(url + path, params=params, headers=headers, timeout=timeout)


def signed_get(url, params, secret=SECRET, key=KEY, upper=False):
    query = urlencode(params)
    sig = hmac_signature(secret, query)
    sig = sig.upper() if upper else sig
    headers = {"X-MBX-APIKEY": key} if key is not None else {}
    return requests.get(f"{url}{AO}?{query}&signature={sig}", headers=headers, timeout=5)


def dec(s):
    return Decimal(s)


def check_row(row, symbol_step_ms=MS_PER_MINUTE):
    assert len(row) == 12
    assert all(isinstance(row[i], str) and len(row[i].split(".")[1]) == 8 for i in (1, 2, 3, 4, 5, 7, 9, 10))
    o, h, lo, c, v, q, tb, tq = (dec(row[i]) for i in (1, 2, 3, 4, 5, 7, 9, 10))
    assert lo <= min(o, c) <= max(o, c) <= h and lo > 0
    assert v >= 0 and q >= 0 and 0 <= tb <= v and 0 <= tq <= q
    assert isinstance(row[8], int) and row[8] >= 0
    assert row[6] == row[0] + symbol_step_ms - 1 and row[11] == "0"
    if v == 0:
        assert row[8] == 0 and q == 0
    else:
        assert lo * v <= q <= h * v  # quote volume = base volume x a price inside the candle


# ------------------------------------------------------------------ signing and generator


def test_hmac_doc_test_vector():
    payload = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
               "&recvWindow=5000&timestamp=1499827319559")
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert hmac_signature(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_generator_invariants_determinism_and_continuity(emu):
    day = 1_700_006_400_000  # a UTC midnight
    rows = emu.klines("BTCUSDT", "1m", day, day + 1440 * MS_PER_MINUTE)
    assert [r[0] for r in rows] == list(range(day, day + 1440 * MS_PER_MINUTE, MS_PER_MINUTE))
    for r in rows:
        check_row(r)
    assert any(dec(r[5]) == 0 for r in rows), "some minutes must have no trades"
    # each candle opens at the previous non-empty candle's close (a continuous walk)
    assert sum(a[4] == b[1] for a, b in zip(rows, rows[1:])) > 1400
    assert Emulator(now_ms=NOW).klines("BTCUSDT", "1m", day, day + 1440 * MS_PER_MINUTE) == rows
    other = Emulator(now_ms=NOW, seed=7).klines("BTCUSDT", "1m", day, day + 60 * MS_PER_MINUTE)
    assert other != rows[:60]
    # a pure function: one minute alone equals the same minute inside a page
    spec = SymbolSpec.make("BTCUSDT", "BTC", "USDT", 1_502_942_400_000, 0)
    assert generate_row(spec, rows[700][0]) == rows[700]


def test_generator_is_fast_enough_for_year_paging(emu):
    start = 1_600_000_000_000 // MS_PER_MINUTE * MS_PER_MINUTE
    emu.klines("BTCUSDT", "1m", start, start + 1000 * MS_PER_MINUTE)  # warm caches
    best = min(_timed(emu, start + k * 10**9) for k in range(1, 4))
    assert best < 0.05, f"1000 candles took {best * 1000:.1f} ms"


def _timed(emu, start):
    t = time.perf_counter()
    assert len(emu.klines("BTCUSDT", "1m", start, start + 1000 * MS_PER_MINUTE)) == 1000
    return time.perf_counter() - t


def test_aggregated_interval_matches_minutes(emu):
    hour = NOW // 3_600_000 * 3_600_000 - 3 * 3_600_000
    agg = emu.klines("BTCUSDT", "1h", hour, hour + 3_600_000)
    mins = emu.klines("BTCUSDT", "1m", hour, hour + 3_600_000)
    assert len(agg) == 1 and agg[0][0] == hour and agg[0][6] == hour + 3_600_000 - 1
    assert agg[0][1] == mins[0][1] and agg[0][4] == mins[-1][4]
    assert dec(agg[0][2]) == max(dec(r[2]) for r in mins)
    assert dec(agg[0][5]) == sum(dec(r[5]) for r in mins)


# ------------------------------------------------------------------ klines over HTTP


def test_klines_default_is_latest_500_including_open_candle(served):
    emu, url = served
    r = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    rows = r.json()
    assert len(rows) == 500
    last_open = NOW // MS_PER_MINUTE * MS_PER_MINUTE
    assert rows[-1][0] == last_open and rows[-1][6] >= NOW  # the still-open candle is served
    assert [x[0] for x in rows] == list(range(last_open - 499 * MS_PER_MINUTE, last_open + 1, MS_PER_MINUTE))
    assert rows == emu.klines("BTCUSDT", "1m", last_open - 499 * MS_PER_MINUTE, NOW)


def test_klines_start_end_limit_semantics(served):
    emu, url = served
    base = {"symbol": "BTCUSDT", "interval": "1m"}
    start = NOW - 5000 * MS_PER_MINUTE + 17  # unaligned: the first candle opens at or after it
    rows = get(url, KL, {**base, "startTime": start, "limit": 1000}).json()
    first = -(-start // MS_PER_MINUTE) * MS_PER_MINUTE
    assert len(rows) == 1000 and rows[0][0] == first
    end = first + 10 * MS_PER_MINUTE  # inclusive on open time
    rows = get(url, KL, {**base, "startTime": start, "endTime": end, "limit": 1000}).json()
    assert [x[0] for x in rows] == list(range(first, end + 1, MS_PER_MINUTE))
    rows = get(url, KL, {**base, "endTime": end, "limit": 3}).json()  # newest up to endTime
    assert [x[0] for x in rows] == [end - 2 * MS_PER_MINUTE, end - MS_PER_MINUTE, end]
    assert len(get(url, KL, {**base, "limit": 1000}).json()) == 1000
    r = get(url, KL, {**base, "limit": 1001})
    assert r.status_code == 400 and r.json()["code"] == -1130
    # nothing after now, even when asked
    rows = get(url, KL, {**base, "startTime": NOW - 2 * MS_PER_MINUTE, "endTime": NOW + 10**7}).json()
    assert [x[0] for x in rows] == [NOW - 90_000, NOW - 30_000]  # NOW is 30 s into a minute
    emu.advance(MS_PER_MINUTE)  # the data clock moves: one more candle exists
    rows2 = get(url, KL, {**base, "startTime": NOW - 2 * MS_PER_MINUTE}).json()
    assert [x[0] for x in rows2] == [NOW - 90_000, NOW - 30_000, NOW + 30_000]


def test_klines_listing_date_is_the_first_candle(served):
    _, url = served
    rows = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "startTime": 0, "limit": 2}).json()
    assert [x[0] for x in rows] == [1502942400000, 1502942460000]
    rows = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "endTime": 1502942400000 - 1}).json()
    assert rows == []


def test_klines_errors_match_binance(served):
    _, url = served
    doc = json.loads((FIXTURES / "error_invalid_symbol_docs-sample.json").read_text())
    r = get(url, KL, {"symbol": "NOPEUSDT", "interval": "1m"})
    assert (r.status_code, r.json()) == (400, doc)
    r = get(url, KL, {"symbol": "BTCUSDT", "interval": "7m"})
    assert (r.status_code, r.json()) == (400, {"code": -1120, "msg": "Invalid interval."})
    r = get(url, KL, {"interval": "1m"})
    assert r.status_code == 400 and r.json()["code"] == -1102
    r = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"})
    assert r.status_code == 400 and r.json()["code"] == -1100
    r = get(url, "/api/v3/nothing")
    assert r.status_code == 404
    r = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "unknownParam": "x", "limit": 1})
    assert r.status_code == 200  # unknown params are ignored, as Binance does for klines


def test_klines_microseconds(served):
    _, url = served
    params = {"symbol": "BTCUSDT", "interval": "1m", "limit": 5}
    ms = get(url, KL, {**params, "startTime": NOW - 10 * MS_PER_MINUTE}).json()
    us = get(url, KL, {**params, "startTime": (NOW - 10 * MS_PER_MINUTE) * 1000},
             headers={"X-MBX-TIME-UNIT": "microsecond"}).json()
    assert [r[0] for r in us] == [r[0] * 1000 for r in ms]
    assert all(r[6] == r[0] + 59_999_999 for r in us)
    assert [r[1:6] for r in us] == [r[1:6] for r in ms]
    t = get(url, "/api/v3/time", headers={"X-MBX-TIME-UNIT": "MICROSECOND"}).json()
    assert t == {"serverTime": NOW * 1000}


def test_row_cache_serves_identical_rows():
    """row_cache=True (benchmarks) must not change a byte: same rows, in ms and µs, twice."""
    plain, cached = Emulator(now_ms=NOW), Emulator(now_ms=NOW, row_cache=True)
    start, end = OPEN - 3 * 1440 * MS_PER_MINUTE, NOW
    truth = plain.klines("BTCUSDT", "1m", start, end)
    assert cached.klines("BTCUSDT", "1m", start, end) == truth  # fills the cache
    assert cached.klines("BTCUSDT", "1m", start, end) == truth  # served from it
    assert cached.klines("BTCUSDT", "1h", start, end) == plain.klines("BTCUSDT", "1h", start, end)
    target = f"{KL}?symbol=BTCUSDT&interval=1m&limit=7&startTime={(start + 5 * MS_PER_MINUTE) * 1000}"
    us = {"x-mbx-time-unit": "microsecond"}
    assert cached.handle("GET", target, us).body == plain.handle("GET", target, us).body
    assert cached.klines("BTCUSDT", "1m", start, end) == truth  # µs replies did not alter the cache
    cached.set_kline_override("BTCUSDT", start, [start, *truth[1][1:6], start + 59_999, *truth[1][7:]])
    assert cached.klines("BTCUSDT", "1m", start, start + MS_PER_MINUTE)[0][1:6] == truth[1][1:6]


def test_exchange_gap_is_skipped(served):
    emu, url = served
    g0 = OPEN - 100 * MS_PER_MINUTE
    emu.add_exchange_gap("BTCUSDT", g0, g0 + 30 * MS_PER_MINUTE)
    rows = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "startTime": g0 - 2 * MS_PER_MINUTE,
                         "limit": 5}).json()
    assert [r[0] for r in rows] == [g0 - 2 * MS_PER_MINUTE, g0 - MS_PER_MINUTE] + [
        g0 + k * MS_PER_MINUTE for k in (30, 31, 32)]
    truth = emu.klines("BTCUSDT", "1m", g0 - 5 * MS_PER_MINUTE, g0 + 35 * MS_PER_MINUTE)
    assert len(truth) == 10 and all(not g0 <= r[0] < g0 + 30 * MS_PER_MINUTE for r in truth)
    rows = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "endTime": g0 + 30 * MS_PER_MINUTE,
                         "limit": 3}).json()  # the newest before a gap, going backwards
    assert [r[0] for r in rows] == [g0 - 2 * MS_PER_MINUTE, g0 - MS_PER_MINUTE, g0 + 30 * MS_PER_MINUTE]


def _csv_rows(name):
    with open(FIXTURES / name, newline="") as fh:
        return list(csv.DictReader(fh))


def test_fixture_day_served_exactly():
    emu = Emulator.from_fixture_day("BTCUSD", FIXTURES / "binanceus_BTCUSD_1m_2023-03-01.csv")
    day = 1677628800000  # 2023-03-01 00:00 UTC
    assert emu.now_ms() == day + 1440 * MS_PER_MINUTE
    assert emu.load_csv_fixture("BTCUSDT", FIXTURES / "binanceus_BTCUSDT_1m_2023-03-01.csv") == 1440
    with emu.serve() as url:
        for sym in ("BTCUSD", "BTCUSDT"):
            src = _csv_rows(f"binanceus_{sym}_1m_2023-03-01.csv")
            got = []
            for start in (day, day + 1000 * MS_PER_MINUTE):
                got += get(url, KL, {"symbol": sym, "interval": "1m", "startTime": start,
                                     "endTime": day + 1439 * MS_PER_MINUTE, "limit": 1000}).json()
            assert len(got) == 1440
            for row, rec in zip(got, src):
                assert [dec(row[i]) for i in range(1, 6)] == [
                    dec(rec[k]) for k in ("open", "high", "low", "close", "volume")]
                check_row(row)
            assert got[0][1] == ("23144.78000000" if sym == "BTCUSD" else "23140.48000000")


# ------------------------------------------------------------------ weight, 429 and 418


def _wait_for_fresh_window(window_s):
    left = window_s - time.time() % window_s
    if left < 1.5:
        time.sleep(left + 0.05)


def test_weight_header_429_then_418_ban(emu):
    emu.weight_limit = 10
    emu.ban_s = 120
    with emu.serve() as url:
        _wait_for_fresh_window(60)
        params = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
        used = [int(get(url, KL, params).headers["X-MBX-USED-WEIGHT-1M"]) for _ in range(5)]
        assert used == [2, 4, 6, 8, 10] and emu.used_weight() == 10
        r = get(url, KL, params)
        assert r.status_code == 429 and r.json()["code"] == -1003
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        r = get(url, "/api/v3/ping")  # ignoring Retry-After escalates to a ban
        assert r.status_code == 418 and r.json()["code"] == -1003 and "banned until" in r.json()["msg"]
        assert 110 <= int(r.headers["Retry-After"]) <= 120
        assert get(url, "/api/v3/time").status_code == 418
        assert emu.stats["429"] == 1 and emu.stats["418"] == 2 and emu.stats["bans"] == 1
        assert [rec.status for rec in emu.requests][-3:] == [429, 418, 418]


def test_short_window_header_and_rate_limits(emu):
    emu.weight_window_s = 2
    with emu.serve() as url:
        r = get(url, "/api/v3/exchangeInfo")
        assert "X-MBX-USED-WEIGHT-2S" in r.headers
        info = r.json()
        limit = info["rateLimits"][0]
        assert limit == {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 2, "limit": 6000}
        sym = info["symbols"][0]
        assert sym["status"] == "TRADING" and sym["baseAssetPrecision"] == 8
        assert {f["filterType"] for f in sym["filters"]} >= {"PRICE_FILTER", "LOT_SIZE"}
        r = get(url, "/api/v3/exchangeInfo", {"symbols": '["BTCUSDT","NOPE"]'})
        assert r.status_code == 400 and r.json()["code"] == -1121
        r = get(url, "/api/v3/exchangeInfo", {"symbol": "BTCUSD"})
        assert [s["quoteAsset"] for s in r.json()["symbols"]] == ["USD"]


# ------------------------------------------------------------------ faults

ERROR_FAULTS = {"-1000": 500, "-1007": 408, "-1008": 503}


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", *ERROR_FAULTS])
def test_status_faults(served, kind):
    emu, url = served
    emu.inject(Fault(kind, path=KL))
    r = get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "limit": 1})
    if kind.startswith("-"):
        assert r.status_code == ERROR_FAULTS[kind] and r.json()["code"] == int(kind)
    else:
        assert r.status_code == int(kind)
    assert get(url, KL, {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}).status_code == 200  # times=1
    assert emu.stats["faults"] == 1


def test_fault_429_and_418_carry_retry_after(served):
    emu, url = served
    emu.inject(Fault("429", path=None, retry_after_s=1))
    r = get(url, "/api/v3/time")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    time.sleep(1.05)  # honouring Retry-After avoids the ban
    assert get(url, "/api/v3/time").status_code == 200
    emu.inject(Fault("418", path="/api/v3/time", retry_after_s=1))
    r = get(url, "/api/v3/time")
    assert r.status_code == 418 and r.headers["Retry-After"] == "1"
    assert get(url, "/api/v3/ping").status_code == 418  # a ban covers every path
    time.sleep(1.05)
    assert get(url, "/api/v3/ping").status_code == 200


def test_connection_faults(served):
    emu, url = served
    params = {"symbol": "BTCUSDT", "interval": "1m", "limit": 50}
    emu.inject(Fault("reset"))
    with pytest.raises(requests.ConnectionError):
        get(url, KL, params)
    emu.inject(Fault("incomplete"))
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        get(url, KL, params)
    emu.inject(Fault("timeout", delay_s=1.5))
    t = time.monotonic()
    with pytest.raises(requests.Timeout):
        get(url, KL, params, timeout=0.3)
    assert time.monotonic() - t < 1.4
    assert get(url, KL, params).status_code == 200
    assert [rec.fault for rec in emu.requests[-4:]] == ["reset", "incomplete", "timeout", None]


def test_body_faults(served):
    emu, url = served
    params = {"symbol": "BTCUSDT", "interval": "1m", "limit": 50}
    good = get(url, KL, params).json()
    emu.inject(Fault("truncated"))
    r = get(url, KL, params)
    assert r.status_code == 200 and 0 < len(r.content) < len(json.dumps(good))
    with pytest.raises(ValueError):
        r.json()
    emu.inject(Fault("malformed"))
    r = get(url, KL, params)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    emu.inject(Fault("shuffle"))
    rows = get(url, KL, params).json()
    assert rows != good and sorted(rows) == good
    emu.inject(Fault("duplicate"))
    rows = get(url, KL, params).json()
    assert len(rows) > len(good) and sorted({r[0]: r for r in rows}.values()) == good


def test_fault_every_times_and_seeded_storm(served):
    emu, url = served
    emu.inject(Fault("503", path="/api/v3/ping", every=3, times=2))
    codes = [get(url, "/api/v3/ping").status_code for _ in range(9)]
    assert codes == [200, 200, 503, 200, 200, 503, 200, 200, 200]

    def storm(seed):
        emu.clear_faults()
        emu.fault_storm(seed=seed, rate=0.5, kinds=["500", "-1008"], paths=["/api/v3/time"])
        return [get(url, "/api/v3/time").status_code for _ in range(20)]

    a = storm(3)
    assert a == storm(3) and a != storm(4)
    assert 3 < a.count(200) < 17 and set(a) == {200, 500, 503}
    with pytest.raises(ValueError):
        Fault("nonsense")
    emu.clear_faults()
    emu.inject(Fault("-1003", path=None, retry_after_s=5))  # a -1003 body is a 429 with a penalty
    r = get(url, "/api/v3/time")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "5")
    assert get(url, "/api/v3/time").status_code == 418


# ------------------------------------------------------------------ allOrders


@pytest.fixture()
def orders_emu(served):
    emu, url = served
    emu.add_api_key(KEY, SECRET)
    emu.generate_orders("BTCUSDT", 600, NOW - 20 * 3_600_000, NOW - 60_000, seed=1)
    return emu, url


def test_all_orders_signature_checks(orders_emu):
    emu, url = orders_emu
    params = {"symbol": "BTCUSDT", "limit": 5, "timestamp": NOW - 100}
    r = signed_get(url, params)
    assert r.status_code == 200 and len(r.json()) == 5
    assert signed_get(url, params, upper=True).status_code == 200  # HMAC is case-insensitive
    r = signed_get(url, params, secret="wrong")
    assert (r.status_code, r.json()) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    r = signed_get(url, params, key="unknown-key")
    assert (r.status_code, r.json()["code"]) == (401, -2015)
    r = signed_get(url, params, key=None)
    assert (r.status_code, r.json()["code"]) == (401, -2014)
    # a tampered query keeps the old signature: rejected
    sig = hmac_signature(SECRET, urlencode(params))
    r = requests.get(f"{url}{AO}?{urlencode({**params, 'limit': 6})}&signature={sig}",
                     headers={"X-MBX-APIKEY": KEY}, timeout=5)
    assert r.json()["code"] == -1022
    assert all(KEY not in json.dumps(rec.params) for rec in emu.requests)


def test_all_orders_timestamp_and_recv_window(orders_emu):
    _, url = orders_emu
    base = {"symbol": "BTCUSDT", "limit": 1}
    assert signed_get(url, {**base, "timestamp": NOW - 4999}).status_code == 200
    r = signed_get(url, {**base, "timestamp": NOW - 5001})
    assert (r.status_code, r.json()["code"]) == (400, -1021)
    assert signed_get(url, {**base, "timestamp": NOW - 5001, "recvWindow": 10000}).status_code == 200
    assert signed_get(url, {**base, "timestamp": NOW + 999}).status_code == 200
    assert signed_get(url, {**base, "timestamp": NOW + 1000}).json()["code"] == -1021
    assert signed_get(url, {**base, "timestamp": (NOW - 10) * 1000}).status_code == 200  # µs
    assert signed_get(url, {**base, "timestamp": NOW, "recvWindow": 60001}).json()["code"] == -1131
    r = signed_get(url, {"symbol": "BTCUSDT"})
    assert r.json()["code"] == -1102


def test_all_orders_paging_rules(orders_emu):
    emu, url = orders_emu
    truth = emu.orders("BTCUSDT")
    assert len(truth) == 600
    rows = signed_get(url, {"symbol": "BTCUSDT", "timestamp": NOW}).json()
    assert [o["orderId"] for o in rows] == [o["orderId"] for o in truth[-500:]]  # newest 500, ascending
    rows = signed_get(url, {"symbol": "BTCUSDT", "orderId": 101, "limit": 1000, "timestamp": NOW}).json()
    assert [o["orderId"] for o in rows] == list(range(101, 601))
    start = truth[0]["time"]
    r = signed_get(url, {"symbol": "BTCUSDT", "startTime": start, "endTime": start + 86_400_001,
                         "timestamp": NOW})
    assert (r.status_code, r.json()["code"]) == (400, -1127)
    end = start + 3_600_000
    rows = signed_get(url, {"symbol": "BTCUSDT", "startTime": start, "endTime": end, "timestamp": NOW}).json()
    assert rows == [o for o in truth if start <= o["time"] <= end]
    assert rows and all(isinstance(o["orderId"], int) and isinstance(o["time"], int) for o in rows)
    r = signed_get(url, {"symbol": "NOPE", "timestamp": NOW})
    assert r.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_orders_shape_updates_and_ccxt_fixture(emu):
    emu.add_order("BTCUSDT", price="1.00000000", origQty="2.00000000")
    emu.set_now(NOW + 5000)
    upd = emu.update_order("BTCUSDT", 1, status="FILLED")
    assert upd["updateTime"] == NOW + 5000 and upd["time"] == NOW
    assert upd["executedQty"] == "2.00000000" and upd["cummulativeQuoteQty"] == "2.00000000"
    fields = list(upd)
    assert fields[:4] == ["symbol", "orderId", "orderListId", "clientOrderId"]
    assert fields[-1] == "selfTradePreventionMode"
    generated = emu.generate_orders("BTCUSDT", 300, NOW - 86_400_000, NOW, seed=2)
    assert generated == Emulator(now_ms=NOW + 5000).generate_orders(
        "BTCUSDT", 300, NOW - 86_400_000, NOW, seed=2)[:0] + generated  # list equality sanity
    assert {o["status"] for o in generated} >= {"FILLED", "CANCELED", "NEW", "EXPIRED"}
    assert any("stopPrice" not in o for o in generated) and any("expiryReason" in o for o in generated)
    assert all(o["updateTime"] >= o["time"] for o in generated)
    loaded = emu.load_orders_fixture(FIXTURES / "allOrders_spot_LTCUSDT_ccxt-fixture.json")
    assert loaded[0]["orderId"] == 3854801792 and loaded[0]["time"] == 1701856395927
    assert emu.orders("LTCUSDT")[0]["isWorking"] is True


def test_generate_orders_is_deterministic():
    a = Emulator(now_ms=NOW).generate_orders("BTCUSDT", 50, NOW - 3_600_000, NOW, seed=9)
    b = Emulator(now_ms=NOW).generate_orders("BTCUSDT", 50, NOW - 3_600_000, NOW, seed=9)
    assert a == b and [o["orderId"] for o in a] == list(range(1, 51))
    assert [o["time"] for o in a] == sorted(o["time"] for o in a)


# ------------------------------------------------------------------ python-binance, threads


def test_python_binance_unmodified(orders_emu):
    emu, url = orders_emu
    client = Client(KEY, SECRET, ping=False)
    client.API_URL = url + "/api"
    client.timestamp_offset = client.get_server_time()["serverTime"] - int(time.time() * 1000)
    assert client.get_server_time() == {"serverTime": NOW}
    assert client.get_exchange_info()["rateLimits"][0]["limit"] == 6000
    info = client.get_symbol_info("BTCUSDT")
    assert info["baseAsset"] == "BTC" and info["quoteAsset"] == "USDT"
    start = NOW - 2500 * MS_PER_MINUTE
    page = client.get_klines(symbol="BTCUSDT", interval="1m", startTime=start, limit=1000)
    assert page == emu.klines("BTCUSDT", "1m", start, start + 1000 * MS_PER_MINUTE)
    hist = client.get_historical_klines("BTCUSDT", "1m", start, NOW - 60_000)
    assert hist == emu.klines("BTCUSDT", "1m", start, NOW - 60_000 + 1)
    got = client.get_all_orders(symbol="BTCUSDT", orderId=1, limit=1000)
    assert got == emu.orders("BTCUSDT")
    client.timestamp_offset = 0  # real clock is far from the emulator's fixed 2024 clock
    with pytest.raises(Exception, match="-1021"):
        client.get_all_orders(symbol="BTCUSDT", limit=1)


def test_concurrent_requests_from_8_threads(served):
    emu, url = served
    truth = emu.klines("BTCUSDT", "1m", OPEN - 1000 * MS_PER_MINUTE, NOW)
    results: list = []
    errors: list = []

    def worker(i):
        try:
            with requests.Session() as s:
                for k in range(10):
                    start = OPEN - 1000 * MS_PER_MINUTE + ((i * 10 + k) % 50) * MS_PER_MINUTE
                    r = s.get(url + KL, params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start,
                                                "limit": 100}, timeout=10)
                    results.append((start, r.status_code, r.json()))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 80
    by_open = {r[0]: r for r in truth}
    for start, status, rows in results:
        assert status == 200 and rows == [by_open[start + k * MS_PER_MINUTE] for k in range(100)]
    assert emu.stats["requests"] == 80 and emu.used_weight() == 160


def test_data_clock_controls():
    emu = Emulator(now_ms=NOW)
    emu.advance(60_000)
    assert emu.now_ms() == NOW + 60_000
    live = Emulator(now_ms=None)
    assert abs(live.now_ms() - time.time() * 1000) < 5000
    with pytest.raises(RuntimeError):
        live.set_now(NOW)


def test_open_orders_and_single_order_endpoints():
    """openOrders lists the book; order returns one order or -2013, both signed."""
    import time as _time

    from binance.client import Client
    from binance.exceptions import BinanceAPIException

    from binance_lake.emulator import Emulator

    emu = Emulator(now_ms=1709424030000)
    emu.add_api_key("k" * 20, "s" * 20)
    orders = emu.generate_orders("BTCUSDT", 40, 1709424030000 - 86_400_000, 1709424030000 - 60_000, seed=2)
    with emu.serve() as url:
        c = Client("k" * 20, "s" * 20, ping=False)
        c.API_URL = url + "/api"
        c.timestamp_offset = c.get_server_time()["serverTime"] - int(_time.time() * 1000)
        on_book = c.get_open_orders(symbol="BTCUSDT")
        assert [o["orderId"] for o in on_book] == [
            o["orderId"] for o in orders if o["status"] in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")]
        assert c.get_order(symbol="BTCUSDT", orderId=orders[3]["orderId"]) == emu.orders("BTCUSDT")[3]
        try:
            c.get_order(symbol="BTCUSDT", orderId=10_000)
            raise AssertionError("expected -2013")
        except BinanceAPIException as exc:
            assert exc.code == -2013
