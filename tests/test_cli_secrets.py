"""Secrets never stored or printed, and lake paths are paths (issue 17 items 5 and 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from binance_lake.cli import EMULATOR_KEY, main
from binance_lake.emulator import Emulator
from tests.conftest import API_KEY, API_SECRET

PASSWORD = "hunter2-s3cret"
DAY = "--start", "2024-03-01", "--end", "2024-03-01T01:00:00Z"


@pytest.fixture
def cli(monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    monkeypatch.delenv("BINANCE_BASE_URL", raising=False)

    def run(*args: str) -> tuple:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def files_holding(root: Path, needle: str) -> List[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("command", [("sync", "candles", "--symbol", "BTCUSDT", *DAY),
                                     ("sync", "orders", "--symbol", "BTCUSDT"),
                                     ("gaps", "--symbol", "BTCUSDT", "--repair")])
def test_a_password_in_the_base_url_is_refused_before_anything_is_written(cli, base_url, tmp_path, monkeypatch,
                                                                          emulator, command, how):
    lake = tmp_path / "lake"
    if command[0] == "gaps":  # a gap to repair, so that the repair reaches Binance
        assert cli("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", base_url, "--lake", str(lake))[0] == 0
        [part] = lake.glob("curated/candles/*/*/*/part-0.parquet")
        part.unlink()
    served = len(emulator.requests)
    secret_url = base_url.replace("http://", f"http://trader:{PASSWORD}@")
    if how == "flag":
        code, out, err = cli(*command, "--lake", str(lake), "--base-url", secret_url)
    else:
        monkeypatch.setenv("BINANCE_BASE_URL", secret_url)
        code, out, err = cli(*command, "--lake", str(lake))
    assert code == 2 and "must not contain credentials" in err
    assert PASSWORD not in out + err and "trader" not in out + err
    assert files_holding(tmp_path, PASSWORD) == []
    assert len(emulator.requests) == served  # refused before the first request


def test_a_password_in_the_archive_url_is_refused(cli, tmp_path):
    code, out, err = cli("backfill", "--symbol", "BTCUSDT", "--no-rest", "--start", "2024-01", "--end", "2024-02",
                         "--archive-url", f"https://u:{PASSWORD}@data.binance.vision", "--lake", str(tmp_path / "l"))
    assert code == 2 and "--archive-url" in err and PASSWORD not in out + err
    assert files_holding(tmp_path, PASSWORD) == []


def test_the_api_key_travels_only_on_signed_requests(cli, base_url, emulator, tmp_path):
    lake = str(tmp_path / "lake")
    assert cli("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", base_url, "--lake", lake)[0] == 0
    assert cli("sync", "orders", "--symbol", "BTCUSDT", "--base-url", base_url, "--lake", lake)[0] == 0
    sent = {(r.path, r.api_key_sent) for r in emulator.requests if r.status == 200}
    public = {p for p, with_key in sent if p in ("/api/v3/klines", "/api/v3/exchangeInfo", "/api/v3/time")}
    assert public == {"/api/v3/klines", "/api/v3/exchangeInfo", "/api/v3/time"}
    assert not any(with_key for p, with_key in sent if p in public)  # the key never rides a public request
    assert ("/api/v3/allOrders", True) in sent and ("/api/v3/allOrders", False) not in sent


@pytest.mark.parametrize("flags", [(), ("--api-key", "flag-key-123", "--api-secret", "flag-secret-456")])
def test_the_emulator_command_never_adopts_or_prints_the_users_key(cli, monkeypatch, flags):
    monkeypatch.setenv("BINANCE_API_KEY", "users-real-key-XYZ")
    monkeypatch.setenv("BINANCE_API_SECRET", "users-real-secret-XYZ")
    accepted = []
    real_add = Emulator.add_api_key
    monkeypatch.setattr(Emulator, "add_api_key",
                        lambda self, key, secret: (accepted.append(key), real_add(self, key, secret)))

    def stop(_seconds: float) -> None:
        raise KeyboardInterrupt  # Ctrl-C at once: the banner has been printed by then

    monkeypatch.setattr("time.sleep", stop)
    code, out, err = cli("emulator", "--port", "0", "--orders", "5", *flags)
    assert code == 0
    assert "users-real" not in out + err and accepted and "users-real-key-XYZ" not in accepted
    if flags:
        assert accepted == ["flag-key-123"] and "flag-key-123" not in out and "flag-secret-456" not in out
    else:
        assert accepted == [EMULATOR_KEY] and EMULATOR_KEY in out


@pytest.mark.parametrize(("mine", "neighbour"), [("lk?a", "lkXa"), ("lake[1]", "lake1"), ("*", "other")])
def test_a_lake_path_with_glob_characters_reads_only_that_lake(cli, base_url, tmp_path, mine, neighbour):
    ours, theirs = str(tmp_path / mine), str(tmp_path / neighbour)
    sync = ("sync", "candles", "--symbol", "BTCUSDT", "--base-url", base_url)
    assert cli(*sync, *DAY, "--lake", ours)[0] == 0  # 60 candles
    assert cli(*sync, "--start", "2024-03-01", "--end", "2024-03-01T03:00:00Z", "--lake", theirs)[0] == 0  # 180
    code, out, err = cli("query", "--format", "json", "SELECT count(*) AS n FROM candles", "--lake", ours)
    assert code == 0, err
    assert json.loads(out) == [{"n": 60}]
    code, out, _ = cli("status", "--json", "--lake", ours)
    assert code == 0 and [c["rows"] for c in json.loads(out)["candles"]] == [60]


@pytest.mark.parametrize("command", [("status",), ("query", "SELECT 1"), ("gaps", "--symbol", "BTCUSDT")])
def test_an_empty_lake_path_is_an_error(cli, command):
    code, out, err = cli(*command, "--lake", "")
    assert code == 2 and "lake path is empty" in err and out == ""
