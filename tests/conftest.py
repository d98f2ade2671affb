"""Shared fixtures: a served Binance emulator on a fixed data clock, a lake, a fast client."""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

from binance_lake.emulator import Emulator
from binance_lake.lake import LocalLake
from binance_lake.sources.rest.client import BinanceClient, ClientConfig

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# 2024-03-03T00:00:30Z: the candle that opened at 00:00 is still open.
NOW_MS = 1709424030000
API_KEY, API_SECRET = "test-api-key-0123456789", "test-api-secret-abcdefghij"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(now_ms=NOW_MS, seed=1)
    emu.add_api_key(API_KEY, API_SECRET)
    yield emu


@pytest.fixture
def base_url(emulator: Emulator) -> Iterator[str]:
    with emulator.serve() as url:
        yield url


@pytest.fixture
def lake(tmp_path) -> LocalLake:
    return LocalLake(str(tmp_path / "lake"))


@pytest.fixture
def make_client(base_url: str) -> Callable[..., BinanceClient]:
    """A client with fast backoff so fault tests stay quick; same code path as production."""

    def make(**overrides) -> BinanceClient:
        cfg = ClientConfig(base_url=base_url, api_key=API_KEY, api_secret=API_SECRET, timeout_s=2.0,
                           backoff_base_s=0.01, backoff_cap_s=0.05)
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return BinanceClient(cfg)

    return make


@pytest.fixture
def client(make_client) -> BinanceClient:
    return make_client()


@pytest.fixture
def cli(base_url, tmp_path, monkeypatch, capsys) -> Callable[..., tuple]:
    """``cli(*args)`` runs the binance-lake CLI in-process on ``tmp_path/lake`` with the test
    account's keys in the environment, returning (exit code, stdout, stderr); ``cli.base_url`` is
    the emulator's."""
    from binance_lake.cli import main

    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)

    def run(*args: str) -> tuple:
        code = main([*args, "--lake", str(tmp_path / "lake")])
        out, err = capsys.readouterr()
        return code, out, err

    run.base_url = base_url  # type: ignore[attr-defined]
    return run
