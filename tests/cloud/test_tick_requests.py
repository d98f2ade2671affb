"""Lake requests of one extractor tick that must not grow with the symbols (issue 14, docs/cost.md levers)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from binance_lake import layout
from binance_lake.aws import extract_lambda
from binance_lake.emulator import Emulator
from binance_lake.fold import transform_pending
from binance_lake.jobs.extract import record_tick
from binance_lake.lake import LocalLake
from binance_lake.query import status
from binance_lake.runs import read_last_run, write_last_run
from binance_lake.schema import CANDLES, ORDERS
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_date
from tests.cloud.accounts import candles_settings, fast_retries, orders_settings, trading_account
from tests.conftest import API_KEY, API_SECRET, NOW_MS
from tests.helpers import curated

BASES = ["BTC", "ETH", "BNB", "SOL", "XRP"]


class WritesLake(LocalLake):
    """A local lake that remembers every key written (the PUTs of an S3 lake) and every listing."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.written: List[str] = []
        self.listed: List[str] = []

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        self.written.append(key)
        return super().write_bytes(key, data, if_absent)

    def list_keys(self, prefix: str) -> List[str]:
        self.listed.append(prefix)
        return super().list_keys(prefix)

    def list_children(self, prefix: str) -> List[str]:
        self.listed.append(prefix)
        return super().list_children(prefix)


class FilledSecret:
    def get_secret_value(self, SecretId: str) -> Dict[str, Any]:
        return {"SecretString": json.dumps({"api_key": API_KEY, "api_secret": API_SECRET})}


def _candles_tick(tmp_path, symbols: List[str], monkeypatch: pytest.MonkeyPatch) -> WritesLake:
    monkeypatch.setattr(extract_lambda, "CLIENT_TUNING", {"backoff_base_s": 0.01, "backoff_cap_s": 0.05,
                                                          "timeout_s": 2.0})
    emulator = Emulator(now_ms=NOW_MS, seed=1)
    for s in symbols:
        emulator.add_symbol(s)
    lake = WritesLake(str(tmp_path / "lake"))
    with emulator.serve() as url:
        extract_lambda.extract_candles(candles_settings(lake.root, symbols, url), lake)
    return lake


@pytest.mark.parametrize("count", [1, 5])
def test_candles_extractor_writes_one_run_record_a_tick(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                        count: int) -> None:
    """Lever 5: one run record per extractor a tick, not one per symbol; status still sees each symbol."""
    symbols = [f"{b}USDT" for b in BASES[:count]]
    lake = _candles_tick(tmp_path, symbols, monkeypatch)
    runs = [k for k in lake.written if k.startswith(layout.RUNS)]
    assert runs == [layout.tick_run_key(layout.run_table(CANDLES, "1m"))]
    transform_pending(lake, ["candles"], symbols)
    seen = {s.symbol: s.last_run for s in status(lake)}
    assert sorted(seen) == sorted(symbols)
    for s in symbols:
        assert seen[s] is not None and seen[s]["symbol"] == s and seen[s]["rows"] > 0


