"""Context parsing: accounts/regions/symbols come from cdk.json or -c, validated."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from py_cdk.config import load_settings

from .support import cdk_json_context


def _settings(**overrides: object):
    return load_settings(cdk.App(context={**cdk_json_context(), **overrides}).node)


def test_cdk_json_settings() -> None:
    s = _settings()
    assert s.lake.symbols == ("BTCUSDT",)
    assert s.lake.schedule_minutes == 5
    assert (s.beta.retain_data, s.prod.retain_data) == (False, True)


def test_symbols_from_a_cli_string() -> None:
    assert _settings(**{"binance-lake:symbols": "btcusdt, ETHUSDT"}).lake.symbols == ("BTCUSDT", "ETHUSDT")


def test_bad_source_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="source-type"):
        _settings(**{"binance-lake:source-type": "svn"})


def test_missing_account_is_a_clear_error() -> None:
    ctx = {k: v for k, v in cdk_json_context().items() if k != "binance-lake:prod-account"}
    with pytest.raises(ValueError, match="prod-account"):
        load_settings(cdk.App(context=ctx).node)


def test_intervals_accept_one_or_a_list_and_the_old_key() -> None:
    assert _settings(**{"binance-lake:intervals": "1m,5m"}).lake.intervals == ("1m", "5m")
    assert _settings(**{"binance-lake:intervals": ["1m"]}).lake.intervals == ("1m",)
    ctx = {k: v for k, v in cdk_json_context().items() if k != "binance-lake:intervals"}
    assert load_settings(cdk.App(context={**ctx, "binance-lake:interval": "5m"}).node).lake.intervals == ("5m",)
    with pytest.raises(ValueError, match="intervals"):
        _settings(**{"binance-lake:intervals": " , "})
