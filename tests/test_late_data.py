"""Late data lands (issue 17 item 2): minutes Binance answered empty and published later reach
curated on an explicit-range rerun or `gaps --repair`, under a new raw key, and every summary
counts what was really written. Through the CLI against the emulator."""

from __future__ import annotations

import json
import time

import pytest

from binance_lake import layout
from binance_lake.cli import main
from binance_lake.lake import LocalLake
from binance_lake.sources.coverage import exchange_gaps
from binance_lake.times import MS_PER_MINUTE, parse_time
from tests.conftest import API_KEY, API_SECRET, NOW_MS
from tests.helpers import candle_tuples, truth_tuples

MAR1, MAR2 = parse_time("2024-03-01"), parse_time("2024-03-02")
GAP = (MAR1 + 600 * MS_PER_MINUTE, MAR1 + 660 * MS_PER_MINUTE)  # 10:00 .. 11:00, inside the first page
RANGE = ("--start", "2024-03-01", "--end", "2024-03-02")
GAP_ISO = ["2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z"]


@pytest.fixture
def cli(base_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    lake_dir = str(tmp_path / "lake")

    def run(*args: str, as_json: bool = True, binance: bool = True) -> dict:
        code = main([*args, "--lake", lake_dir, *(["--base-url", base_url] if binance else []),
                     *(["--json"] if as_json else [])])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out) if as_json else {"line": out}

    run.lake = LocalLake(lake_dir)
    return run


def _raw(lake: LocalLake) -> list:
    return lake.list_keys("raw/klines")


def _gaps(cli) -> dict:
    return cli("gaps", "--symbol", "BTCUSDT")


def _sync_with_a_gap(cli, emulator) -> dict:
    s = cli("sync", "candles", "--symbol", "BTCUSDT", *RANGE)
    assert s["exchange_gaps"] == [GAP_ISO] and s["rows"] == 1380
    assert exchange_gaps(cli.lake, "BTCUSDT", "1m") == [GAP]
    assert len(candle_tuples(cli.lake)) == 1380
    g = _gaps(cli)
    assert g["gaps"] == [] and g["exchange_gaps"] == [GAP_ISO]  # the defect: "OK" while short
    return s


def _complete(cli, emulator) -> None:
    truth = emulator.klines("BTCUSDT", "1m", MAR1, MAR2)
    assert len(truth) == 1440 and candle_tuples(cli.lake) == truth_tuples("BTCUSDT", truth)
    g = _gaps(cli)
    assert g["gaps"] == [] and g["exchange_gaps"] == [] and cli.lake.list_keys("raw/_gaps") == []


