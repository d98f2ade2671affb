"""`export candles --format parquet`: the file freqtrade's parquet data handler reads
(freqtrade/data/history/datahandlers/parquetdatahandler.py, ``_ohlcv_load``), read back here the
way it reads it."""

from __future__ import annotations

import pandas as pd
import pytest

from binance_lake.cli import main
from binance_lake.export import freqtrade_file_name, freqtrade_pair
from binance_lake.times import parse_time

DAY = ("--start", "2024-03-01", "--end", "2024-03-02")
# freqtrade constants.DEFAULT_DATAFRAME_COLUMNS
DEFAULT_DATAFRAME_COLUMNS = ["date", "open", "high", "low", "close", "volume"]


def freqtrade_ohlcv_load(path) -> pd.DataFrame:
    """ParquetDataHandler._ohlcv_load's steps, verbatim in effect."""
    pairdata = pd.read_parquet(path)
    pairdata.columns = DEFAULT_DATAFRAME_COLUMNS
    pairdata = pairdata.astype(dtype={"open": "float", "high": "float", "low": "float", "close": "float",
                                      "volume": "float"})
    pairdata["date"] = pd.to_datetime(pairdata["date"], unit="ms", utc=True)
    return pairdata


@pytest.fixture
def run(cli):
    return cli


@pytest.fixture
def synced(run):
    code, _, err = run("sync", "candles", "--symbol", "BTCUSDT", *DAY, "--base-url", run.base_url)
    assert code == 0, err
    return run


def test_freqtrade_reads_the_exported_file(synced, emulator, tmp_path):
    datadir = tmp_path / "user_data" / "data" / "binance"
    code, out, err = synced("export", "candles", "--symbol", "BTCUSDT", "--interval", "1h", "--format", "parquet",
                            "--output", str(datadir), *DAY)
    assert code == 0, err
    path = datadir / "BTC_USDT-1h.parquet"
    assert f"24 rows to {path}" in out
    df = freqtrade_ohlcv_load(path)
    truth = emulator.klines("BTCUSDT", "1h", parse_time("2024-03-01"), parse_time("2024-03-02"))
    assert len(df) == 24 and str(df["date"].dtype) == "datetime64[ms, UTC]"
    assert [int(t.timestamp() * 1000) for t in df["date"]] == [r[0] for r in truth]
    for col, i in (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5)):
        assert df[col].tolist() == [float(r[i]) for r in truth], col  # volume: the base asset's


def test_stored_1m_candles_export_as_is(synced, tmp_path):
    code, _, err = synced("export", "candles", "--symbol", "BTCUSDT", "--format", "parquet", "--output",
                          str(tmp_path), *DAY)
    assert code == 0, err
    assert len(freqtrade_ohlcv_load(tmp_path / "BTC_USDT-1m.parquet")) == 1440


@pytest.mark.parametrize(("args", "message"), [
    (("export", "orders", "--symbol", "BTCUSDT", "--format", "parquet", "--output", "d"), "writes candles"),
    (("export", "candles", "--symbol", "BTCUSDT", "--format", "parquet", "--output", "-"), "--output DIR"),
    (("export", "candles", "--symbol", "BTCUSDT", "--format", "parquet", "--output", "d", "--pair", "ETH/USDT"),
     "is not BTCUSDT as BASE/QUOTE"),
    (("export", "candles", "--symbol", "BTCUSDT", "--format", "parquet", "--output", "d", "--interval", "1h",
      "--start", "2024-02-01", "--end", "2024-02-02"), "no candles in the range"),
])
def test_parquet_bad_input_exit_2(synced, tmp_path, args, message):
    args = tuple(str(tmp_path / a) if a == "d" else a for a in args)
    code, _, err = synced(*args)
    assert code == 2 and message in err


def test_pair_and_file_names_follow_freqtrade():
    assert freqtrade_pair("BTCUSDT") == "BTC/USDT" and freqtrade_pair("ETHFDUSD") == "ETH/FDUSD"
    assert freqtrade_pair("XYZABC", "XYZ/ABC") == "XYZ/ABC"
    assert freqtrade_file_name("BTC/USDT", "1M") == "BTC_USDT-1Mo.parquet"  # timeframe_to_file
    assert main(["export", "candles", "--symbol", "X", "--format", "parquet", "--output", "d",
                 "--lake", "/nonexistent-lake"]) == 2
