"""The emulator serves the public archive (data.binance.vision's layout) from the ground truth
/klines serves, so `backfill --emulator` runs offline with checksums; with ``any_symbol`` it
answers any well-formed symbol from its deterministic generator."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from binance_lake.cli import main
from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as A
from binance_lake.jobs.backfill import backfill
from binance_lake.sources.archive import ArchiveConfig
from binance_lake.times import parse_time
from tests.helpers import candle_tuples, truth_tuples

MONTH = "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip"


def get(emu: Emulator, path: str) -> tuple:
    r = emu.handle("GET", path, {})
    return r.status, r.body


def test_zip_and_checksum_agree_and_hold_the_klines(emulator):
    status, body = get(emulator, MONTH)
    assert status == 200
    c_status, line = get(emulator, MONTH + ".CHECKSUM")
    assert c_status == 200
    assert line.decode() == f"{hashlib.sha256(body).hexdigest()}  BTCUSDT-1m-2024-01.zip\n"  # sha256sum format
    rows = zipfile.ZipFile(io.BytesIO(body)).read("BTCUSDT-1m-2024-01.csv").decode().splitlines()
    lo, hi = A.period_range("2024-01")
    truth = emulator.klines("BTCUSDT", "1m", lo, hi)
    assert len(rows) == 31 * 1440 and rows[0].split(",") == [str(v) for v in truth[0]]
    # The archive is not the API: no weight spent.
    assert emulator.used_weight() == 0


def test_publication_follows_binance_and_unknown_paths_are_404(emulator):
    # Clock 2024-03-03T00:00:30Z. A month appears on the first Monday after it (2024-03-04 for
    # February), a day on the next day.
    assert get(emulator, "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip")[0] == 404
    assert get(emulator, "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-02.zip")[0] == 200
    assert get(emulator, "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-03-03.zip")[0] == 404
    assert A.published_at_ms("2024-02") == parse_time("2024-03-04")
    for path in ("/data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2024-01-05.zip",  # not a symbol of this one
                 "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-05.zip",  # a day under monthly/
                 "/data/spot/daily/klines/BTCUSDT/2d/BTCUSDT-2d-2024-01-05.zip",  # an interval Binance has not
                 "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2016-01.zip",  # before the listing
                 "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-13.zip"):
        assert get(emulator, path)[0] == 404, path


def test_a_2025_file_is_in_microseconds():
    emu = Emulator(now_ms=parse_time("2025-01-03T00:00:00Z"))
    _, body = get(emu, "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-01.zip")
    first = zipfile.ZipFile(io.BytesIO(body)).read("BTCUSDT-1h-2025-01-01.csv").decode().split("\n")[0].split(",")
    assert first[0] == "1735689600000000" and first[6] == "1735693199999999"  # the README's example row


def test_any_symbol_is_generated_and_a_malformed_one_is_refused():
    emu = Emulator(any_symbol=True)
    r = emu.handle("GET", "/api/v3/exchangeInfo?symbol=SOLBTC", {})
    info = json.loads(r.body)["symbols"][0]
    assert (info["baseAsset"], info["quoteAsset"]) == ("SOL", "BTC")
    a = emu.handle("GET", "/api/v3/klines?symbol=SOLBTC&interval=1h&limit=3", {}).body
    assert a == Emulator(any_symbol=True).handle("GET", "/api/v3/klines?symbol=SOLBTC&interval=1h&limit=3", {}).body
    for bad in ("NOPE", "btcusdt", "BTC-USDT"):
        r = emu.handle("GET", f"/api/v3/klines?symbol={bad}&interval=1m", {})
        assert (r.status, json.loads(r.body)["code"]) == (400, -1121), bad
    # Off by default: tests keep Binance's answer for a symbol nobody added.
    assert Emulator().handle("GET", "/api/v3/klines?symbol=SOLBTC&interval=1m", {}).status == 400
    with pytest.raises(KeyError, match="BTCUSDT, BTCUSD"):
        Emulator().klines("SOLBTC", "1m", 0, 1)


def test_backfill_from_the_emulator_archive_then_rest_equals_the_truth(emulator, base_url, client, lake):
    emulator.set_now(parse_time("2024-03-05T06:00:30Z"))
    emulator.add_symbol("ETHUSDT", listed_at_ms=parse_time("2024-02-25T10:03:00Z"))
    cfg = ArchiveConfig(base_url=base_url, workers=4, backoff_s=0.0, timeout_s=5)
    s = backfill(lake, "ETHUSDT", None, None, cfg, client).summary()
    # February as a monthly file (out on Monday 2024-03-04), March's closed days as daily files,
    # today from REST: one ground truth, no duplicate at the seams.
    assert s["files_curated"] == 1 + 4 and s["files_failed"] == 0
    assert s["archive_end"] == "2024-03-05T00:00:00Z"
    assert s["rest_ranges"] == [["2024-03-05T00:00:00Z", "2024-03-05T06:00:00Z"]] and s["rest_rows"] == 360
    end = parse_time("2024-03-05T06:00:00Z")
    assert candle_tuples(lake) == truth_tuples("ETHUSDT", emulator.klines("ETHUSDT", "1m", 0, end))
    sidecar = json.loads(lake.read_bytes(
        "raw/archive/klines/interval=1m/symbol=ETHUSDT/monthly/ETHUSDT-1m-2024-02.zip.json"))
    assert sidecar["sha256"] == hashlib.sha256(emulator.archive_file("ETHUSDT", "1m", "2024-02")).hexdigest()


def test_backfill_emulator_cli_runs_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BINANCE_ARCHIVE_URL", raising=False)
    lake_dir = tmp_path / "lake"
    code = main(["backfill", "--emulator", "--symbol", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-03",
                 "--no-rest", "--lake", str(lake_dir), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    s = json.loads(out)["symbols"][0]
    assert (s["rows"], s["files_curated"], s["files_failed"]) == (2880, 2, 0)
    from binance_lake.lake import LocalLake

    truth = Emulator(any_symbol=True).klines("ETHUSDT", "1m", parse_time("2024-01-01"), parse_time("2024-01-03"))
    assert candle_tuples(LocalLake(str(lake_dir))) == truth_tuples("ETHUSDT", truth)
