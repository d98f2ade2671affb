"""binance-lake.toml: found in the working directory or given with --config; flag > env > file >
default; `binance-lake config` says where each setting came from; mistakes are exit 2 naming the key."""

from __future__ import annotations

import json

import pytest

from binance_lake.cli import main
from binance_lake.config import KEYS

SETTINGS_ENV = [k.env for k in KEYS]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)

    def cli(*args: str) -> tuple:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return cli


def _config(cli, *args: str) -> dict:
    code, out, err = cli("config", "--json", *args)
    assert code == 0, err
    return {name: (s["value"], s["source"]) for name, s in json.loads(out)["settings"].items()}


def test_defaults_without_a_file(cli):
    assert _config(cli) == {"lake": ("./lake", "default"), "symbols": ([], "default"),
                            "intervals": (["1m"], "default"), "base_url": ("https://api.binance.com", "default"),
                            "workers": (8, "default")}
    code, out, _ = cli("config")
    assert code == 0 and "# config file: none" in out and 'lake = "./lake"  # default' in out


def test_file_in_working_directory_then_env_then_flag(cli, tmp_path, monkeypatch):
    (tmp_path / "binance-lake.toml").write_text(
        'lake = "data/lake"\nsymbols = ["BTCUSDT", "ETHUSDT"]\nintervals = ["1m", "1h"]\n'
        'base_url = "https://api.binance.us"\nworkers = 3\n')
    file = "binance-lake.toml"
    assert _config(cli) == {"lake": ("data/lake", file), "symbols": (["BTCUSDT", "ETHUSDT"], file),
                            "intervals": (["1m", "1h"], file), "base_url": ("https://api.binance.us", file),
                            "workers": (3, file)}
    monkeypatch.setenv("BINANCE_LAKE", "env/lake")
    monkeypatch.setenv("BINANCE_WORKERS", "5")
    monkeypatch.setenv("BINANCE_SYMBOLS", "BNBUSDT,SOLUSDT")
    got = _config(cli)
    assert got["lake"] == ("env/lake", "env BINANCE_LAKE") and got["workers"] == (5, "env BINANCE_WORKERS")
    assert got["symbols"] == (["BNBUSDT", "SOLUSDT"], "env BINANCE_SYMBOLS")
    assert got["intervals"] == (["1m", "1h"], file)
    assert _config(cli, "--lake", "flag/lake")["lake"] == ("flag/lake", "--lake")


def test_explicit_config_file(cli, tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text('lake = "x"\n')
    assert _config(cli, "--config", str(other))["lake"] == ("x", str(other))
    code, _, err = cli("config", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "missing.toml: no such file" in err


@pytest.mark.parametrize(("text", "message"), [
    ('lake = "x"\nsymbol = ["BTCUSDT"]\n', "unknown key 'symbol'"),
    ("workers = \"8\"\n", "workers must be an integer"),
    ("workers = true\n", "workers must be an integer"),
    ("symbols = 5\n", "symbols must be a list of strings"),
    ("lake = [\"a\"]\n", "lake must be a string"),
    ("lake = \n", "is not valid TOML"),
])
def test_file_mistakes_are_exit_2_naming_the_key(cli, tmp_path, text, message):
    (tmp_path / "binance-lake.toml").write_text(text)
    for args in (("config",), ("status",)):
        code, _, err = cli(*args)
        assert code == 2 and message in err, err


def test_bad_interval_in_the_file_is_exit_2_before_any_request(cli, tmp_path):
    (tmp_path / "binance-lake.toml").write_text('symbols = ["BTCUSDT"]\nintervals = ["1m", "7m"]\n')
    code, _, err = cli("sync", "candles", "--base-url", "http://127.0.0.1:9")
    assert code == 2 and "unsupported interval '7m'" in err


def test_sync_takes_symbols_lake_and_base_url_from_the_file(cli, tmp_path, base_url):
    (tmp_path / "binance-lake.toml").write_text(
        f'lake = "from-file"\nsymbols = ["BTCUSDT", "BTCUSD"]\nbase_url = "{base_url}"\nworkers = 2\n')
    code, out, err = cli("sync", "candles", "--start", "2024-03-01", "--end", "2024-03-01T01:00:00Z")
    assert code == 0, err
    assert "sync candles BTCUSDT: 60 rows" in out and "sync candles BTCUSD: 60 rows" in out
    code, out, _ = cli("status", "--json")
    assert {(c["symbol"], c["rows"]) for c in json.loads(out)["candles"]} == {("BTCUSDT", 60), ("BTCUSD", 60)}
    assert (tmp_path / "from-file" / "curated").is_dir()
    # The flag still wins over the file's symbols.
    code, out, _ = cli("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01T01:00:00Z",
                       "--end", "2024-03-01T02:00:00Z")
    assert code == 0 and out.count("sync candles") == 1