def test_explicit_rerun_lands_late_minutes_under_a_new_raw_key(cli, emulator):
    # Binance publishes 10:00 .. 11:00 a minute (data clock) after the first sync.
    emulator.add_exchange_gap("BTCUSDT", *GAP, until_ms=NOW_MS + MS_PER_MINUTE)
    _sync_with_a_gap(cli, emulator)
    first_keys = _raw(cli.lake)
    emulator.advance(MS_PER_MINUTE)

    s = cli("sync", "candles", "--symbol", "BTCUSDT", *RANGE)
    _complete(cli, emulator)
    # Counted as written: the revision of the first page only; the second page was already stored.
    assert (s["rows_fetched"], s["raw_files"], s["rows"]) == (1440, 1, 1000)
    assert (s["raw_files_already_stored"], s["rows_already_stored"], s["late_candles"]) == (1, 440, 60)
    [new] = sorted(set(_raw(cli.lake)) - set(first_keys))
    assert set(first_keys) <= set(_raw(cli.lake))  # raw is immutable: the first reply is kept
    assert layout.parse_window_name(layout.file_name(new)) == (MAR1, MAR1 + 1000 * MS_PER_MINUTE)
    assert layout.window_revision(layout.file_name(new)) is not None
    assert s["exchange_gaps"] == [] and s["transform"]["rows_written"] == 1440

    # Nothing new: the rerun writes no raw file and says so.
    keys = _raw(cli.lake)
    again = cli("sync", "candles", "--symbol", "BTCUSDT", *RANGE)
    assert (again["raw_files"], again["rows"], again["late_candles"]) == (0, 0, 0)
    assert (again["raw_files_already_stored"], again["rows_already_stored"]) == (2, 1440)
    assert _raw(cli.lake) == keys
    _complete(cli, emulator)
    # Both recovery tools read the revision too: a rebuild and verify keep every candle.
    cli("transform", "--rebuild", "--symbol", "BTCUSDT", binance=False)
    _complete(cli, emulator)
    v = cli("verify", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02", binance=False)
    assert v["summary"]["mismatch"] == 0 and v["summary"]["with_gaps"] == 0 and v["summary"]["ok"] >= 1
    _complete(cli, emulator)


def test_summary_line_counts_written_files_not_skipped_ones(cli, emulator):
    emulator.add_exchange_gap("BTCUSDT", *GAP)
    _sync_with_a_gap(cli, emulator)
    out = cli("sync", "candles", "--symbol", "BTCUSDT", *RANGE, as_json=False)["line"]
    assert out.startswith("sync candles BTCUSDT: 1380 rows fetched, 0 new raw files (0 rows), "
                          "2 raw files already stored (1380 rows) (2024-03-01T00:00:00Z"), out
    emulator.fill_exchange_gap("BTCUSDT", *GAP)
    out = cli("sync", "candles", "--symbol", "BTCUSDT", *RANGE, as_json=False)["line"]
    assert out.startswith("sync candles BTCUSDT: 1440 rows fetched, 1 new raw files (1000 rows), "
                          "1 raw files already stored (440 rows), 60 late candles landed (2024-03-01"), out
    out = cli("gaps", "--symbol", "BTCUSDT", "--repair", as_json=False)["line"]
    assert out.startswith("gaps BTCUSDT: 0 gaps in 1440 candles, exchange gaps 0"), out


def test_gaps_repair_lands_late_minutes_and_narrows_the_record(cli, emulator):
    emulator.add_exchange_gap("BTCUSDT", *GAP)
    _sync_with_a_gap(cli, emulator)
    half = GAP[0] + 30 * MS_PER_MINUTE
    emulator.fill_exchange_gap("BTCUSDT", GAP[0], half)  # the first half is published late

    g = cli("gaps", "--symbol", "BTCUSDT", "--repair")
    assert len(candle_tuples(cli.lake)) == 1410
    r = g["repair"]
    assert (r["exchange_gaps_rechecked"], r["late_candles"], r["raw_files"], r["rows"]) == (1, 30, 1, 30)
    assert g["exchange_gaps"] == [["2024-03-01T10:30:00Z", "2024-03-01T11:00:00Z"]]
    assert g["remaining_gaps"] == []
    assert len(candle_tuples(cli.lake)) == 1410

    # Still empty: asking again writes nothing at all.
    keys, gap_keys = _raw(cli.lake), cli.lake.list_keys("raw/_gaps")
    g = cli("gaps", "--symbol", "BTCUSDT", "--repair")
    assert (g["repair"]["raw_files"], g["repair"]["late_candles"]) == (0, 0)
    assert _raw(cli.lake) == keys and cli.lake.list_keys("raw/_gaps") == gap_keys
    assert cli.lake.list_keys("raw/_pending") == []

    emulator.fill_exchange_gap("BTCUSDT", *GAP)
    g = cli("gaps", "--symbol", "BTCUSDT", "--repair")
    assert g["repair"]["late_candles"] == 30 and g["exchange_gaps"] == []
    _complete(cli, emulator)


def test_gaps_repair_rewrites_a_late_window_whose_key_exists(cli, emulator):
    """The gap is a whole raw window of its own (the reply was empty): its key already exists."""
    emulator.add_exchange_gap("BTCUSDT", *GAP)
    cli("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01T10:00:00Z",
        "--end", "2024-03-01T11:00:00Z")
    [empty] = _raw(cli.lake)
    assert exchange_gaps(cli.lake, "BTCUSDT", "1m") == [GAP]
    emulator.fill_exchange_gap("BTCUSDT", *GAP)
    g = cli("gaps", "--symbol", "BTCUSDT", "--repair", "--recheck-gaps", "all")
    assert g["repair"]["late_candles"] == 60 and g["exchange_gaps"] == []
    keys = _raw(cli.lake)
    assert empty in keys and len(keys) == 2
    assert len(candle_tuples(cli.lake)) == 60


def test_recheck_none_leaves_exchange_gaps_alone(cli, emulator):
    emulator.add_exchange_gap("BTCUSDT", *GAP)
    _sync_with_a_gap(cli, emulator)
    emulator.fill_exchange_gap("BTCUSDT", *GAP)
    g = cli("gaps", "--symbol", "BTCUSDT", "--repair", "--recheck-gaps", "none")
    assert "repair" not in g and g["exchange_gaps"] == [GAP_ISO]


def test_recheck_horizon_counts_from_when_the_gap_was_recorded(cli, emulator):
    from binance_lake.sources.coverage import RECHECK_HORIZON_MS, gaps_to_recheck

    emulator.add_exchange_gap("BTCUSDT", *GAP)
    _sync_with_a_gap(cli, emulator)
    now = int(time.time() * 1000)
    assert gaps_to_recheck(cli.lake, "BTCUSDT", "1m", "recent", now) == [GAP]
    later = now + RECHECK_HORIZON_MS + 60_000
    assert gaps_to_recheck(cli.lake, "BTCUSDT", "1m", "recent", later) == []
    assert gaps_to_recheck(cli.lake, "BTCUSDT", "1m", "all", later) == [GAP]
    assert gaps_to_recheck(cli.lake, "BTCUSDT", "1m", "none", now) == []


def test_layout_revision_names_round_trip():
    name = layout.file_name(layout.candle_raw_key("BTCUSDT", "1m", MAR1, MAR2, revision=NOW_MS))
    assert name == f"{MAR1}-{MAR2}.r{NOW_MS}.json"
    assert layout.parse_window_name(name) == (MAR1, MAR2) and layout.window_revision(name) == NOW_MS
    assert layout.window_revision(f"{MAR1}-{MAR2}.json") is None
    assert layout.parse_window_name(f"{MAR1}-{MAR2}.rX.json") is None


def test_emulator_late_minutes_knob(emulator):
    emulator.add_exchange_gap("BTCUSDT", *GAP, until_ms=NOW_MS + MS_PER_MINUTE)
    assert emulator.klines("BTCUSDT", "1m", *GAP) == []
    emulator.advance(MS_PER_MINUTE)
    assert len(emulator.klines("BTCUSDT", "1m", *GAP)) == 60
    emulator.add_exchange_gap("BTCUSDT", *GAP)
    emulator.fill_exchange_gap("BTCUSDT", GAP[0] + 10 * MS_PER_MINUTE, GAP[0] + 20 * MS_PER_MINUTE)
    opens = [r[0] for r in emulator.klines("BTCUSDT", "1m", *GAP)]
    assert opens == [GAP[0] + i * MS_PER_MINUTE for i in range(10, 20)]


def test_late_minutes_land_on_an_s3_lake(client, emulator):
    """The same path on S3 (moto): create-if-absent, the revision key, narrowing by delete."""
    import boto3
    from moto import mock_aws

    from binance_lake.fold import read_partition
    from binance_lake.jobs import sync
    from binance_lake.lake import S3Lake
    from binance_lake.schema import CANDLES

    emulator.add_exchange_gap("BTCUSDT", *GAP)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="late")
        lake = S3Lake("s3://late/lake", s3)
        sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
        assert exchange_gaps(lake, "BTCUSDT", "1m") == [GAP]
        emulator.fill_exchange_gap("BTCUSDT", *GAP)
        s = sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
        assert (s["raw_files"], s["late_candles"]) == (1, 60)
        assert exchange_gaps(lake, "BTCUSDT", "1m") == [] and lake.list_keys("raw/_pending") == []
        part = read_partition(lake, layout.partition(CANDLES, interval="1m", symbol="BTCUSDT", date="2024-03-01"),
                              CANDLES)
        truth = emulator.klines("BTCUSDT", "1m", MAR1, MAR2)
        assert part.column("candle_open_time").cast("int64").to_pylist() == [r[0] for r in truth]
        assert sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)["raw_files"] == 0


def test_a_run_killed_between_the_revision_and_the_record_update_is_completed_by_a_rerun(
        client, lake, emulator, monkeypatch):
    """Revision stored, gap record not yet narrowed: `gaps` stays honest (curated has the
    candles) and the rerun finishes the job; nothing is lost, at worst one more raw file."""
    from binance_lake.jobs import sync
    from binance_lake.sources.rest import candles as rest_candles

    emulator.add_exchange_gap("BTCUSDT", *GAP)
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
    emulator.fill_exchange_gap("BTCUSDT", *GAP)

    def killed(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(rest_candles, "narrow_exchange_gaps", killed)  # right after the revision is stored
    with pytest.raises(SystemExit):
        sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
    monkeypatch.undo()
    assert exchange_gaps(lake, "BTCUSDT", "1m") == [GAP] and len(lake.list_keys("raw/klines")) == 3
    s = sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
    assert s["late_candles"] == 60 and exchange_gaps(lake, "BTCUSDT", "1m") == []
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1m", MAR1, MAR2))