def test_tick_record_names_a_failed_symbol_and_the_later_record_wins(tmp_path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lake = _candles_tick(tmp_path, ["BTCUSDT", "ETHUSDT"], monkeypatch)
    table = layout.run_table(CANDLES, "1m")
    tick = json.loads(lake.read_bytes(layout.tick_run_key(table)))["symbols"]
    assert read_last_run(lake, table, "ETHUSDT") == tick["ETHUSDT"]
    # The next tick: BTCUSDT ran, ETHUSDT failed; status shows the failure, not the older success.
    record_tick(lake, table, {"BTCUSDT": {**tick["BTCUSDT"], "finished_at": "2099-01-01T00:00:00Z"}},
                {"ETHUSDT": "Binance answered 503"})
    assert read_last_run(lake, table, "ETHUSDT")["error"] == "Binance answered 503"
    assert read_last_run(lake, table, "BTCUSDT")["finished_at"] == "2099-01-01T00:00:00Z"
    # A one-symbol CLI run after the tick (its own last.json) is the newer record, and the other way round.
    write_last_run(lake, table, "ETHUSDT", {"finished_at": "2100-01-01T00:00:00Z", "by": "cli"})
    write_last_run(lake, table, "BTCUSDT", {"finished_at": "2000-01-01T00:00:00Z", "by": "cli"})
    assert read_last_run(lake, table, "ETHUSDT")["by"] == "cli"
    assert read_last_run(lake, table, "BTCUSDT")["finished_at"] == "2099-01-01T00:00:00Z"
    assert read_last_run(lake, table, "SOLUSDT") is None


@pytest.mark.parametrize("count", [2, 5])
def test_orders_extractor_lists_pending_and_resolved_once_a_tick(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                                 count: int) -> None:
    """Lever 2 (orders): the pending pages and resolved ids of every symbol come from one listing
    of each prefix, not two per symbol; the orders stored are still every order (nothing lost)."""
    fast_retries(monkeypatch)
    symbols = [f"{b}USDT" for b in BASES[:count]]
    emulator = trading_account(symbols, 6, 2, keep_one_open=True)  # the open one: the next tick refreshes it
    lake = WritesLake(str(tmp_path / "lake"))
    with emulator.serve() as url:
        config = orders_settings(lake.root, symbols, url, "arn:aws:secretsmanager:x")
        extract_lambda.extract_orders(config, lake, FilledSecret())
        transform_pending(lake, ["orders"], symbols)
        for s in symbols:
            emulator.add_order(s, status="FILLED")  # one new order per symbol before the next tick
        lake.listed.clear()
        extract_lambda.extract_orders(config, lake, FilledSecret())
    ledger_prefixes = (layout.pending_prefix(ORDERS), "raw/_resolved/orders")
    assert sorted(p for p in lake.listed if p.startswith(ledger_prefixes)) == sorted(
        [layout.pending_prefix(ORDERS) + "/", "raw/_resolved/orders/"])
    transform_pending(lake, ["orders"], symbols)
    stored = {(r["symbol"], r["order_id"]) for r in curated(lake, "orders").to_pylist()}
    assert stored == {(s, o["orderId"]) for s in symbols for o in emulator.orders(s)}


def _next_candles_tick(lake: WritesLake, symbols: List[str], minutes: int = 5) -> Dict[str, Any]:
    emulator = Emulator(now_ms=NOW_MS + minutes * MS_PER_MINUTE, seed=1)
    for s in symbols:
        emulator.add_symbol(s)
    lake.listed.clear()
    with emulator.serve() as url:
        return extract_lambda.extract_candles(candles_settings(lake.root, symbols, url), lake)


def test_steady_candles_tick_lists_nothing(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21 (docs/cost.md "candle watermark without LISTs"): the previous tick's record names
    each symbol's newest raw window; the lake still holding it (one HEAD) is the watermark, so a
    steady tick lists neither the archive (issue 14) nor the REST windows (two LISTs per symbol)."""
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    lake = _candles_tick(tmp_path, symbols, monkeypatch)
    summary = _next_candles_tick(lake, symbols)
    assert all(summary["symbols"][s]["rows"] == 5 for s in symbols), summary  # continued from the watermark
    assert lake.listed == []
    tick = json.loads(lake.read_bytes(layout.tick_run_key(layout.run_table(CANDLES, "1m"))))["symbols"]
    for s in symbols:  # the hint for the next tick: this tick's newest window
        assert tick[s]["newest_raw_key"] == layout.candle_raw_key(s, "1m", NOW_MS - 30_000,
                                                                   NOW_MS - 30_000 + 5 * MS_PER_MINUTE)


def _set_hint(lake: WritesLake, symbol: str, key: str) -> None:
    table = layout.run_table(CANDLES, "1m")
    record = json.loads(lake.read_bytes(layout.tick_run_key(table)))
    record["symbols"][symbol]["newest_raw_key"] = key
    lake.write_bytes(layout.tick_run_key(table), json.dumps(record).encode())


def test_a_hint_the_lake_does_not_confirm_falls_back_to_the_listing(tmp_path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint is never trusted blindly: a key the lake does not hold, or another symbol's window,
    is ignored and the symbol's windows are listed; nothing is fetched twice or skipped."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    lake = _candles_tick(tmp_path, symbols, monkeypatch)
    table = layout.run_table(CANDLES, "1m")
    real = json.loads(lake.read_bytes(layout.tick_run_key(table)))["symbols"]["BTCUSDT"]["newest_raw_key"]
    _set_hint(lake, "BTCUSDT", real.replace(".json", "0.json"))  # a window the lake never stored
    _set_hint(lake, "ETHUSDT", real)  # BTCUSDT's window, named for ETHUSDT
    summary = _next_candles_tick(lake, symbols)
    assert all(summary["symbols"][s]["rows"] == 5 for s in symbols), summary
    assert sorted({p.split("symbol=")[1].split("/")[0] for p in lake.listed}) == symbols


def test_a_stale_hint_refetches_but_curated_holds_each_candle_once(tmp_path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint older than the lake's newest window (another run stored newer windows since) makes the
    tick ask again for minutes the lake holds: raw stays immutable, the fold keeps one row per candle."""
    symbols = ["BTCUSDT"]
    lake = _candles_tick(tmp_path, symbols, monkeypatch)
    older = json.loads(lake.read_bytes(layout.tick_run_key(layout.run_table(CANDLES, "1m"))))
    _next_candles_tick(lake, symbols)  # stores [00:00, 00:05)
    lake.write_bytes(layout.tick_run_key(layout.run_table(CANDLES, "1m")), json.dumps(older).encode())
    summary = _next_candles_tick(lake, symbols, minutes=10)  # the hint says the lake ends at 00:00
    assert summary["symbols"]["BTCUSDT"]["rows_fetched"] == 10 and lake.listed == []
    transform_pending(lake, ["candles"], symbols)
    opens = [r["candle_open_time"] for r in curated(lake, "candles").to_pylist()]
    assert len(opens) == len(set(opens)) == 24 * 60 + 10  # the first day's 24 h, then 10 minutes, once each


def test_rest_watermark_before_today_still_asks_the_archive(tmp_path) -> None:
    from binance_lake.sources.rest.candles import lake_watermark
    from binance_lake.times import day_start

    lake = WritesLake(str(tmp_path / "lake"))
    today = day_start(NOW_MS)
    lake.write_bytes(layout.candle_raw_key("BTCUSDT", "1m", today - 2 * MS_PER_DAY, today - 2 * MS_PER_DAY + 60_000),
                     b"{}")
    assert lake_watermark(lake, "BTCUSDT", "1m", NOW_MS) == today - 2 * MS_PER_DAY + 60_000
    lake.write_bytes(layout.archive_dir("BTCUSDT", "1m", "daily") + "/BTCUSDT-1m-"
                     f"{ms_to_date(today - MS_PER_DAY)}.zip.json", b"{}")
    assert lake_watermark(lake, "BTCUSDT", "1m", NOW_MS) == today  # the archive's yesterday, not REST's
    assert any(p.startswith("raw/archive") for p in lake.listed)
