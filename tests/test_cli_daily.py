"""Daily use through the CLI: many symbols and intervals in one command, --quote, `symbols`,
and outputs that say the same thing everywhere (export to stdout, gaps, query --json, progress)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from binance_lake.cli import main
from binance_lake.emulator.core import BTCUSDT_LISTED_MS
from binance_lake.jobs import sync
from binance_lake.schema import REPORT_ORDER
from tests.conftest import API_KEY, API_SECRET

HOURS = "--start", "2024-03-01", "--end", "2024-03-01T02:00:00Z"


@pytest.fixture
def run(base_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    monkeypatch.chdir(tmp_path)  # no binance-lake.toml of the developer's working directory
    lake = str(tmp_path / "lake")

    def run(*args: str) -> tuple:
        code = main([*args, "--lake", lake])
        out, err = capsys.readouterr()
        return code, out, err

    run.base_url = base_url
    return run


def _held(run) -> set:
    code, out, _ = run("status", "--json")
    assert code == 0
    return {(c["symbol"], c["interval"], c["rows"]) for c in json.loads(out)["candles"]}


def test_symbol_is_repeatable_and_comma_separated(run, emulator):
    """Before: `--symbol BTCUSDT --symbol BTCUSD` synced only BTCUSD (the last one won)."""
    emulator.add_symbol("ETHUSDT", listed_at_ms=BTCUSDT_LISTED_MS)
    code, out, _ = run("sync", "candles", "--symbol", "BTCUSDT", "--symbol", "btcusd,ETHUSDT", *HOURS,
                       "--base-url", run.base_url)
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "sync candles BTCUSDT", "sync candles BTCUSD", "sync candles ETHUSDT", "sync candles total"]
    assert lines[-1].startswith("sync candles total: 3 of 3 runs done (0 failed), 360 rows fetched")
    assert _held(run) == {("BTCUSDT", "1m", 120), ("BTCUSD", "1m", 120), ("ETHUSDT", "1m", 120)}
    # One client for all: the three symbols' exchangeInfo is one call (weight 20), not three.
    assert sum(r.path == "/api/v3/exchangeInfo" for r in emulator.requests) == 1


def test_interval_is_repeatable_and_comma_separated(run):
    code, out, _ = run("sync", "candles", "--symbol", "BTCUSDT", "--interval", "1m,5m", "--interval", "1h",
                       *HOURS, "--base-url", run.base_url)
    assert code == 0, out
    assert _held(run) == {("BTCUSDT", "1m", 120), ("BTCUSDT", "5m", 24), ("BTCUSDT", "1h", 2)}
    assert "sync candles BTCUSDT 5m: 24 rows fetched" in out


@pytest.mark.parametrize("bad", ["BTCUSDT,,BTCUSD", ","])
def test_empty_symbol_in_a_list_is_exit_2(run, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sync", "candles", "--symbol", bad])
    assert exc.value.code == 2 and "has an empty name" in capsys.readouterr().err


def test_missing_symbol_is_exit_2_naming_the_ways_to_give_one(run):
    code, _, err = run("sync", "candles", "--base-url", run.base_url)
    assert code == 2 and "--symbol is required" in err and "binance-lake.toml" in err


def test_quote_syncs_every_trading_symbol_of_that_quote(run, emulator):
    emulator.add_symbol("ETHUSDT", listed_at_ms=BTCUSDT_LISTED_MS)
    emulator.add_symbol("BNBUSDT", listed_at_ms=BTCUSDT_LISTED_MS)
    emulator.set_symbol_status("BNBUSDT", "BREAK")  # not TRADING: left out
    code, out, err = run("sync", "candles", "--quote", "usdt", *HOURS, "--base-url", run.base_url)
    assert code == 0, err
    assert err.splitlines()[0] == "--quote USDT: 2 TRADING symbols"  # the count comes first
    assert _held(run) == {("BTCUSDT", "1m", 120), ("ETHUSDT", "1m", 120)}
    assert out.strip().splitlines()[-1].startswith("sync candles total: 2 of 2 runs done")
    # The full listing is the only exchangeInfo call: the per-symbol lookups come from its cache.
    assert sum(r.path == "/api/v3/exchangeInfo" for r in emulator.requests) == 1


def test_one_bad_symbol_does_not_stop_the_others_but_the_exit_says_so(run):
    code, out, err = run("sync", "candles", "--symbol", "NOPE,BTCUSDT", *HOURS, "--base-url", run.base_url)
    assert code == 2
    assert "error: sync candles NOPE 1m: " in err and "unknown symbol 'NOPE'" in err
    assert "sync candles total: 1 of 2 runs done (1 failed)" in out
    assert _held(run) == {("BTCUSDT", "1m", 120)}


def test_symbols_lists_exchange_status_and_lake_holdings(run, emulator):
    emulator.set_symbol_status("BTCUSD", "HALT")
    run("sync", "candles", "--symbol", "BTCUSDT", *HOURS, "--base-url", run.base_url)
    code, out, _ = run("symbols", "--base-url", run.base_url)
    assert code == 0
    lines = out.strip().splitlines()
    assert "BTCUSD HALT BTC/USD lake: -" in lines
    assert ("BTCUSDT TRADING BTC/USDT lake: 1m 120 candles 2024-03-01T00:00:00Z .. 2024-03-01T01:59:00Z"
            in lines)
    assert lines[-1].startswith("symbols: 2 on http://127.0.0.1:") and "(1 TRADING), 1 of them in the lake" in lines[-1]
    code, out, _ = run("symbols", "--quote", "USDT", "--json", "--base-url", run.base_url)
    assert [s["symbol"] for s in json.loads(out)["symbols"]] == ["BTCUSDT"]
    code, _, err = run("symbols", "--symbol", "NOPE", "--base-url", run.base_url)
    assert code == 2 and "NOPE" in err


def test_export_to_stdout_is_only_the_csv(run):
    """Before: the summary line was appended to the CSV on stdout."""
    run("sync", "candles", "--symbol", "BTCUSDT", *HOURS, "--base-url", run.base_url)
    code, out, err = run("export", "candles", "--symbol", "BTCUSDT", "--output", "-")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == REPORT_ORDER["candles"] and len(rows) == 121
    assert all(r[0] == "BTCUSDT" for r in rows[1:])
    assert "export candles BTCUSDT: 120 rows to -" in err


def test_export_several_symbols_needs_a_file_per_symbol(run, tmp_path):
    run("sync", "candles", "--symbol", "BTCUSDT,BTCUSD", *HOURS, "--base-url", run.base_url)
    code, _, err = run("export", "candles", "--symbol", "BTCUSDT,BTCUSD", "--output", "-")
    assert code == 2 and "{symbol}" in err
    code, out, _ = run("export", "candles", "--symbol", "BTCUSDT,BTCUSD", "--output", str(tmp_path / "c-{symbol}.csv"))
    assert code == 0 and len(out.strip().splitlines()) == 2
    for symbol in ("BTCUSDT", "BTCUSD"):
        rows = list(csv.reader((tmp_path / f"c-{symbol}.csv").open()))
        assert len(rows) == 121 and {r[0] for r in rows[1:]} == {symbol}


def test_gaps_report_goes_to_stdout(run, tmp_path):
    """Before: the gap list went to stderr while `status` prints its gaps to stdout."""
    run("sync", "candles", "--symbol", "BTCUSDT", *HOURS, "--base-url", run.base_url)
    part = tmp_path / "lake" / "curated" / "candles" / "interval=1m" / "symbol=BTCUSDT" / "date=2024-03-01"
    assert part.is_dir()
    # Remove the curated day: raw still covers it, so the whole range is one gap.
    for f in part.iterdir():
        f.unlink()
    code, out, err = run("gaps", "--symbol", "BTCUSDT")
    assert code == 0
    assert "gap BTCUSDT 2024-03-01T00:00:00Z .. 2024-03-01T02:00:00Z" in out.splitlines()
    assert "gap " not in err


def test_query_json_times_are_iso_z(run):
    run("sync", "candles", "--symbol", "BTCUSDT", *HOURS, "--base-url", run.base_url)
    code, out, _ = run("query", "--format", "json",
                       "SELECT candle_open_time, close_price FROM candles ORDER BY candle_open_time LIMIT 1")
    assert code == 0
    [row] = json.loads(out)
    assert row["candle_open_time"] == "2024-03-01T00:00:00.000Z"
    assert re.fullmatch(r"\d+\.\d{8}", row["close_price"])  # exact, as Binance prints it


def test_progress_and_summary_count_the_same_pages(run):
    """Before: progress said "2/2 requests" where the summary said 3 requests."""
    code, out, err = run("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01",
                         "--end", "2024-03-02", "--base-url", run.base_url)
    assert code == 0
    progress = re.findall(r"(\d+)/(\d+) data pages", err)
    assert progress and progress[-1] == ("2", "2")
    summary = re.search(r"(\d+) requests \((\d+) data pages\)", out)
    assert summary and summary.group(2) == "2" and int(summary.group(1)) > 2


def test_repair_progress_counts_pages_not_gaps(client, lake):
    """Before: one gap of ~1,450 candles showed "1/1 requests"."""
    seen = []
    day = 1709251200000
    sync.repair_candle_gaps(client, lake, "BTCUSDT", "1m", [(day, day + 1450 * 60_000)], 2,
                            lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


def test_readme_limit_range_matches_the_code(run):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "--limit 1..1000" in readme and "500..1000" not in readme
    for n, code in (("0", 2), ("1001", 2)):
        assert run("sync", "orders", "--symbol", "BTCUSDT", "--limit", n, "--base-url", run.base_url)[0] == code


def test_several_symbols_json_is_one_document_with_runs_and_a_total(run):
    code, out, _ = run("sync", "candles", "--symbol", "BTCUSDT,BTCUSD", *HOURS, "--json", "--base-url", run.base_url)
    assert code == 0
    doc = json.loads(out)  # one JSON value on stdout, whatever the number of symbols
    assert [r["symbol"] for r in doc["runs"]] == ["BTCUSDT", "BTCUSD"]
    assert doc["total"]["rows"] == 240 and doc["total"]["runs"] == 2
    # The total counts every request of the shared client (the exchangeInfo call no symbol owns too).
    assert doc["total"]["requests"] > sum(r["requests"] for r in doc["runs"])
    code, out, _ = run("gaps", "--symbol", "BTCUSDT,BTCUSD", "--json")
    assert code == 0 and [r["symbol"] for r in json.loads(out)["runs"]] == ["BTCUSDT", "BTCUSD"]


def test_gaps_takes_several_symbols(run):
    run("sync", "candles", "--symbol", "BTCUSDT,BTCUSD", *HOURS, "--base-url", run.base_url)
    code, out, _ = run("gaps", "--symbol", "BTCUSDT", "--symbol", "BTCUSD")
    assert code == 0
    assert out.splitlines() == ["gaps BTCUSDT: 0 gaps in 120 candles, exchange gaps 0",
                                "gaps BTCUSD: 0 gaps in 120 candles, exchange gaps 0"]


def test_backfill_takes_comma_separated_symbols_and_intervals(run, emulator, tmp_path):
    """Archive only (a file:// mirror built from the emulator's ground truth): 2 symbols x 2 intervals."""
    from binance_lake.emulator import archive as fake

    root = tmp_path / "archive"
    start, end = fake.period_range("2024-01")
    for symbol in ("BTCUSDT", "BTCUSD"):
        for interval in ("1m", "1h"):
            fake.write_file(root, symbol, interval, "2024-01", emulator.klines(symbol, interval, start, end))
    code, out, err = run("backfill", "--symbol", "BTCUSDT,BTCUSD", "--interval", "1m,1h", "--start", "2024-01",
                         "--end", "2024-02", "--no-rest", "--archive-url", root.as_uri())
    assert code == 0, err
    assert [line.split(":")[0] for line in out.strip().splitlines()] == [
        "backfill BTCUSDT", "backfill BTCUSDT 1h", "backfill BTCUSD", "backfill BTCUSD 1h"]
    assert _held(run) == {("BTCUSDT", "1m", 31 * 1440), ("BTCUSDT", "1h", 31 * 24),
                          ("BTCUSD", "1m", 31 * 1440), ("BTCUSD", "1h", 31 * 24)}
