"""Issue 17 items 3 and 4: every stored file is checked when it is read, and rebuild and verify
derive curated with one function, so they agree on damage.

* A stored archive zip that is damaged in the lake (bytes flipped, truncated, or edited into a
  still-valid zip) is refused on read with a clear error naming it and exit 5, by `transform
  --rebuild`, `verify` and `status`; a `backfill` rerun restores it byte for byte.
* A raw page that does not parse: `transform --rebuild` keeps the curated rows it explained,
  names the page and exits 6, and `verify` says the same.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pytest

from binance_lake import layout
from binance_lake.cli import main
from binance_lake.emulator import archive as fake
from binance_lake.errors import EXIT_ATTENTION, EXIT_STORAGE
from binance_lake.jobs import sync
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import LocalLake
from binance_lake.schema import CANDLES, ORDERS
from binance_lake.sources.archive import ArchiveFile
from binance_lake.times import MS_PER_MINUTE, parse_time
from binance_lake.verify import VerifyOptions, exit_code, verify
from tests.helpers import candle_tuples, curated, order_rows
from tests.test_backfill import (  # noqa: F401  (fixtures: the archive server of the backfill tests)
    HEADER_MONTH,
    NOW,
    SYMBOL,
    archive_tree,
    archive_url,
    cfg,
    emulator,
    server,
)
from tests.test_verify import build_lake

DAMAGED = ArchiveFile(SYMBOL, "1m", HEADER_MONTH)


def _flip(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 16]) + data[mid + 16:]


def _edit(data: bytes) -> bytes:
    """A valid zip whose first candle's high became 99999 (the defect issue 17 found used silently)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        [name] = zf.namelist()
        text = zf.read(name).decode()
    lines = text.splitlines()
    row = 1 if not lines[0][0].isdigit() else 0  # this month has a header row
    cells = lines[row].split(",")
    cells[2] = "99999.00000000"
    lines[row] = ",".join(cells)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, "\n".join(lines) + "\n")
    return out.getvalue()


