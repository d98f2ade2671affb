"""Honest exits (issue 20): nothing done where something was asked is never exit 0, a read-only
lake is exit 5 naming the path, configuration errors are exit 2 at the first request."""

from __future__ import annotations

import builtins
import errno
import json
import os
import re
from pathlib import Path

import pytest

from binance_lake import cli, layout
from binance_lake.cli import main
from tests.conftest import API_KEY, API_SECRET

README = Path(__file__).resolve().parents[1] / "README.md"
DAY = "--start", "2024-03-01", "--end", "2024-03-01T01:00:00Z"


@pytest.fixture
def run(monkeypatch, capsys, base_url, tmp_path):
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    monkeypatch.delenv("BINANCE_BASE_URL", raising=False)

    def run(*args: str, lake: str = str(tmp_path / "lake")) -> tuple:
        code = main([*args, "--lake", lake])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    run.lake, run.base_url = str(tmp_path / "lake"), base_url
    return run


def read_only(monkeypatch, root: str) -> None:
    """Make every write under ``root`` fail with EROFS, as a read-only mount does (the tests run as
    root, so chmod would not stop a write). Reads, and writes elsewhere, are untouched."""
    root = os.path.abspath(root)

    def refuse(path) -> None:
        if os.path.abspath(str(path)).startswith(root):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def wrap(fn, *paths_at):
        def guarded(*args, **kwargs):
            for i in paths_at:
                refuse(args[i])
            return fn(*args, **kwargs)
        return guarded

    real_open, real_makedirs = builtins.open, os.makedirs

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def makedirs(name, mode=0o777, exist_ok=False):
        if not os.path.isdir(name):
            refuse(name)
        return real_makedirs(name, mode, exist_ok)

    monkeypatch.setattr("binance_lake.lake.open", open_, raising=False)
    monkeypatch.setattr(os, "makedirs", makedirs)
    for name, at in (("unlink", (0,)), ("remove", (0,)), ("link", (0, 1)), ("replace", (0, 1)), ("rename", (0, 1))):
        monkeypatch.setattr(os, name, wrap(getattr(os, name), *at))


# -- a missing lake --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ("status",), ("status", "--json"), ("query", "SELECT count(*) FROM candles"), ("gaps", "--symbol", "BTCUSDT"),
    ("export", "candles", "--symbol", "BTCUSDT", "--output", "-"), ("verify", "--symbol", "BTCUSDT"),
    ("transform", "--rebuild", "--symbol", "BTCUSDT"),
])
def test_a_lake_that_does_not_exist_is_exit_2_for_every_reading_command(run, tmp_path, command):
    typo = str(tmp_path / "lkae")
    code, out, err = run(*command, lake=typo)
    assert code == 2 and "does not exist" in err and "lkae" in err and out == ""
    assert not os.path.exists(typo)


# -- ranges with nothing in them -------------------------------------------------------------


