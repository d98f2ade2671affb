"""Backfill from the public archive: a local archive server built from the emulator's ground
truth (monthly + daily zips, .CHECKSUM files, a header row, a month in µs), then REST."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Iterator, List

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from binance_lake import fold, layout
from binance_lake.cli import main
from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as fake
from binance_lake.jobs import sync
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import LocalLake
from binance_lake.schema import CANDLES
from binance_lake.sources.archive import ArchiveConfig
from binance_lake.sources.coverage import exchange_gaps
from binance_lake.times import MS_PER_MINUTE, parse_time
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import candle_tuples, truth_tuples

SYMBOL = "ETHUSDT"
NOW = parse_time("2025-02-03T06:00:30Z")
LISTED = parse_time("2024-11-15T10:03:00Z")
TODAY = parse_time("2025-02-03")
GAP = (parse_time("2024-12-10T03:00:00Z"), parse_time("2024-12-10T03:17:00Z"))  # exchange maintenance
HEADER_MONTH, MICROS_MONTH = "2024-12", "2025-01"
PUBLISHED = ["2024-11", HEADER_MONTH, MICROS_MONTH, "2025-02-01"]  # 2025-02-02 is not published yet
LAST_CLOSED_END = parse_time("2025-02-03T06:00:00Z")


@pytest.fixture
def emulator() -> Emulator:  # overrides conftest's: a clock after the archive's switch to µs
    emu = Emulator(now_ms=NOW, seed=1)
    emu.add_api_key(API_KEY, API_SECRET)
    emu.add_symbol(SYMBOL, listed_at_ms=LISTED)
    emu.add_exchange_gap(SYMBOL, *GAP)
    return emu


@pytest.fixture(scope="module")
def archive_tree(tmp_path_factory) -> Path:
    """Built once from the ground truth; each test serves its own copy (some mutate it)."""
    root = tmp_path_factory.mktemp("archive")
    emu = Emulator(now_ms=NOW, seed=1)
    emu.add_symbol(SYMBOL, listed_at_ms=LISTED)
    emu.add_exchange_gap(SYMBOL, *GAP)
    for period in PUBLISHED:
        start, end = fake.period_range(period)
        fake.write_file(root, SYMBOL, "1m", period, emu.klines(SYMBOL, "1m", start, end),
                        header=period == HEADER_MONTH)
    return root


@pytest.fixture
def server(tmp_path: Path, archive_tree: Path) -> fake.ArchiveServer:
    root = tmp_path / "archive"
    shutil.copytree(archive_tree, root)
    return fake.ArchiveServer(root)


@pytest.fixture
def archive_url(server: fake.ArchiveServer) -> Iterator[str]:
    with server.serve() as url:
        yield url


def cfg(url: str) -> ArchiveConfig:
    return ArchiveConfig(base_url=url, workers=3, backoff_s=0.0, timeout_s=5)


def partitions(lake: LocalLake, dates: List[str]) -> pa.Table:
    """Curated rows of these dates without the lineage columns (which say where rows came from)."""
    parts = [pq.read_table(io.BytesIO(lake.read_bytes(
        f"{layout.partition(CANDLES, interval='1m', symbol=SYMBOL, date=d)}/part-0.parquet"))) for d in dates]
    return pa.concat_tables(parts).drop_columns(["ingested_at", "source_key"])


def truth(emulator: Emulator, start: int = LISTED, end: int = LAST_CLOSED_END) -> List[tuple]:
    return truth_tuples(SYMBOL, emulator.klines(SYMBOL, "1m", start, end))


def test_archive_then_rest_equals_sync_and_has_no_boundary_duplicate(client, lake, emulator, archive_url, tmp_path):
    r = backfill(lake, SYMBOL, None, None, cfg(archive_url), client)
    s = r.summary()
    assert s["files_curated"] == 4 and s["files_failed"] == 0
    assert s["archive_end"] == "2025-02-02T00:00:00Z"
    assert s["rest_ranges"] == [["2025-02-02T00:00:00Z", "2025-02-03T06:00:00Z"]]
    # Everything from the listing to the last closed candle, once, exactly as Binance serves it.
    got = candle_tuples(lake)
    assert got == truth(emulator)
    assert len({t[1] for t in got}) == len(got)
    # Same schema and values as `sync candles` for the same minutes: the header month, the
    # ms -> µs switch at 2025-01-01 and the archive/REST boundary day.
    rest_lake = LocalLake(str(tmp_path / "rest-lake"))
    dates = ["2024-12-31", "2025-01-01", "2025-02-01"]
    for d in dates:
        sync.sync_candles(client, rest_lake, SYMBOL, start=parse_time(d), end=parse_time(d) + 1440 * MS_PER_MINUTE)
    archived, synced = partitions(lake, dates), partitions(rest_lake, dates)
    assert archived.schema == synced.schema and archived.num_rows == 3 * 1440
    assert archived.equals(synced)
    # Lineage: archive rows name their zip, REST rows their raw window.
    keys = {k for k in pq.read_table(io.BytesIO(lake.read_bytes(
        "curated/candles/interval=1m/symbol=ETHUSDT/date=2025-02-01/part-0.parquet")))["source_key"].to_pylist()}
    assert keys == {"raw/archive/klines/interval=1m/symbol=ETHUSDT/daily/ETHUSDT-1m-2025-02-01.zip"}


def test_next_sync_continues_after_the_archive(client, lake, emulator, archive_url):
    backfill(lake, SYMBOL, None, None, cfg(archive_url), client=None, now_ms=NOW)
    s = sync.sync_candles(client, lake, SYMBOL)  # no --start: the watermark sees the archive
    assert s["start"] == "2025-02-02T00:00:00Z"  # not 24 h ago (2025-02-02T06:00)
    assert candle_tuples(lake) == truth(emulator)


def test_checksum_failures_are_retried_reported_and_never_stored(client, lake, emulator, server, archive_url):
    dec = fake.archive_path(SYMBOL, "1m", HEADER_MONTH)
    feb1 = fake.archive_path(SYMBOL, "1m", "2025-02-01")
    server.corrupt = {f"/{dec}": 1, f"/{feb1}": 99}  # one bad transfer; one file broken for good
    s = backfill(lake, SYMBOL, None, None, cfg(archive_url), client).summary()
    assert server.requests[f"/{dec}"] == 2  # retried, then verified and used
    assert server.requests[f"/{feb1}"] == 3  # every attempt failed verification
    assert [f["file"] for f in s["failed"]] == ["ETHUSDT-1m-2025-02-01.zip"]
    assert "does not match" in s["failed"][0]["reason"] or "!=" in s["failed"][0]["reason"]
    assert not [k for k in lake.list_keys("raw/archive") if "2025-02-01" in k]  # never entered the lake
    sources = {k for k in _sources(lake) if "2025-02-01.zip" in k}
    assert not sources
    assert s["rest_ranges"][0] == ["2025-02-01T00:00:00Z", "2025-02-03T06:00:00Z"]  # REST filled the day
    assert candle_tuples(lake) == truth(emulator)


def test_resume_skips_verified_files_and_refetches_a_replaced_one(lake, emulator, server, archive_url,
                                                                   monkeypatch):
    # Interrupted after two files are curated: the third one raises mid-way.
    real, calls = fold.fold_archive_file, []

    def flaky(*args, **kwargs):
        calls.append(args[1].period)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("binance_lake.jobs.backfill.fold_archive_file", flaky)
    with pytest.raises(KeyboardInterrupt):
        backfill(lake, SYMBOL, None, None, ArchiveConfig(base_url=archive_url, workers=1, backoff_s=0), now_ms=NOW)
    monkeypatch.setattr("binance_lake.jobs.backfill.fold_archive_file", real)
    first = server.downloads()
    assert first >= 3  # (a 4th may have been in flight)
    r = backfill(lake, SYMBOL, None, None, cfg(archive_url), now_ms=NOW)
    # Verified zips are never fetched twice; the third was stored before the interruption.
    assert server.downloads() == 4 and {n for p, n in server.requests.items() if p.endswith(".zip")} == {1}
    by_period = {f.period: f for f in r.files}
    assert by_period["2024-11"].status == by_period["2024-12"].status == "up-to-date"
    assert by_period[MICROS_MONTH].status == "curated" and not by_period[MICROS_MONTH].downloaded
    assert candle_tuples(lake) == truth(emulator, end=parse_time("2025-02-02"))
    # Binance re-publishes January with one corrected candle: only that file is fetched again.
    start, end = fake.period_range(MICROS_MONTH)
    rows = emulator.klines(SYMBOL, "1m", start, end)
    rows[100] = [*rows[100][:5], "999.00000000", *rows[100][6:]]  # base volume corrected
    fake.write_file(server.root, SYMBOL, "1m", MICROS_MONTH, rows)
    s = backfill(lake, SYMBOL, None, None, cfg(archive_url), now_ms=NOW).summary()
    assert (s["files_downloaded"], s["files_curated"], s["files_up_to_date"]) == (1, 1, 3)
    assert server.downloads() == 5
    [row] = [t for t in candle_tuples(lake) if t[1] == rows[100][0]]
    assert row[6] == "999.00000000"  # (pair, open time, o, h, l, c, base volume, ...)
    sidecar = json.loads(lake.read_bytes(
        f"raw/archive/klines/interval=1m/symbol={SYMBOL}/monthly/{SYMBOL}-1m-{MICROS_MONTH}.zip.json"))
    published = (server.root / (fake.archive_path(SYMBOL, "1m", MICROS_MONTH) + ".CHECKSUM")).read_text().split()[0]
    assert sidecar["published_checksum"] == sidecar["sha256"] == published


def test_exchange_gaps_in_archive_months_are_recorded(lake, archive_url):
    backfill(lake, SYMBOL, None, None, cfg(archive_url), now_ms=NOW)
    # Only the maintenance window; the minutes before the listing are not a gap.
    assert exchange_gaps(lake, SYMBOL, "1m") == [GAP]
    [record] = lake.list_keys("raw/_gaps")
    assert json.loads(lake.read_bytes(record))["source_key"].endswith(f"{SYMBOL}-1m-{HEADER_MONTH}.zip")


def test_cli_backfill_archive_only(tmp_path, archive_url, capsys):
    lake_dir = str(tmp_path / "cli-lake")
    code = main(["backfill", "--symbol", SYMBOL, "--start", "2024-11", "--end", "2025-01", "--lake", lake_dir,
                 "--archive-url", archive_url, "--no-rest", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [s] = summary["symbols"]
    assert code == 0 and s["files_curated"] == 2 and s["archive_end"] == "2025-01-01T00:00:00Z"
    assert s["rows"] == len(candle_tuples(LocalLake(lake_dir))) == (parse_time("2025-01-01") - LISTED) // 60_000 - 17


def _sources(lake: LocalLake) -> set:
    keys = [k for k in lake.list_keys("curated/candles") if k.endswith(".parquet")]
    return {s for k in keys for s in pq.read_table(io.BytesIO(lake.read_bytes(k)))["source_key"].to_pylist()}


def test_rebuilding_a_boundary_day_keeps_the_archive_rows(client, lake, emulator, archive_url):
    """A corrupted partition of a day that both the archive and REST fed is rebuilt from both."""
    backfill(lake, SYMBOL, None, None, cfg(archive_url), client=None, now_ms=NOW)
    # A REST window inside an archive day, as a scheduled tick or a repair could write.
    sync.sync_candles(client, lake, SYMBOL, start=parse_time("2025-02-01T12:00:00Z"),
                      end=parse_time("2025-02-01T13:00:00Z"))
    part = f"{layout.partition(CANDLES, interval='1m', symbol=SYMBOL, date='2025-02-01')}/part-0.parquet"
    lake.write_bytes(part, b"PAR1 torn")
    sync.sync_candles(client, lake, SYMBOL, start=parse_time("2025-02-01T13:00:00Z"),
                      end=parse_time("2025-02-01T13:05:00Z"))  # its transform finds the torn file
    day = parse_time("2025-02-01")
    assert [t for t in candle_tuples(lake) if day <= t[1] < day + 1440 * MS_PER_MINUTE] == truth(
        emulator, day, day + 1440 * MS_PER_MINUTE)


def test_transform_rebuild_restores_archive_days_offline(lake, archive_url, capsys, server):
    """An archive-only day whose curated file was torn is rebuilt from the stored zip; no network."""
    backfill(lake, SYMBOL, None, None, cfg(archive_url), client=None, now_ms=NOW)
    before = candle_tuples(lake)
    part = f"{layout.partition(CANDLES, interval='1m', symbol=SYMBOL, date='2024-12-15')}/part-0.parquet"
    lake.write_bytes(part, b"torn")
    served = sum(server.requests.values())
    code = main(["transform", "--rebuild", "--symbol", SYMBOL, "--lake", lake.root])
    assert code == 0 and "warning" not in capsys.readouterr().err
    assert candle_tuples(lake) == before
    assert sum(server.requests.values()) == served  # rebuilt from the lake alone
