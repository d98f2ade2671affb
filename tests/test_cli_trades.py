"""`sync trades`, `sync account`, `export trades`, `query` on trades, as a user runs them."""

from __future__ import annotations

import csv
import json

import pytest

from binance_lake.cli import main
from binance_lake.schema import REPORT_ORDER
from tests.conftest import API_KEY, API_SECRET, NOW_MS


@pytest.fixture
def run(base_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    lake = str(tmp_path / "lake")

    def run(*args: str) -> tuple:
        code = main([*args, "--lake", lake, "--base-url", base_url] if args[0] == "sync" else [*args, "--lake", lake])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_sync_trades_summary_json_export_and_rerun(run, emulator, tmp_path):
    emulator.generate_orders("BTCUSDT", 60, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=9)
    truth = emulator.trades("BTCUSDT")
    code, out, _ = run("sync", "trades", "--symbol", "BTCUSDT")
    assert code == 0 and out.startswith(f"sync trades BTCUSDT: {len(truth)} rows fetched") and "weight used" in out
    code, out, _ = run("sync", "trades", "--symbol", "BTCUSDT", "--json")
    assert code == 0 and json.loads(out)["rows"] == 0  # a rerun adds nothing
    out_file = tmp_path / "trades.csv"
    assert run("export", "trades", "--symbol", "BTCUSDT", "--output", str(out_file))[0] == 0
    rows = list(csv.reader(out_file.open()))
    assert tuple(rows[0]) == REPORT_ORDER["trades"]
    t = truth[0]
    assert rows[1][:8] == ["BTCUSDT", str(t["id"]), str(t["orderId"]), t["price"], t["qty"], t["quoteQty"],
                           t["commission"], t["commissionAsset"]]
    assert len(rows) == len(truth) + 1


def test_sync_account_prints_both_tables(run, emulator):
    emulator.generate_orders("BTCUSDT", 30, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=2)
    code, out, _ = run("sync", "account", "--symbol", "BTCUSDT")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("sync orders BTCUSDT: 30 rows")
    assert lines[1].startswith(f"sync trades BTCUSDT: {len(emulator.trades('BTCUSDT'))} rows")


def test_sync_trades_key_without_reading_exits_3(run, emulator, monkeypatch):
    emulator.add_api_key(API_KEY, API_SECRET, can_read=False)
    code, out, err = run("sync", "trades", "--symbol", "BTCUSDT")
    assert code == 3 and "-2015" in err and "allows reading" in err and API_SECRET not in err + out


def test_emulator_demo_rerun_within_the_hour_adds_nothing(tmp_path, monkeypatch, capsys):
    """`sync trades --emulator` twice: the second run (40 minutes later, same hour) lands nothing new."""
    from binance_lake.emulator import Emulator

    lake = str(tmp_path / "lake")
    hour = 1_709_424_000_000  # 2024-03-03T00:00:00Z
    for minute in (5, 45):
        monkeypatch.setattr(Emulator, "now_ms", lambda self, m=minute: hour + m * 60_000)
        assert main(["sync", "trades", "--symbol", "BTCUSDT", "--emulator", "--lake", lake, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        if minute == 5:
            assert summary["rows"] > 1000
        else:
            assert summary["rows"] == 0 and summary["transform"]["rows_in"] == 0
