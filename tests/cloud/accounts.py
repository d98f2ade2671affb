"""An emulated Binance account with orders on many symbols, for the extractor Lambda tests."""

from __future__ import annotations

from typing import List, Sequence

import pytest

from binance_lake.aws import extract_lambda
from binance_lake.emulator import Emulator
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.conftest import API_KEY, API_SECRET, NOW_MS


def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short client backoffs and an empty secret cache for an in-process extractor run."""
    monkeypatch.setattr(extract_lambda, "CLIENT_TUNING",
                        {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 2.0})
    extract_lambda.clear_secret_cache()


def trading_account(symbols: Sequence[str], orders_each: int, days: int, keep_one_open: bool) -> Emulator:
    """``orders_each`` orders per symbol over the last ``days`` days (plus one NEW order on the
    book per symbol when ``keep_one_open``), with the test API key."""
    emulator = Emulator(now_ms=NOW_MS, seed=1)
    emulator.add_api_key(API_KEY, API_SECRET)
    for i, symbol in enumerate(symbols):
        emulator.add_symbol(symbol)
        emulator.generate_orders(symbol, orders_each, NOW_MS - days * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=i)
        if keep_one_open:
            emulator.add_order(symbol, status="NEW")
    return emulator


def candles_settings(lake_uri: str, symbols: List[str], base_url: str, intervals: Sequence[str] = ("1m",)):
    """The candles extractor's settings as the CDK renders them (binance_lake/aws/settings.py)."""
    from binance_lake.aws.settings import ExtractSettings

    return ExtractSettings(service="binance-lake", log_level="INFO", lake_uri=lake_uri, symbols=list(symbols),
                           intervals=list(intervals), base_url=base_url)


def orders_settings(lake_uri: str, symbols: List[str], base_url: str, secret_arn: str):
    from binance_lake.aws.settings import OrdersSettings

    return OrdersSettings(**vars(candles_settings(lake_uri, symbols, base_url)), secret_arn=secret_arn)
