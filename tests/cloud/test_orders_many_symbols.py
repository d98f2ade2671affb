"""The orders extractor with many symbols: one all-symbols /openOrders call beyond 13.

rest-api.md "Current open orders (USER_DATA)": weight 6 with a symbol, 80 without, so past 13
symbols that each need the book (14 x 6 = 84 > 80) one call without a symbol is cheaper.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import pytest

from binance_lake.aws import extract_lambda
from binance_lake.emulator import Emulator
from binance_lake.fold import transform_pending
from binance_lake.lake import LocalLake
from tests.cloud.accounts import fast_retries, orders_settings, trading_account
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import curated, dec

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:binance-AbCdEf"
BASES = ["ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "TRX", "DOT", "LTC", "LINK", "AVAX", "ATOM", "UNI", "ETC"]
OPEN = ("NEW", "PARTIALLY_FILLED")


class FilledSecret:
    def get_secret_value(self, SecretId: str) -> Dict[str, Any]:
        return {"SecretString": json.dumps({"api_key": API_KEY, "api_secret": API_SECRET})}


def _open_orders_calls(emulator: Emulator, since: int) -> Tuple[int, List[str]]:
    """(successful all-symbols calls, symbols asked one by one) after request ``since``."""
    calls = [r for r in emulator.requests[since:] if r.path == "/api/v3/openOrders" and r.status == 200]
    per_symbol = sorted(r.params["symbol"] for r in calls if "symbol" in r.params)
    return sum("symbol" not in r.params for r in calls), per_symbol


def _assert_lake_equals_emulator(lake: LocalLake, emulator: Emulator, symbols: List[str]) -> None:
    rows = curated(lake, "orders").to_pylist()
    # Order ids restart per symbol in the emulator, as they do per symbol on Binance.
    stored = {(r["symbol"], r["order_id"]): r for r in rows}
    truth = {(s, o["orderId"]): o for s in symbols for o in emulator.orders(s)}
    assert sorted(stored) == sorted(truth)
    for key, o in truth.items():
        row = stored[key]
        assert (row["status"], dec(row["executed_qty"]), dec(row["price"])) == (
            o["status"], dec(o["executedQty"]), dec(o["price"])), key
        assert int(row["update_time"].timestamp() * 1000) == o["updateTime"], key


@pytest.mark.parametrize("count, all_symbols_calls", [(14, 1), (13, 0)])
def test_orders_extractor_asks_the_book_once_for_many_symbols(
        tmp_path, monkeypatch: pytest.MonkeyPatch, count: int, all_symbols_calls: int) -> None:
    fast_retries(monkeypatch)
    symbols = [f"{b}USDT" for b in BASES[:count]]
    emulator = trading_account(symbols, 12, 3, keep_one_open=True)  # every symbol keeps an order on the book
    lake = LocalLake(str(tmp_path / "lake"))

    with emulator.serve() as url:
        config = orders_settings(str(tmp_path / "lake"), symbols, url, ARN)
        first = extract_lambda.extract_orders(config, lake, FilledSecret())
        # Nothing stored open yet: no symbol needs the book, so no call at all (not even the 80).
        assert _open_orders_calls(emulator, 0) == (0, [])
        assert first["rows"] == 13 * count and not first["errors"]
        transform_pending(lake, ["orders"], symbols)  # the tick's transform Lambda: stored open ids

        emulator.advance(60_000)
        for s in symbols:  # one open order per symbol leaves the book, one new order arrives
            still_open = [o for o in emulator.orders(s) if o["status"] in OPEN]
            emulator.update_order(s, still_open[0]["orderId"], status="FILLED",
                                  executedQty=still_open[0]["origQty"])
            emulator.add_order(s, status="NEW")
        seen = len(emulator.requests)
        second = extract_lambda.extract_orders(config, lake, FilledSecret())

    assert not second["errors"]
    all_calls, per_symbol = _open_orders_calls(emulator, seen)
    assert all_calls == all_symbols_calls
    assert per_symbol == ([] if all_symbols_calls else sorted(symbols))
    transform_pending(lake, ["orders"], symbols)
    _assert_lake_equals_emulator(lake, emulator, symbols)
    assert any(o["status"] in OPEN for s in symbols for o in emulator.orders(s))  # the book was not empty


def _exchange_info_calls(emulator: Emulator, since: int) -> List[Dict[str, str]]:
    return [r.params for r in emulator.requests[since:] if r.path == "/api/v3/exchangeInfo"]


def test_extractors_ask_exchange_info_once_for_all_symbols(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One client per invocation: one exchangeInfo (weight 20) for every symbol, not one per
    symbol (100 symbols spent 4,000 weight a tick on it, over half the minute's 6,000), and each
    symbol's summary still counts only its own requests."""
    fast_retries(monkeypatch)
    symbols = [f"{b}USDT" for b in BASES[:5]]
    emulator = trading_account(symbols, 3, 1, keep_one_open=False)
    lake = LocalLake(str(tmp_path / "lake"))
    with emulator.serve() as url:
        config = orders_settings(str(tmp_path / "lake"), symbols, url, ARN)
        candles = extract_lambda.extract_candles(config, lake)
        calls = _exchange_info_calls(emulator, 0)
        assert len(calls) == 1 and json.loads(calls[0]["symbols"]) == sorted(symbols)
        assert candles["rows"] == 5 * 1440 and not candles["errors"]
        per_symbol_requests = [s["requests"] for s in candles["symbols"].values()]
        assert all(n == per_symbol_requests[0] for n in per_symbol_requests), per_symbol_requests

        since = len(emulator.requests)
        orders = extract_lambda.extract_orders(config, lake, FilledSecret())
        assert len(_exchange_info_calls(emulator, since)) == 1
        assert orders["rows"] == 3 * 5 and not orders["errors"]
