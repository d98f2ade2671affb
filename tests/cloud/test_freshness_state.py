"""Freshness from the tick's result and the previous tick's state (binance_lake.aws.freshness):
the curated read is skipped only when the state can be trusted, and a lost, damaged or old
state falls back to it, so that it never reads fresher than the lake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from binance_lake.aws import freshness, metrics
from binance_lake.lake import LocalLake
from tests.conftest import NOW_MS

MIN = 60_000
P = "curated/candles/interval={i}/symbol={s}/date=2024-01-01"


class Curated:
    """The curated read (``fold.last_closed_candle``) as a table, counting its calls."""

    def __init__(self, closes: Dict[Tuple[str, str], Optional[int]]) -> None:
        self.closes, self.calls = closes, []  # type: ignore[var-annotated]

    def __call__(self, lake: object, symbol: str, interval: str) -> Optional[int]:
        self.calls.append((symbol, interval))
        return self.closes.get((symbol, interval))


def _tick(lake: LocalLake, curated: Curated, tick: Dict[Tuple[str, str], int], now_ms: int,
          symbols: List[str] = ("BTCUSDT",), intervals: List[str] = ("1m",)) -> freshness.Freshness:
    fresh = freshness.last_closes(lake, list(symbols), list(intervals), tick, now_ms, curated)
    freshness.write_state(lake, fresh, now_ms)
    return fresh


def test_steady_ticks_read_the_state_not_curated(tmp_path: Path) -> None:
    lake, curated = LocalLake(str(tmp_path)), Curated({("BTCUSDT", "1m"): NOW_MS - 10 * MIN})
    first = _tick(lake, curated, {}, NOW_MS)  # no state yet: the curated read
    assert first.closes == {("BTCUSDT", "1m"): NOW_MS - 10 * MIN} and curated.calls == [("BTCUSDT", "1m")]
    second = _tick(lake, curated, {("BTCUSDT", "1m"): NOW_MS - MIN}, NOW_MS + 5 * MIN)
    assert second.closes == {("BTCUSDT", "1m"): NOW_MS - MIN} and second.sources["tick"] == 1
    # A tick that folded only an older day (a gap repair) does not move the figure backwards.
    third = _tick(lake, curated, {("BTCUSDT", "1m"): NOW_MS - 99 * MIN}, NOW_MS + 10 * MIN)
    assert third.closes == {("BTCUSDT", "1m"): NOW_MS - MIN} and len(curated.calls) == 1


@pytest.mark.parametrize("damage", ["lost", "not json", "no closes", "old version", "written an hour ago",
                                    "from the future", "checked a day ago"])
def test_an_untrusted_state_falls_back_to_curated(tmp_path: Path, damage: str) -> None:
    lake = LocalLake(str(tmp_path))
    # The state says fresh, the lake does not (e.g. curated data removed by hand): only the lake counts.
    _tick(lake, Curated({("BTCUSDT", "1m"): NOW_MS - MIN}), {}, NOW_MS)
    state = json.loads(lake.read_bytes(freshness.STATE_KEY))
    later = NOW_MS + 5 * MIN
    if damage == "lost":
        lake.delete(freshness.STATE_KEY)
    elif damage == "not json":
        lake.write_bytes(freshness.STATE_KEY, b"{half")
    elif damage == "no closes":
        lake.write_bytes(freshness.STATE_KEY, json.dumps({**state, "closes": None}).encode())
    elif damage == "old version":
        lake.write_bytes(freshness.STATE_KEY, json.dumps({**state, "version": 0}).encode())
    elif damage == "written an hour ago":
        later = NOW_MS + freshness.STATE_MAX_GAP_MS + 1
    elif damage == "from the future":
        later = NOW_MS - 1
    else:
        later = NOW_MS + freshness.STATE_RECHECK_MS + 1
        lake.write_bytes(freshness.STATE_KEY, json.dumps({**state, "written_at": later - MIN}).encode())
    curated = Curated({("BTCUSDT", "1m"): NOW_MS - 50 * MIN})
    fresh = freshness.last_closes(lake, ["BTCUSDT"], ["1m"], {}, later, curated)
    assert fresh.closes == {("BTCUSDT", "1m"): NOW_MS - 50 * MIN} and curated.calls == [("BTCUSDT", "1m")]
    assert fresh.checked_at == later  # the curated read-back restarts the daily recheck


def test_a_symbol_new_to_the_config_is_read_from_curated_alone(tmp_path: Path) -> None:
    lake = LocalLake(str(tmp_path))
    _tick(lake, Curated({("BTCUSDT", "1m"): NOW_MS - MIN}), {}, NOW_MS)
    curated = Curated({("ETHUSDT", "1m"): NOW_MS - 3 * MIN})
    fresh = _tick(lake, curated, {}, NOW_MS + 5 * MIN, symbols=["BTCUSDT", "ETHUSDT"])
    assert curated.calls == [("ETHUSDT", "1m")]
    assert fresh.closes == {("BTCUSDT", "1m"): NOW_MS - MIN, ("ETHUSDT", "1m"): NOW_MS - 3 * MIN}
    # A symbol with no curated candle stays unknown (None), so it is read from curated again next tick.
    empty = _tick(lake, Curated({}), {}, NOW_MS + 10 * MIN, symbols=["BTCUSDT", "SOLUSDT"])
    assert empty.closes[("SOLUSDT", "1m")] is None
    assert "SOLUSDT/1m" not in json.loads(lake.read_bytes(freshness.STATE_KEY))["closes"]


def test_the_tick_value_is_attributed_only_when_one_interval_was_folded() -> None:
    parts = [P.format(i="1m", s="BTCUSDT"), P.format(i="1m", s="ETHUSDT"), P.format(i="1h", s="ETHUSDT"),
             "curated/orders/symbol=BTCUSDT/date=2024-01-01"]
    closes = {"BTCUSDT": NOW_MS - MIN, "ETHUSDT": NOW_MS - 2 * MIN}
    # fold.TransformResult.last_candle_close is keyed by symbol: ETHUSDT's value could be either interval's.
    assert freshness.tick_closes(parts, closes) == {("BTCUSDT", "1m"): NOW_MS - MIN}


def test_minutes_behind_reads_every_interval_like_1m() -> None:
    hour = 60 * MIN
    close = NOW_MS // hour * hour - 1  # the last hourly candle closed at the top of the hour
    assert freshness.minutes_behind(close, "1h", close + 1 + 59 * MIN) == 0  # not late yet
    assert freshness.minutes_behind(close, "1h", close + 1 + 80 * MIN) == 21
    assert freshness.minutes_behind(close, "1m", close + 1 + 21 * MIN) == 21
    assert freshness.minutes_since(close, close + 1 + 80 * MIN) == 80


def test_report_names_the_stalest_symbol_first_and_the_metric_is_the_largest(tmp_path: Path) -> None:
    closes = {("BTCUSDT", "1m"): NOW_MS - 2 * MIN - 1, ("ETHUSDT", "1m"): NOW_MS - 7 * MIN - 1,
              ("BTCUSDT", "5m"): NOW_MS - 6 * MIN - 1}
    fresh = freshness.Freshness(closes=closes, checked_at=NOW_MS)
    figures = freshness.report(fresh, "1m", NOW_MS)
    assert [(r["symbol"], r["interval"], r["minutes_behind"]) for r in figures["rows"]] == [
        ("ETHUSDT", "1m", 7.0), ("BTCUSDT", "1m", 2.0), ("BTCUSDT", "5m", 2.0)]
    assert figures["minutes_since_last_closed_candle"] == {"ETHUSDT": 7.0, "BTCUSDT": 2.0, "BTCUSDT/5m": 6.0}

    class CloudWatch:
        calls: List[dict] = []

        def put_metric_data(self, **kwargs: object) -> None:
            self.calls.append(kwargs)

    cw = CloudWatch()
    assert metrics.publish_stalest(figures["rows"], cw, NOW_MS) == 7.0
    (call,) = cw.calls
    assert call["MetricData"] == [{"MetricName": "StalestCandleMinutesBehind", "Timestamp": NOW_MS / 1000.0,
                                   "Value": 7.0, "Unit": "None"}]
    missing = freshness.report(freshness.Freshness(closes={("SOLUSDT", "1m"): None, **fresh.closes},
                                                   checked_at=NOW_MS), "1m", NOW_MS)
    assert missing["rows"][0]["symbol"] == "SOLUSDT" and missing["no_candle"] == ["SOLUSDT/1m"]
