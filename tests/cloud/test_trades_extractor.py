"""The orders extractor Lambda also lands the fills (myTrades) in the same tick, and the transform
Lambda's tables (all of schema.TABLES) fold them."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from binance_lake.aws import extract_lambda, settings
from binance_lake.aws.transform_lambda import transform_increment
from binance_lake.lake import LocalLake
from binance_lake.reconcile import check_symbols
from binance_lake.schema import TABLES
from tests.cloud.accounts import fast_retries, trading_account
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import curated

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:binance-AbCdEf"
SYMBOLS = ["ETHUSDT", "BNBUSDT"]


class FilledSecret:
    def get_secret_value(self, SecretId: str) -> Dict[str, Any]:
        return {"SecretString": json.dumps({"api_key": API_KEY, "api_secret": API_SECRET})}


def _trade_calls(emulator, since):
    return [r.params for r in emulator.requests[since:] if r.path == "/api/v3/myTrades" and r.status == 200]


def test_orders_tick_lands_every_trade_once_and_a_quiet_tick_asks_nothing(tmp_path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fast_retries(monkeypatch)
    emulator = trading_account(SYMBOLS, 12, 3, keep_one_open=False)
    for s in SYMBOLS:  # fills for every order that executed something
        for o in emulator.orders(s):
            if o["status"] == "NEW":
                emulator.update_order(s, o["orderId"], status="FILLED", executedQty=o["origQty"])
    lake = LocalLake(str(tmp_path / "lake"))
    with emulator.serve() as url:
        config = settings.ExtractSettings(lake.root, SYMBOLS, "1m", url, ARN)
        first = extract_lambda.extract_orders(config, lake, FilledSecret())
        assert not first["errors"] and not first["trades"]["errors"]
        tables = [t for t in TABLES if t != "candles"]  # candles would publish the freshness metric
        transform_increment(settings.TransformSettings(lake.root, SYMBOLS, tables, ["1m"]), lake)
        stored = sorted((r["symbol"], r["trade_id"]) for r in curated(lake, "trades").to_pylist())
        truth = sorted((s, t["id"]) for s in SYMBOLS for t in emulator.trades(s))
        assert truth and stored == truth  # every trade exactly once
        assert check_symbols(lake, SYMBOLS) == []  # every final order equals its trades
        seen = len(emulator.requests)
        second = extract_lambda.extract_orders(config, lake, FilledSecret())
        assert _trade_calls(emulator, seen) == [] and second["trades"]["rows"] == 0
