"""Rebuild-and-verify: corruption is named exactly, repaired to what a fresh rebuild gives,
a dry run touches nothing, exchange gaps are not gaps, and the transform lock is honoured."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Dict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from binance_lake import fold, layout
from binance_lake.cli import main
from binance_lake.emulator import Emulator
from binance_lake.jobs import sync
from binance_lake.lake import CAS_MARK, LocalLake
from binance_lake.layout import parse_window_name
from binance_lake.lock import lake_lock
from binance_lake.schema import CANDLES, DECIMAL_SCALE, ORDERS
from binance_lake.sources.rest.client import BinanceClient, ClientConfig
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_iso, parse_time
from binance_lake.verify import EXIT_UNREPAIRED, PartitionRef, VerifyOptions, exit_code, verify
from tests.conftest import API_KEY, API_SECRET, NOW_MS

MAR1, MAR2 = parse_time("2024-03-01"), parse_time("2024-03-02")
DATES = ["2024-03-01", "2024-03-02"]
OUTAGE = (MAR1 + 600 * MS_PER_MINUTE, MAR1 + 660 * MS_PER_MINUTE)  # 10:00-11:00 on March 1
DAY1 = layout.partition(CANDLES, interval="1m", symbol="BTCUSDT", date="2024-03-01")
DAY2 = layout.partition(CANDLES, interval="1m", symbol="BTCUSDT", date="2024-03-02")
TICK = Decimal(1).scaleb(-DECIMAL_SCALE)  # the smallest change the column can hold


def build_lake(root: Path) -> None:
    """Two days of BTCUSDT candles (one exchange outage) and three days of orders, via the emulator."""
    emu = Emulator(now_ms=NOW_MS, seed=1)
    emu.add_api_key(API_KEY, API_SECRET)
    emu.add_exchange_gap("BTCUSDT", *OUTAGE)
    emu.generate_orders("BTCUSDT", 400, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=4)
    with emu.serve() as url:
        client = BinanceClient(ClientConfig(base_url=url, api_key=API_KEY, api_secret=API_SECRET, timeout_s=2.0,
                                            backoff_base_s=0.01, backoff_cap_s=0.05))
        lake = LocalLake(str(root))
        sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2 + MS_PER_DAY)
        sync.sync_orders(client, lake, "BTCUSDT")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify-pristine") / "lake"
    build_lake(root)
    return root


@pytest.fixture
def lake(pristine, tmp_path) -> LocalLake:
    shutil.copytree(pristine, tmp_path / "lake")
    return LocalLake(str(tmp_path / "lake"))


def read(lake: LocalLake, partition: str) -> pa.Table:
    return pq.read_table(io.BytesIO(lake.read_bytes(f"{partition}/part-0.parquet")))


def write(lake: LocalLake, partition: str, t: pa.Table) -> None:
    fold.write_partition(lake, partition, t, lake.version_of(layout.part_key(partition)))


def snapshot(root: Path) -> Dict[str, bytes]:
    # Not the empty flock files of local conditional writes (``.<name>.cas``, which listings skip):
    # the lock a dry run holds while it compares leaves one. Before the tick took one lease per
    # run (issue 21), the sync that filled this lake had already left the same ones.
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(CAS_MARK)}


def fresh_rebuild(pristine: Path, tmp: Path) -> LocalLake:
    """The lake as ``transform --rebuild`` leaves it: curated from raw alone."""
    shutil.copytree(pristine, tmp)
    lake = LocalLake(str(tmp))
    shutil.rmtree(tmp / "curated")
    fold.rebuild_candles(lake, "BTCUSDT")
    fold.rebuild_orders(lake, "BTCUSDT")
    return lake


def set_value(t: pa.Table, row: int, column: str, value) -> pa.Table:
    values = t[column].to_pylist()
    values[row] = value
    i = t.schema.get_field_index(column)
    return t.set_column(i, t.schema.field(i), pa.array(values, t[column].type))


def test_healthy_lake_is_ok_and_the_report_is_stored(lake):
    report = verify(lake, ["BTCUSDT"], "1m", DATES, VerifyOptions())
    s = report.summary()
    assert (s["partitions"], s["ok"], s["unrepaired"], s["with_gaps"]) == (4, 4, 0, 0)
    assert [p.rows_curated for p in report.partitions[:2]] == [1440 - 60, 1440]  # the outage is not ours
    assert report.partitions[0].gaps == [] and exit_code(report) == 0
    assert report.report_key.startswith("curated/_verify/") and report.report_key.endswith(f"-{report.run_id}.json")
    stored = json.loads(lake.read_bytes(report.report_key))
    assert stored["summary"] == s and stored["partitions"][0]["partition"] == DAY1


def test_corruption_is_named_exactly_and_repaired_to_a_fresh_rebuild(lake, pristine, tmp_path):
    day = read(lake, DAY1)
    dropped = [day["candle_open_time"][i].as_py() for i in (5, 6, 700)]
    corrupt = day.filter(pc.invert(pc.is_in(day["candle_open_time"], pa.array(dropped, day["candle_open_time"].type))))
    changed_at = corrupt["candle_open_time"][100].as_py()
    corrupt = set_value(corrupt, 100, "close_price", corrupt["close_price"][100].as_py() + TICK)
    # A foreign row: a candle inside the exchange outage, which no raw file holds.
    foreign = set_value(corrupt.slice(0, 1), 0, "candle_open_time", OUTAGE[0] + 5 * MS_PER_MINUTE)
    foreign = set_value(foreign, 0, "candle_close_time", OUTAGE[0] + 6 * MS_PER_MINUTE - 1)
    write(lake, DAY1, pa.concat_tables([corrupt, foreign]))
    orders_day = layout.partition(ORDERS, symbol="BTCUSDT", date="2024-03-02")
    orders = read(lake, orders_day)
    order_id = orders["order_id"][3].as_py()
    write(lake, orders_day, set_value(orders, 3, "executed_qty", orders["executed_qty"][3].as_py() + TICK))

    report = verify(lake, ["BTCUSDT"], "1m", DATES, VerifyOptions())
    by = {p.partition: p for p in report.partitions}
    p = by[DAY1]
    assert (p.status, p.missing, p.changed, p.extra, p.repaired) == ("raw-missing", 3, 1, 1, True)
    assert p.missing_keys == [_iso(t) for t in dropped]
    assert p.changed_keys == [{"key": _iso(changed_at), "columns": ["close_price"]}]
    assert p.extra_keys == ["2024-03-01T10:05:00Z"] and p.gaps == []
    o = by[orders_day]
    assert (o.status, o.changed, o.missing, o.extra) == ("repaired", 1, 0, 0)
    assert o.changed_keys == [{"key": order_id, "columns": ["executed_qty"]}]
    assert by[DAY2].status == "ok" and exit_code(report) == EXIT_UNREPAIRED  # an unexplained row wants a human

    rebuilt = fresh_rebuild(pristine, tmp_path / "rebuilt")
    assert read(lake, orders_day).equals(read(rebuilt, orders_day))
    kept = read(lake, DAY1)  # the unexplained row is kept, everything else is what raw says
    assert kept.filter(pc.not_equal(kept["candle_open_time"], foreign["candle_open_time"][0])).equals(
        read(rebuilt, DAY1))
    assert kept.num_rows == read(rebuilt, DAY1).num_rows + 1

    moved = verify(lake, ["BTCUSDT"], "1m", DATES[:1], VerifyOptions(quarantine_unexplained=True),
                   tables=["candles"])
    [q] = moved.partitions
    assert q.status == "raw-missing" and q.quarantined.startswith("quarantine/candles/interval=1m/")
    assert read(lake, DAY1).equals(read(rebuilt, DAY1))
    [row] = json.loads(lake.read_bytes(q.quarantined))["rows"]
    assert row["row"]["candle_open_time"].startswith("2024-03-01 10:05:00")
    again = verify(lake, ["BTCUSDT"], "1m", DATES, VerifyOptions())
    assert again.summary()["ok"] == 4 and exit_code(again) == 0


def _iso(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_dry_run_changes_nothing_byte_for_byte(lake):
    day = read(lake, DAY2)
    write(lake, DAY2, day.slice(10))
    (Path(lake.root) / DAY1 / "part-0.parquet").write_bytes(b"not parquet")
    before = snapshot(Path(lake.root))
    report = verify(lake, ["BTCUSDT"], "1m", DATES, VerifyOptions(repair=False))
    assert snapshot(Path(lake.root)) == before
    by = {p.partition: p for p in report.partitions}
    assert (by[DAY2].status, by[DAY2].missing, by[DAY2].repaired) == ("mismatch", 10, False)
    assert by[DAY1].status == "mismatch" and by[DAY1].curated_unreadable and by[DAY1].missing == 1380
    assert report.report_key is None and exit_code(report) == EXIT_UNREPAIRED
    fixed = verify(lake, ["BTCUSDT"], "1m", DATES, VerifyOptions())
    assert [p.status for p in fixed.partitions[:2]] == ["repaired", "repaired"]
    assert lake.exists(f"quarantine/{DAY1[len('curated/'):]}/verify-{fixed.run_id}-part-0.parquet")


def test_exchange_gap_is_not_a_gap_but_a_hole_in_both_is(lake):
    # Lose the first raw page of March 2 and its curated rows: minutes missing in both.
    raw_dir = "raw/klines/interval=1m/symbol=BTCUSDT/date=2024-03-02"
    first = sorted(lake.list_keys(raw_dir))[0]
    lo, hi = parse_window_name(first.rsplit("/", 1)[1])
    assert lo == MAR2 and hi < MAR2 + MS_PER_DAY  # the day's first page, not all of it
    lake.delete(first)
    day = read(lake, DAY2)
    write(lake, DAY2, day.filter(pc.greater_equal(day["candle_open_time"].cast(pa.int64()), hi)))
    report = verify(lake, ["BTCUSDT"], "1m", DATES, VerifyOptions(), tables=["candles"])
    one, two = report.partitions
    assert (one.status, one.gaps, one.gap_minutes) == ("ok", [], 0)  # 10:00-11:00 is a recorded exchange gap
    assert (two.status, two.gaps, two.gap_minutes) == ("gaps", [[ms_to_iso(lo), ms_to_iso(hi)]],
                                                       (hi - lo) // MS_PER_MINUTE)
    assert two.missing == two.extra == 0 and exit_code(report) == 0  # nothing to repair: `gaps --repair` refetches


def test_verify_waits_for_the_transform_lock_and_never_interleaves(lake):
    write(lake, DAY2, read(lake, DAY2).slice(1))
    part = Path(lake.root) / DAY2 / "part-0.parquet"
    held = part.read_bytes()
    out = {}
    with lake_lock(lake, "candles", "BTCUSDT"):
        worker = threading.Thread(target=lambda: out.update(r=verify(
            lake, ["BTCUSDT"], "1m", DATES[1:], VerifyOptions(lock_wait_s=30), tables=["candles"])))
        worker.start()
        time.sleep(0.6)
        assert worker.is_alive() and part.read_bytes() == held  # waiting, not writing
    worker.join(30)
    [p] = out["r"].partitions
    assert (p.status, p.missing) == ("repaired", 1) and read(lake, DAY2).num_rows == 1440


def test_a_lock_held_too_long_is_reported_not_bypassed(lake):
    write(lake, DAY2, read(lake, DAY2).slice(1))
    before = snapshot(Path(lake.root) / "curated" / "candles")
    with lake_lock(lake, "candles", "BTCUSDT"):
        report = verify(lake, ["BTCUSDT"], "1m", DATES[1:], VerifyOptions(lock_wait_s=0.2), tables=["candles"])
    [p] = report.partitions
    assert p.status == "locked" and "held by another run" in p.reason
    assert snapshot(Path(lake.root) / "curated" / "candles") == before and exit_code(report) == EXIT_UNREPAIRED


def test_cli_verify_summary_json_and_exit_codes(lake, capsys):
    write(lake, DAY2, read(lake, DAY2).slice(2))
    args = ["verify", "--lake", lake.root, "--symbol", "btcusdt", "--start", "2024-03-01", "--end", "2024-03-03"]
    assert main([*args, "--dry-run"]) == EXIT_UNREPAIRED
    out = capsys.readouterr().out
    assert out.startswith("verify 2024-03-01..2024-03-02 (dry-run, 1 symbols): 4 partitions, 3 ok, 0 repaired, "
                          "1 mismatched") and "rows 2 missing" in out
    assert main([*args, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["summary"]["repaired"] == 1 and body["partitions"][1]["missing"] == 2
    assert lake.exists(body["report_key"])
    assert main([*args[:-4], "--start", "2024-03-03", "--end", "2024-03-01"]) == 2
    assert "--end is exclusive" in capsys.readouterr().err


def test_partition_ref_paths_follow_the_layout():
    assert PartitionRef("candles", "BTCUSDT", "1m", "2024-03-01").path == DAY1
    assert PartitionRef("orders", "BTCUSDT", "", "2024-03-01").path == "curated/orders/symbol=BTCUSDT/date=2024-03-01"


def test_verify_never_hands_a_trades_partition_to_the_orders_rule() -> None:
    """Merging issue 19 put ``trades`` into the Glue verify's tables: each trades day would have been
    re-derived with the orders rule. Verify re-derives candles and orders only; trades are checked
    against their orders (binance_lake.reconcile)."""
    from binance_lake.errors import BadInputError
    from binance_lake.schema import REDERIVED_TABLES
    from binance_lake.verify import plan

    assert {r.table for r in plan(["BTCUSDT"], "1m", ["2024-03-01"])} == set(REDERIVED_TABLES)
    with pytest.raises(BadInputError, match="trades"):
        plan(["BTCUSDT"], "1m", ["2024-03-01"], ("candles", "trades"))


def test_archive_dates_lie_the_publication_horizon_behind_the_verified_days():
    """The daily Glue verify compares with the archive only days whose files had time to appear."""
    from binance_lake.verify import archive_dates, date_range

    run = parse_time("2025-02-04T01:30:00Z")
    assert date_range(run, 1) == ["2025-02-03"]
    assert archive_dates(run, 1, 2) == ["2025-02-01"]  # the deployed horizon: 49.5 h after the day closed
    assert archive_dates(run, 2, 1) == ["2025-02-01", "2025-02-02"]
    assert archive_dates(run, 1, 2, "2024-05-01", "2024-05-03") == ["2024-05-01", "2024-05-02"]  # as asked