@pytest.mark.parametrize(("command", "message"), [
    (("sync", "candles", "--symbol", "BTCUSDT", "--start", "2100-01-01"), "is in the future"),
    (("sync", "orders", "--symbol", "BTCUSDT", "--start", "2100-01-01"), "is in the future"),
    (("sync", "trades", "--symbol", "BTCUSDT", "--start", "2100-01-01"), "is in the future"),
    (("sync", "candles", "--symbol", "BTCUSDT", "--start", "9999-12-31T23:59:59"), "the year must be between"),
    (("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "9999-12-31T23:59:59"),
     "the year must be between"),
])
def test_a_range_with_nothing_in_it_is_not_success(run, command, message):
    code, out, err = run(*command, "--base-url", run.base_url)
    assert code == 2 and message in err and out == ""
    assert not list(Path(run.lake).rglob("*.json"))  # nothing written either


def test_an_archive_only_backfill_without_archive_files_is_not_success(run, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    code, _, err = run("backfill", "--symbol", "BTCUSDT", "--no-rest", "--start", "2024-01", "--end", "2024-02",
                       "--archive-url", mirror.as_uri())
    assert code == 2 and "the archive has no file for BTCUSDT" in err and "drop --no-rest" in err


@pytest.mark.parametrize("sql", ["", "  "])
def test_an_empty_query_is_bad_input(run, sql):
    Path(run.lake).mkdir()
    code, out, err = run("query", sql)
    assert code == 2 and "the SQL statement is empty" in err and out == ""


# -- a read-only lake ------------------------------------------------------------------------


@pytest.fixture
def synced(run):
    assert run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)[0] == 0
    return run


@pytest.mark.parametrize("command", [
    ("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01T01:00:00Z", "--end", "2024-03-01T02:00:00Z"),
    ("transform", "--rebuild", "--symbol", "BTCUSDT"),
    ("verify", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02"),
])
def test_a_read_only_lake_is_exit_5_naming_the_path(synced, monkeypatch, command):
    read_only(monkeypatch, synced.lake)
    extra = ("--base-url", synced.base_url) if command[0] == "sync" else ()
    code, _, err = synced(*command, *extra)
    assert code == 5, err
    assert f"lake directory {os.path.abspath(synced.lake)} is not writable" in err
    assert "Read-only file system" in err


def test_verify_dry_run_needs_no_write(synced, monkeypatch):
    read_only(monkeypatch, synced.lake)
    code, out, err = synced("verify", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02",
                            "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["ok"] >= 1


# -- lock and index files of the wrong shape -------------------------------------------------


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"42", b'{"expires_at": "soon", "pid": "me"}'])
def test_a_lock_of_the_wrong_shape_is_taken_over_at_once(synced, caplog, body):
    key = Path(synced.lake, *layout.lock_key("candles", "BTCUSDT").split("/"))
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(body)
    code, _, err = synced("verify", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02",
                          "--lock-wait", "3")
    assert code == 0, err
    assert "does not hold a valid lease" in caplog.text and not key.exists()


@pytest.mark.parametrize("body", [b"null", b"[1, 2]", b'"index"'])
def test_an_orders_index_of_the_wrong_shape_is_ignored_with_a_word(run, caplog, body):
    index = Path(run.lake, *layout.orders_index_key().split("/"))
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_bytes(body)
    code, out, err = run("sync", "orders", "--symbol", "BTCUSDT", "--base-url", run.base_url)
    assert code == 0, err
    assert "is not a JSON object" in caplog.text and "sync orders BTCUSDT" in out


# -- configuration errors at the first request -----------------------------------------------


@pytest.mark.parametrize("key", [API_KEY + "\n", " " + API_KEY, API_KEY[:5] + "é" + API_KEY[5:]])
def test_an_api_key_with_a_bad_character_is_exit_2_before_any_signed_request(run, emulator, monkeypatch, key):
    monkeypatch.setenv("BINANCE_API_KEY", key)
    code, _, err = run("sync", "orders", "--symbol", "BTCUSDT", "--base-url", run.base_url, "--max-attempts", "8")
    assert code == 2 and "BINANCE_API_KEY holds a space, newline or non-ASCII character" in err
    assert API_KEY not in err
    assert not [r for r in emulator.requests if r.path == "/api/v3/allOrders"]


def test_a_base_url_with_a_wrong_path_is_exit_2_at_the_first_request(run, emulator):
    code, _, err = run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url + "/api",
                       "--max-attempts", "8")
    assert code == 2 and "answered HTTP 404" in err and "fix --base-url" in err
    assert len(emulator.requests) == 1  # no retries: a wrong path stays wrong


# -- one table -------------------------------------------------------------------------------


def test_readme_table_and_cli_docstring_list_the_same_exit_codes():
    section = README.read_text(encoding="utf-8").split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    in_readme = {int(c) for c in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    assert in_readme == set(cli.EXIT_CODES)
    doc = cli.__doc__ or ""
    assert {int(c) for c in re.findall(r"\b(\d+)\s+(?=[A-Za-z`])", doc.split("Exit codes", 1)[1])} == set(
        cli.EXIT_CODES)


@pytest.mark.parametrize("selection", [
    ("--symbol", "NOPE"),                                          # a symbol the lake does not hold
    ("--symbol", "BTCUSDT", "--interval", "1s"),                   # an interval it neither holds nor resamples to
    ("--symbol", "BTCUSDT", "--start", "2030-01-01", "--end", "2030-01-02"),  # a range with nothing in it
    ("--symbol", "BTCUSDT", "--start", "2024-03-02T00:00:00Z", "--end", "2024-03-02T00:00:00Z"),
])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_of_nothing_is_not_success_and_keeps_the_earlier_file(run, tmp_path, selection, fmt):
    code, _, err = run("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01T22:00:00Z",
                       "--end", "2024-03-02T02:00:00Z", "--base-url", run.base_url)
    assert code == 0, err
    target = tmp_path / ("out.csv" if fmt == "csv" else "ft")
    code, _, err = run("export", "candles", "--symbol", "BTCUSDT", "--format", fmt, "--output", str(target))
    assert code == 0, err
    files = [target] if fmt == "csv" else sorted(target.iterdir())
    before = {f: f.read_bytes() for f in files}
    code, _, err = run("export", "candles", *selection, "--format", fmt, "--output", str(target))
    assert code == 2 and err.startswith("error: "), err
    assert {f: f.read_bytes() for f in files} == before  # the earlier export is intact
    assert not list(tmp_path.rglob("*.tmp"))
