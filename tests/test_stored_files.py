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
from pathlib import Path

import pyarrow.compute as pc
import pytest

from binance_lake import layout
from binance_lake.cli import main
from binance_lake.errors import EXIT_ATTENTION, EXIT_STORAGE
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import LocalLake
from binance_lake.schema import CANDLES, ORDERS
from binance_lake.sources.archive import ArchiveFile
from binance_lake.verify import VerifyOptions, exit_code, verify
from tests.helpers import candle_tuples, curated, order_rows
from tests.test_backfill import HEADER_MONTH, NOW, SYMBOL, archive_tree, archive_url, cfg, server  # noqa: F401
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

    # Verify agrees: the same rows are unexplained, kept, and the run needs attention.
    after = verify(lake, ["BTCUSDT"], "1m", dates, VerifyOptions(), tables=[table])
    assert sum(p.extra for p in after.partitions) == explained_by_page and exit_code(after) == EXIT_ATTENTION
    assert (candle_tuples(lake), order_rows(lake)) == before
    # A second rebuild (the page now in quarantine) still keeps them and still says so.
    assert main(["transform", "--rebuild", "--symbol", "BTCUSDT", "--lake", lake.root]) == EXIT_ATTENTION
    assert (candle_tuples(lake), order_rows(lake)) == before
