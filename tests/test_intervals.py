"""Every Binance interval (1s .. 1M): open-time alignment, the partition grain, a sync of each
against the emulator, and the migration of a lake whose 1h+ candles sit in day partitions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_lake import layout, verify
from binance_lake.emulator.candles import INTERVALS_MS, bucket_after, bucket_start
from binance_lake.errors import BadInputError
from binance_lake.jobs import sync
from binance_lake.query import connect, status
from binance_lake.times import (
    INTERVALS,
    candle_opens,
    check_interval,
    close_of,
    count_candles,
    interval_ms,
    ms_to_date,
    ms_to_iso,
    next_open,
    open_ceil,
    open_floor,
    parse_time,
)
from tests.helpers import candle_tuples, truth_tuples

# 2017-08-17 (Binance's first BTCUSDT candle) .. 2030: any instant a lake holds.
INSTANTS = st.integers(min_value=1_502_928_000_000, max_value=1_900_000_000_000)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@settings(max_examples=200, deadline=None)
@given(t=INSTANTS, interval=st.sampled_from(INTERVALS))
def test_every_instant_lies_in_exactly_one_candle(t: int, interval: str) -> None:
    start = open_floor(t, interval)
    assert start <= t < next_open(start, interval) == close_of(start, interval) + 1
    assert open_floor(start, interval) == start and open_ceil(start, interval) == start
    assert open_ceil(t, interval) in (start, next_open(start, interval))
    # The emulator buckets the same way (an independent implementation of Binance's rule).
    step = INTERVALS_MS[interval]
    assert bucket_start(t, step) == start and bucket_after(start, step) == next_open(start, interval)


@settings(max_examples=200, deadline=None)
@given(t=INSTANTS, interval=st.sampled_from(INTERVALS))
def test_alignment_of_each_interval(t: int, interval: str) -> None:
    start, dt = open_floor(t, interval), _utc(open_floor(t, interval))
    if interval == "1M":  # a calendar month: the 1st, 28 to 31 days long
        assert (dt.day, dt.hour, dt.minute, dt.second) == (1, 0, 0, 0)
        assert 28 <= (next_open(start, interval) - start) // 86_400_000 <= 31
    elif interval == "1w":  # Monday 00:00 UTC
        assert dt.weekday() == 0 and (dt.hour, dt.minute) == (0, 0)
    else:  # fixed lengths count from the epoch (3d included)
        assert start % interval_ms(interval) == 0 and next_open(start, interval) - start == interval_ms(interval)


@settings(max_examples=100, deadline=None)
@given(a=INSTANTS, span=st.integers(min_value=0, max_value=400 * 86_400_000),
       interval=st.sampled_from(["1h", "1d", "3d", "1w", "1M"]))
def test_count_candles_is_the_number_of_opens(a: int, span: int, interval: str) -> None:
    opens = list(candle_opens(a, a + span, interval))
    assert count_candles(a, a + span, interval) == len(opens)
    assert all(a <= o < a + span for o in opens) and opens == sorted(set(opens))


def test_weekly_and_monthly_examples_from_the_docs() -> None:
    # The klines doc's example row: a 1w candle opening Monday 2017-07-03, closing 2017-07-09 23:59:59.999.
    assert open_floor(1499040000000 + 3 * 86_400_000, "1w") == 1499040000000
    assert close_of(1499040000000, "1w") == 1499644799999
    feb = parse_time("2024-02-01")  # a leap February: 29 days
    assert ms_to_iso(next_open(feb, "1M")) == "2024-03-01T00:00:00Z"
    assert ms_to_iso(next_open(parse_time("2024-12-01"), "1M")) == "2025-01-01T00:00:00Z"


def test_unknown_interval_names_the_sixteen() -> None:
    assert [check_interval(i) for i in INTERVALS] == list(INTERVALS) and len(INTERVALS) == 16
    with pytest.raises(BadInputError, match=r"use one of 1s, 1m, .* 1w, 1M .*case-sensitive"):
        check_interval("1mo")


@pytest.mark.parametrize("interval, grain, partition", [
    ("1s", "day", "2024-03-05"), ("1m", "day", "2024-03-05"), ("30m", "day", "2024-03-05"),
    ("1h", "month", "2024-03"), ("12h", "month", "2024-03"), ("1d", "month", "2024-03"),
    ("3d", "month", "2024-03"), ("1w", "month", "2024-03"), ("1M", "month", "2024-03"),
])
def test_partition_grain_day_below_1h_month_from_1h(interval: str, grain: str, partition: str) -> None:
    t = parse_time("2024-03-05T13:00:00Z")
    assert layout.grain(interval) == grain and layout.period_of(t, interval) == partition
    path = layout.candle_partition("BTCUSDT", interval, partition)
    assert path == f"curated/candles/interval={interval}/symbol=BTCUSDT/date={partition}"
    assert layout.candle_raw_key("BTCUSDT", interval, t, t + 1).startswith(
        f"raw/klines/interval={interval}/symbol=BTCUSDT/date={partition}/")
    wrong = "2024-03" if grain == "day" else "2024-03-05"
    with pytest.raises(ValueError, match=f"not a {grain} partition"):
        layout.candle_partition("BTCUSDT", interval, wrong)
    # A raw page an older version filed by day folds into the partition of its day.
    assert layout.period_of_value("2024-03-05", interval) == partition
    assert layout.is_old_layout(interval, "2024-03-05") == (grain == "month")


def test_split_by_period_cuts_at_partition_boundaries() -> None:
    lo, hi = parse_time("2024-01-30"), parse_time("2024-03-02")
    assert layout.split_by_period(lo, hi, "1d") == [
        (lo, parse_time("2024-02-01")), (parse_time("2024-02-01"), parse_time("2024-03-01")),
        (parse_time("2024-03-01"), hi)]
    assert len(layout.split_by_period(lo, hi, "1m")) == 32  # one per day
    assert layout.periods_between(lo, hi, "1h") == ["2024-01", "2024-02", "2024-03"]


# -- a sync of every interval against the emulator (now: 2024-03-03T00:00:30Z) ----------------------

@pytest.fixture
def client(make_client):
    """The emulator builds a 1M, 1w or 3d candle from every minute it holds, in pure Python: one
    request can take seconds on a loaded 2-core box, past the suite's 2 s read timeout (seen as a
    flaky ReadTimeout on 1M). Real Binance answers these at once; the timeout is the test's."""
    return make_client(timeout_s=30.0)