DAMAGE = {"flipped": _flip, "truncated": lambda data: data[: len(data) // 2], "edited": _edit}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_stored_zip_is_refused_on_read_and_a_backfill_rerun_restores_it(lake, archive_url, capsys, how):  # noqa: F811
    backfill(lake, SYMBOL, None, None, cfg(archive_url), client=None, now_ms=NOW)
    before = candle_tuples(lake)
    good = lake.read_bytes(DAMAGED.key)
    lake.write_bytes(DAMAGED.key, DAMAGE[how](good))
    capsys.readouterr()

    # transform --rebuild: the error names the file and the command that restores it; nothing written.
    assert main(["transform", "--rebuild", "--symbol", SYMBOL, "--lake", lake.root]) == EXIT_STORAGE
    err = capsys.readouterr().err
    assert f"error: stored archive file {DAMAGED.key} is damaged" in err and "Traceback" not in err
    assert f"backfill --symbol {SYMBOL} --interval 1m --start {HEADER_MONTH} --end 2025-01" in err
    assert candle_tuples(lake) == before  # never a 99999 high, never a dropped day

    # verify: the month's days are reported damaged and left as they are.
    args = ["verify", "--symbol", SYMBOL, "--start", "2024-12-30", "--end", "2025-01-02", "--lake", lake.root]
    assert main([*args, "--json"]) == EXIT_STORAGE
    body = json.loads(capsys.readouterr().out)
    by = {p["date"]: p for p in body["partitions"] if p["table"] == "candles"}
    assert by["2024-12-31"]["status"] == "damaged" and DAMAGED.key in by["2024-12-31"]["reason"]
    assert by["2025-01-01"]["status"] == "ok" and body["summary"]["damaged"] == 2
    assert candle_tuples(lake) == before

    # status names it too.
    assert main(["status", "--lake", lake.root]) == EXIT_STORAGE
    assert f"stored archive file {DAMAGED.key} is damaged" in capsys.readouterr().err

    # A plain rerun re-checks the stored files and re-downloads the damaged one.
    assert main(["backfill", "--symbol", SYMBOL, "--start", "2024-11", "--end", "2025-02", "--lake", lake.root,
                 "--archive-url", archive_url, "--no-rest", "--json"]) == 0
    [s] = json.loads(capsys.readouterr().out)["symbols"]
    assert (s["files_restored"], s["files_downloaded"], s["files_up_to_date"]) == (1, 1, 2)
    assert lake.read_bytes(DAMAGED.key) == good  # byte for byte
    assert main(["transform", "--rebuild", "--symbol", SYMBOL, "--lake", lake.root]) == 0
    assert candle_tuples(lake) == before


@pytest.fixture(scope="module")
def rest_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stored-files") / "lake"
    build_lake(root)  # two days of BTCUSDT candles and three days of orders, through the emulator
    return root


def _damage_a_page(lake: LocalLake, table: str) -> str:
    """Overwrite a raw page whose rows are in curated with bytes that do not parse; its key."""
    rows = curated(lake, table)
    counts = pc.value_counts(rows["source_key"]).to_pylist()
    key = max(counts, key=lambda c: c["counts"])["values"]  # the page that explains the most rows
    lake.write_bytes(key, b'{"not": "a page"')
    return key


@pytest.mark.parametrize("table", [CANDLES.name, ORDERS.name])
def test_damaged_raw_page_rebuild_keeps_curated_rows_and_agrees_with_verify(rest_lake, tmp_path, capsys, table):
    shutil.copytree(rest_lake, tmp_path / "lake")
    lake = LocalLake(str(tmp_path / "lake"))
    before = candle_tuples(lake), order_rows(lake)
    key = _damage_a_page(lake, table)
    dates = ["2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03"]

    dry = verify(lake, ["BTCUSDT"], "1m", dates, VerifyOptions(repair=False), tables=[table])
    flagged = [p for p in dry.partitions if p.status == "raw-missing"]
    assert flagged and all(key in p.unusable_raw for p in flagged) and exit_code(dry) == EXIT_ATTENTION
    explained_by_page = sum(p.extra for p in dry.partitions)
    assert explained_by_page > 0

    capsys.readouterr()
    assert main(["transform", "--rebuild", "--symbol", "BTCUSDT", "--lake", lake.root]) == EXIT_ATTENTION
    out, err = capsys.readouterr()
    assert f"raw file {key} does not parse" in err and "Traceback" not in err
    assert f"{explained_by_page} curated rows no readable raw file explains kept" in out
    assert (candle_tuples(lake), order_rows(lake)) == before  # nothing dropped
    assert lake.exists(layout.quarantine_file_keys(key)[0])  # the page itself is kept, in quarantine
    assert main(["status", "--lake", lake.root]) == 0
    assert f"raw file {key} did not parse" in capsys.readouterr().err

    # Verify agrees: the same rows are unexplained, kept, and the run needs attention.
    after = verify(lake, ["BTCUSDT"], "1m", dates, VerifyOptions(), tables=[table])
    assert sum(p.extra for p in after.partitions) == explained_by_page and exit_code(after) == EXIT_ATTENTION
    assert (candle_tuples(lake), order_rows(lake)) == before
    # A second rebuild (the page now in quarantine) still keeps them and still says so.
    assert main(["transform", "--rebuild", "--symbol", "BTCUSDT", "--lake", lake.root]) == EXIT_ATTENTION
    assert (candle_tuples(lake), order_rows(lake)) == before


def test_verify_against_archive_reports_each_minute_and_the_archive_wins(client, lake, emulator, server,  # noqa: F811
                                                                         archive_url, capsys):  # noqa: F811
    day, ten = "2025-02-01", parse_time("2025-02-01T10:00:00Z")
    sync.sync_candles(client, lake, SYMBOL, start=ten, end=ten + 120 * MS_PER_MINUTE)  # 10:00-12:00 from REST
    rest_pages = lake.list_keys(layout.raw_partition(CANDLES.name, SYMBOL, day, "1m"))
    # Binance's settled file for the day differs: one corrected high, one minute it does not have.
    start, end = fake.period_range(day)
    rows = emulator.klines(SYMBOL, "1m", start, end)
    changed, dropped = ten + 30 * MS_PER_MINUTE, ten + 45 * MS_PER_MINUTE
    rest_high = next(r[2] for r in rows if r[0] == changed)
    rows = [[*r[:2], "99999.00000000", *r[3:]] if r[0] == changed else r for r in rows if r[0] != dropped]
    fake.write_file(server.root, SYMBOL, "1m", day, rows)
    args = ["verify", "--symbol", SYMBOL, "--start", day, "--end", "2025-02-03", "--lake", lake.root,
            "--against-archive", "--archive-url", archive_url, "--json"]
    before = sorted(lake.list_keys(""))

    assert main([*args, "--dry-run"]) == EXIT_ATTENTION
    out, err = capsys.readouterr()
    first, second = json.loads(out)["against_archive"]
    assert (first["status"], first["minutes_compared"], first["differing"], first["only_rest"],
            first["only_archive"]) == ("mismatch", 120, 1, 1, 0)
    assert first["differences"] == [{"minute": "2025-02-01T10:30:00Z", "column": "high_price",
                                     "rest": f"{Decimal(rest_high):f}", "archive": "99999.00000000"}]
    assert first["only_rest_minutes"] == ["2025-02-01T10:45:00Z"]
    assert second["status"] == "not-published"  # 2025-02-02's file is not out yet
    assert f"{SYMBOL} 2025-02-01T10:30:00Z high_price: REST {Decimal(rest_high):f}, archive 99999.00000000" in err
    assert sorted(lake.list_keys("")) == before  # a dry run writes nothing

    # Repair: the archive wins the minute it has, REST's extra minute stays, REST's pages stay in raw.
    assert main(args) == 0
    [adopted, _] = json.loads(capsys.readouterr().out)["against_archive"]
    assert adopted["status"] == "adopted"
    got = {t[1]: t for t in candle_tuples(lake)}
    assert got[changed][3] == "99999.00000000" and dropped in got and len(got) == 1440  # the file's whole day
    assert set(rest_pages) <= set(lake.list_keys("raw/klines"))
    assert main([*args, "--dry-run"]) == 0  # settled: curated holds what the archive says
    assert json.loads(capsys.readouterr().out)["against_archive"][0]["status"] == "settled"
