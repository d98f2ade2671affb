"""exchangeInfo once per run: a 100-symbol run pays weight 20 for it, not 20 per symbol."""

from __future__ import annotations

import pytest

from binance_lake.errors import UnknownSymbolError
from binance_lake.sources.rest.client import EXCHANGE_INFO_WEIGHT

SYMBOLS = [f"C{i:03d}USDT" for i in range(100)]


def _exchange_info_requests(emulator):
    return [r for r in emulator.requests if r.path.endswith("/exchangeInfo") and r.status == 200]


def test_hundred_symbols_cost_one_exchange_info(emulator, client):
    for symbol in SYMBOLS:
        emulator.add_symbol(symbol)
    assert client.prefetch_symbol_info(SYMBOLS) == len(SYMBOLS)
    infos = [client.symbol_info(s) for s in SYMBOLS]  # as each symbol's sync asks it
    assert [i["symbol"] for i in infos] == SYMBOLS
    assert all(i["status"] == "TRADING" for i in infos)
    calls = _exchange_info_requests(emulator)
    assert len(calls) == 1 and sum(r.weight for r in calls) == EXCHANGE_INFO_WEIGHT
    assert client.stats.requests == 1


def test_without_prefetch_each_symbol_is_asked_once(emulator, client):
    emulator.add_symbol("ETHUSDT")
    for _ in range(3):
        assert client.symbol_info("ETHUSDT")["symbol"] == "ETHUSDT"
        assert client.symbol_info("BTCUSDT")["symbol"] == "BTCUSDT"
    assert len(_exchange_info_requests(emulator)) == 2


def test_an_unknown_symbol_in_the_list_fails_only_itself(emulator, client):
    emulator.add_symbol("ETHUSDT")
    assert client.prefetch_symbol_info(["BTCUSDT", "ETHUSDT", "NOPEUSDT"]) == 0
    assert client.symbol_info("ETHUSDT")["symbol"] == "ETHUSDT"
    with pytest.raises(UnknownSymbolError, match="NOPEUSDT"):
        client.symbol_info("NOPEUSDT")


def _time_requests(emulator):
    return [r for r in emulator.requests if r.path.endswith("/time") and r.status == 200]


def test_exchange_info_server_time_is_reused_not_extrapolated(emulator, client):
    from tests.conftest import NOW_MS

    client.symbol_info("BTCUSDT")
    emulator.advance(60_000)  # the server's clock moves on; the reading stays what it was
    assert client.server_time() == NOW_MS  # an earlier, already-passed server time: safe side
    assert _time_requests(emulator) == []


def test_an_old_reading_asks_the_server_again(emulator, client, monkeypatch):
    from binance_lake.sources.rest import client as client_module
    from tests.conftest import NOW_MS

    client.symbol_info("BTCUSDT")
    monkeypatch.setattr(client_module, "SERVER_TIME_REUSE_S", -1.0)  # every reading is too old
    emulator.advance(60_000)
    assert client.server_time() == NOW_MS + 60_000
    assert len(_time_requests(emulator)) == 1


def test_signed_calls_measure_the_offset_once_per_client(emulator, client):
    client.symbol_info("BTCUSDT")
    client.server_time()  # served by exchangeInfo's serverTime
    client.open_orders("BTCUSDT")  # signed: the first one measures the offset with /time
    client.all_orders("BTCUSDT")
    assert len(_time_requests(emulator)) == 1