RANGES = {  # small ranges crossing a partition boundary; long intervals aggregate many minutes
    "1s": ("2024-03-01T23:50:00Z", "2024-03-02T00:10:00Z"),
    "1m": ("2024-03-01T23:00:00Z", "2024-03-02T01:00:00Z"),
    **{i: ("2024-03-01T12:00:00Z", "2024-03-02T12:00:00Z") for i in ("3m", "5m", "15m", "30m")},
    **{i: ("2024-02-27", "2024-03-02") for i in ("1h", "2h", "4h", "6h", "8h", "12h")},
    "1d": ("2024-01-25", "2024-03-02"),
    "3d": ("2024-01-20", "2024-03-02"),
    "1w": ("2024-01-20", "2024-02-26"),  # the week of 02-26 is still open at the emulator's now
    "1M": ("2024-01-01", "2024-03-01"),
}


@pytest.mark.parametrize("interval", INTERVALS)
def test_sync_every_interval_equals_what_binance_served(client, lake, emulator, interval: str) -> None:
    lo, hi = (parse_time(t) for t in RANGES[interval])
    s = sync.sync_candles(client, lake, "BTCUSDT", interval, start=lo, end=hi)
    truth = emulator.klines("BTCUSDT", interval, lo, hi)
    assert len(truth) == count_candles(lo, hi, interval) > 1  # the emulator serves every candle
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", truth)
    assert s["rows"] == len(truth) and s["transform"]["rows_written"] == len(truth)
    want = layout.periods_between(open_ceil(lo, interval), hi, interval)
    held = sorted(layout.values_of(k)["date"] for k in lake.list_keys("curated/candles") if k.endswith(".parquet"))
    assert held == want and len(held) >= 2  # the range crosses a partition boundary
    assert all((layout.grain(interval) == layout.MONTH) == layout.is_month(v) for v in held)
    (st_,) = status(lake, connect(lake))
    assert (st_.rows, st_.gaps, st_.old_layout) == (len(truth), [], 0)
    days = verify.date_range(hi, start=RANGES[interval][0][:10], end=ms_to_date(hi - 1 + 86_400_000))
    report = verify.verify(lake, ["BTCUSDT"], interval, days, verify.VerifyOptions(), tables=["candles"])
    assert {p.status for p in report.partitions} == {"ok"} and [p.date for p in report.partitions] == want


# -- migration: an older lake with day partitions for 1h+ candles ------------------------------------

FEB27, MAR2 = parse_time("2024-02-27"), parse_time("2024-03-02")


@pytest.fixture
def old_lake(client, lake, emulator, monkeypatch):
    """A 1h lake written as before: raw pages and curated partitions by UTC day."""
    with monkeypatch.context() as m:
        m.setattr(layout, "grain", lambda interval: layout.DAY)
        sync.sync_candles(client, lake, "BTCUSDT", "1h", start=FEB27, end=MAR2)
    days = sorted(layout.values_of(k)["date"] for k in lake.list_keys("curated/candles") if k.endswith(".parquet"))
    assert days == ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    return lake


