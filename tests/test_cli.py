"""The command line as a user runs it: summaries, CSV export, query, exit codes."""

from __future__ import annotations

import csv
import json

import pytest

from binance_lake.cli import main
from binance_lake.schema import REPORT_ORDER
from tests.conftest import API_KEY, API_SECRET, NOW_MS

DAY = "--start", "2024-03-01", "--end", "2024-03-01T02:00:00Z"


@pytest.fixture
def run(base_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    lake = str(tmp_path / "lake")

    def run(*args: str, lake_dir: str = lake) -> tuple:
        code = main([*args, "--lake", lake_dir])
        out, err = capsys.readouterr()
        return code, out, err

    run.lake = lake
    run.base_url = base_url
    return run


def test_sync_summary_and_status(run):
    code, out, _ = run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)
    assert code == 0
    assert out.startswith("sync candles BTCUSDT: 120 rows fetched") and "weight used" in out
    code, out, _ = run("status", "--json")
    [c] = json.loads(out)["candles"]
    assert (c["rows"], c["first_candle"], c["last_candle"], c["gaps"]) == (
        120, "2024-03-01T00:00:00Z", "2024-03-01T01:59:00Z", [])
    assert c["last_run"]["rows"] == 120


def test_export_candles_csv_has_exact_headers_and_values(run, emulator, tmp_path):
    run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)
    out_file = tmp_path / "candles.csv"
    code, out, _ = run("export", "candles", "--symbol", "BTCUSDT", "--format", "csv", "--output", str(out_file))
    assert code == 0 and "120 rows" in out
    rows = list(csv.reader(out_file.open()))
    assert tuple(rows[0]) == REPORT_ORDER["candles"]
    first = emulator.klines("BTCUSDT", "1m", 1709251200000, 1709251260000)[0]
    assert rows[1] == ["BTCUSDT", first[1], first[4], first[2], first[3], first[5], first[7], str(first[8]),
                       "2024-03-01T00:00:00.000Z", "2024-03-01T00:00:59.999Z"]
    assert len(rows) == 121


def test_export_orders_csv(run, emulator, tmp_path):
    truth = emulator.generate_orders("BTCUSDT", 20, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=9)
    assert run("sync", "orders", "--symbol", "BTCUSDT", "--base-url", run.base_url)[0] == 0
    out_file = tmp_path / "orders.csv"
    run("export", "orders", "--symbol", "BTCUSDT", "--output", str(out_file))
    rows = list(csv.reader(out_file.open()))
    assert tuple(rows[0]) == REPORT_ORDER["orders"]
    o = truth[0]
    assert rows[1] == ["BTCUSDT", str(o["orderId"]), o["price"], o["origQty"], o["executedQty"], o["status"],
                       o["type"], o["side"]]


def test_query_over_views(run):
    run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)
    code, out, _ = run("query", "--format", "json", "SELECT count(*) AS n, min(date) AS d FROM candles")
    assert code == 0 and json.loads(out) == [{"n": 120, "d": "2024-03-01"}]
    code, _, err = run("query", "SELECT nope FROM candles")
    assert code == 2 and "query failed" in err


@pytest.mark.parametrize(("args", "code", "message"), [
    (("sync", "candles", "--symbol", "NOPE"), 2, "unknown symbol 'NOPE'"),
    (("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-02", "--end", "2024-03-01"), 2,
     "is not before --end"),
    (("sync", "candles", "--symbol", "BTCUSDT", "--start", "yesterday"), 2, "bad --start 'yesterday'"),
    (("sync", "candles", "--symbol", "BTCUSDT", "--interval", "7m"), 2, "unsupported interval '7m'"),
    (("sync", "orders", "--symbol", "BTCUSDT", "--limit", "5000"), 2, "--limit 5000 is out of range"),
    (("sync", "orders", "--symbol", "BTCUSDT", "--window", "fortnight"), 2, "bad duration 'fortnight'"),
])
def test_bad_input_exit_codes(run, args, code, message):
    got, _, err = run(*args, "--base-url", run.base_url)
    assert got == code and message in err


def test_missing_keys_exit_2(run, monkeypatch):
    monkeypatch.delenv("BINANCE_API_KEY")
    code, _, err = run("sync", "orders", "--symbol", "BTCUSDT", "--base-url", run.base_url)
    assert code == 2 and "set BINANCE_API_KEY and BINANCE_API_SECRET" in err


def test_unreachable_base_url_exit_4(run):
    code, _, err = run("sync", "candles", "--symbol", "BTCUSDT", "--base-url", "http://127.0.0.1:9",
                       "--max-attempts", "3")
    assert code == 4 and "cannot reach Binance at http://127.0.0.1:9" in err


def test_emulator_flag_runs_the_main_job_offline(run):
    code, out, _ = run("sync", "candles", "--symbol", "BTCUSDT", "--emulator")
    assert code == 0 and "1440 rows fetched" in out and "empty lake: last 24 hours" in out


def test_status_keeps_each_interval_apart(run):
    run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)
    run("sync", "candles", "--symbol", "BTCUSDT", "--interval", "1h", "--start", "2024-03-01",
        "--end", "2024-03-02", "--base-url", run.base_url)
    _, out, _ = run("status", "--json")
    by_interval = {c["interval"]: c for c in json.loads(out)["candles"]}
    assert (by_interval["1m"]["rows"], by_interval["1h"]["rows"]) == (120, 24)
    assert by_interval["1m"]["last_run"]["rows"] == 120 and by_interval["1h"]["last_run"]["rows"] == 24


def test_an_unreadable_curated_file_is_named_with_the_way_to_rebuild_it(run, emulator):
    run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)
    from pathlib import Path

    [part] = Path(run.lake).glob("curated/candles/*/*/*/part-0.parquet")
    part.write_bytes(b"torn")
    for args in (("status",), ("query", "SELECT count(*) FROM candles")):
        code, _, err = run(*args)
        assert code == 5 and "a curated file cannot be read" in err and "transform --rebuild" in err
    assert run("transform", "--rebuild", "--symbol", "BTCUSDT")[0] == 0
    code, out, _ = run("query", "--format", "json", "SELECT count(*) AS n FROM candles")
    assert code == 0 and json.loads(out) == [{"n": 120}]


def test_symbols_are_case_insensitive_on_the_command_line(run):
    code, out, _ = run("sync", "candles", "--symbol", "btcusdt", *DAY, "--base-url", run.base_url)
    assert code == 0 and out.startswith("sync candles BTCUSDT: 120 rows")