def _partitions(lake) -> list:
    return sorted(layout.values_of(k)["date"] for k in lake.list_keys("curated/candles") if k.endswith(".parquet"))


def test_status_and_verify_say_what_to_do_with_the_old_layout(old_lake) -> None:
    (st_,) = status(old_lake, connect(old_lake))
    assert st_.old_layout == 4 and "transform --rebuild --symbol BTCUSDT" in st_.as_dict()["action"]
    report = verify.verify(old_lake, ["BTCUSDT"], "1h", ["2024-02-28"], verify.VerifyOptions(), tables=["candles"])
    (part,) = report.partitions
    assert part.status == "old-layout" and "binance-lake transform --rebuild --symbol BTCUSDT" in part.reason
    assert verify.exit_code(report) == 6 and _partitions(old_lake)[0] == "2024-02-27"  # nothing rewritten


def test_rebuild_moves_day_partitions_into_months(old_lake, emulator) -> None:
    truth = truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1h", FEB27, MAR2))
    # A raw page lost since: the rows only the old day partition holds must survive the move.
    lost = next(k for k in old_lake.list_keys("raw/klines") if "date=2024-02-28" in k)
    old_lake.delete(lost)
    result = sync.rebuild(old_lake, ["BTCUSDT"])
    assert _partitions(old_lake) == ["2024-02", "2024-03"]
    assert candle_tuples(old_lake) == truth  # every candle once, none lost
    assert result.migrated == 4 and result.unexplained_rows == 24  # the lost page's day, kept
    (st_,) = status(old_lake, connect(old_lake))
    assert (st_.old_layout, st_.rows) == (0, len(truth))


def test_a_crash_before_the_day_files_go_loses_nothing(old_lake, emulator, monkeypatch) -> None:
    from binance_lake import fold

    truth = truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1h", FEB27, MAR2))

    def crash(name: str) -> None:
        if name == "migrate":
            raise SystemExit("killed")

    with monkeypatch.context() as m:
        m.setattr(fold, "crash_point", crash)
        with pytest.raises(SystemExit):
            sync.rebuild(old_lake, ["BTCUSDT"])
    # The month is durable and the day files are still there: both hold the rows, nothing is lost.
    assert "2024-02" in _partitions(old_lake) and "2024-02-27" in _partitions(old_lake)
    assert set(candle_tuples(old_lake)) == set(truth)
    sync.rebuild(old_lake, ["BTCUSDT"])  # the rerun finishes the move
    assert _partitions(old_lake) == ["2024-02", "2024-03"] and candle_tuples(old_lake) == truth


def test_cli_status_warns_and_transform_rebuild_migrates(old_lake, monkeypatch, capsys) -> None:
    from binance_lake.cli import main

    monkeypatch.chdir(old_lake.root)  # no binance-lake.toml of the developer's working directory
    lake = str(old_lake.root)
    assert main(["status", "--lake", lake]) == 0
    err = capsys.readouterr().err
    assert "warning: BTCUSDT 1h still has day partitions" in err
    assert "run `binance-lake transform --rebuild --symbol BTCUSDT`" in err and "(4 day partitions)" in err
    assert main(["verify", "--lake", lake, "--symbol", "BTCUSDT", "--interval", "1h", "--start", "2024-02-27",
                 "--end", "2024-03-02"]) == 6
    assert "transform --rebuild --symbol BTCUSDT" in capsys.readouterr().out
    assert main(["transform", "--rebuild", "--symbol", "BTCUSDT", "--lake", lake]) == 0
    assert "4 old day partitions moved into their month partitions" in capsys.readouterr().out
    assert _partitions(old_lake) == ["2024-02", "2024-03"]
    assert main(["status", "--lake", lake]) == 0 and "still has day partitions" not in capsys.readouterr().err


def test_docs_table_matches_the_code() -> None:
    """docs/intervals.md's table: the grain and the most rows a partition of each interval holds."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "intervals.md").read_text(encoding="utf-8")
    for interval in INTERVALS:
        if layout.grain(interval) == layout.DAY:
            rows = str(count_candles(*layout.period_bounds("2024-03-05"), interval))
            want = f"| `{interval}` | UTC day (`date=2024-03-05`) | {rows} |"
        else:
            most = max(count_candles(*layout.period_bounds(m), interval)
                       for m in layout.periods_between(parse_time("2023-01-01"), parse_time("2025-01-01"), interval))
            want = f"| `{interval}` | UTC month (`date=2024-03`) | up to {most} |"
        assert want in text
