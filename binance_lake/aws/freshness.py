"""Freshness of every configured symbol and interval, from the tick's own result (issue 14, lever 8).

The transform knows the newest close it just curated for every symbol it folded; for the
others, the previous tick's figures are kept in one small state object written here
(``curated/_state/freshness.json``), so a steady tick reads one object instead of listing and
reading a curated partition per symbol (2 requests x symbols).

Correctness rests on one invariant: a close in the state was curated, and curated candles are
never removed by the pipeline (folds and repairs only add or rewrite closed candles), so
``max(state, tick)`` is never newer than the lake: a wrong state can only read *staler*, never
falsely fresh. Anything the invariant does not cover falls back to the curated read
(``fold.last_closed_candle``, the pre-lever path):

* the state object is missing, unreadable, of another version, written in the future, or older
  than ``STATE_MAX_GAP_MS`` (the transform did not run for a while: someone may have worked on
  the lake by hand meanwhile);
* its curated read-back is older than ``STATE_RECHECK_MS`` (once a day every figure is read from
  curated again, which bounds what a hand deletion of curated data could hide);
* a (symbol, interval) the state does not hold, or whose tick value is ambiguous (the fold's
  ``last_candle_close`` is keyed by symbol only: when one tick folded several intervals of a
  symbol, its value cannot be attributed to one of them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from binance_lake import layout
from binance_lake.lake import Lake
from binance_lake.schema import CANDLES
from binance_lake.times import interval_ms

log = logging.getLogger(__name__)

STATE_KEY = layout.FRESHNESS_STATE_KEY
STATE_VERSION = 1
# The transform runs every 5 minutes: a state written over an hour ago means ticks were missed.
STATE_MAX_GAP_MS = 60 * 60 * 1000
STATE_RECHECK_MS = 24 * 60 * 60 * 1000

Key = Tuple[str, str]  # (symbol, interval)
CuratedRead = Callable[[Lake, str, str], Optional[int]]


@dataclass
class Freshness:
    """Newest curated close (ms) per configured (symbol, interval); None: no curated candle."""

    closes: Dict[Key, Optional[int]]
    checked_at: int  # when every figure was last read back from curated
    sources: Dict[str, int] = field(default_factory=dict)  # how many figures came from tick/state/curated


def _key_name(symbol: str, interval: str) -> str:
    return f"{symbol}/{interval}"


def read_state(lake: Lake, now_ms: int) -> Optional[Dict[str, Any]]:
    """The previous tick's state, or None when it cannot be trusted (see the module docstring)."""
    try:
        state = json.loads(lake.read_bytes(STATE_KEY))
    except KeyError:
        return None
    except ValueError:
        log.warning("%s is not JSON; reading freshness from curated", STATE_KEY)
        return None
    try:
        written, checked = int(state["written_at"]), int(state["checked_at"])
        closes = {str(k): int(v) for k, v in state["closes"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("%s has an unexpected shape; reading freshness from curated", STATE_KEY)
        return None
    if state.get("version") != STATE_VERSION or not checked <= written <= now_ms:
        return None
    if now_ms - written > STATE_MAX_GAP_MS or now_ms - checked > STATE_RECHECK_MS:
        return None
    return {"checked_at": checked, "closes": closes}


def write_state(lake: Lake, fresh: Freshness, now_ms: int) -> None:
    closes = {_key_name(s, i): v for (s, i), v in sorted(fresh.closes.items()) if v is not None}
    body = {"version": STATE_VERSION, "written_at": now_ms, "checked_at": fresh.checked_at, "closes": closes}
    lake.write_bytes(STATE_KEY, json.dumps(body, sort_keys=True).encode())


def tick_closes(partitions: Sequence[str], last_candle_close: Dict[str, int]) -> Dict[Key, int]:
    """The tick's newest close per (symbol, interval), where the fold result attributes it to one."""
    intervals: Dict[str, Set[str]] = {}
    for partition in partitions:
        values = layout.values_of(partition)
        if partition.startswith(layout.partition_prefix(CANDLES) + "/") and "interval" in values and "symbol" in values:
            intervals.setdefault(values["symbol"], set()).add(values["interval"])
    return {(symbol, next(iter(ivs))): last_candle_close[symbol] for symbol, ivs in intervals.items()
            if len(ivs) == 1 and symbol in last_candle_close}


def _newest(*values: Optional[int]) -> Optional[int]:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def last_closes(lake: Lake, symbols: Sequence[str], intervals: Sequence[str], tick: Dict[Key, int],
                now_ms: int, curated_read: Optional[CuratedRead] = None) -> Freshness:
    """Newest curated close of every configured (symbol, interval): tick result + previous state,
    the curated read where those cannot be trusted."""
    if curated_read is None:
        from binance_lake.fold import last_closed_candle  # pyarrow: the transform bundle

        curated_read = last_closed_candle

    state = read_state(lake, now_ms)
    stored = state["closes"] if state else {}
    fresh = Freshness(closes={}, checked_at=state["checked_at"] if state else now_ms,
                      sources={"tick": 0, "state": 0, "curated": 0})
    for interval in intervals:
        for symbol in symbols:
            key = (symbol, interval)
            before = stored.get(_key_name(symbol, interval))
            if before is None:
                fresh.closes[key] = _newest(curated_read(lake, symbol, interval), tick.get(key))
                fresh.sources["curated"] += 1
            else:
                fresh.closes[key] = _newest(before, tick.get(key))
                fresh.sources["tick" if key in tick else "state"] += 1
    return fresh


def minutes_since(close_ms: int, now_ms: int) -> float:
    """Minutes since the candle closed (``close_ms`` is the candle's last millisecond)."""
    return round(max(0, now_ms - (close_ms + 1)) / 60000.0, 2)


def minutes_behind(close_ms: int, interval: str, now_ms: int) -> float:
    """Minutes since the last closed candle, less the interval's own length beyond one minute,
    so that every interval reads like 1m (0-1 when current) and one threshold fits all of them:
    a 1h symbol 59 minutes after its last close is not late."""
    late_ms = now_ms - (close_ms + 1) - (interval_ms(interval) - 60000)
    return round(max(0, late_ms) / 60000.0, 2)


def report(fresh: Freshness, primary: str, now_ms: int) -> Dict[str, Any]:
    """Per-symbol figures (stalest first) for the log line and the transform's summary."""
    rows: List[Dict[str, Any]] = []
    for (symbol, interval), close in fresh.closes.items():
        row: Dict[str, Any] = {"symbol": symbol, "interval": interval, "last_close_ms": close}
        if close is not None:
            row["minutes_since_close"] = minutes_since(close, now_ms)
            row["minutes_behind"] = minutes_behind(close, interval, now_ms)
        rows.append(row)
    rows.sort(key=lambda r: (-r.get("minutes_behind", float("inf")), r["symbol"], r["interval"]))
    since = {(s if i == primary else _key_name(s, i)): r["minutes_since_close"]
             for r in rows if "minutes_since_close" in r for s, i in [(r["symbol"], r["interval"])]}
    return {"rows": rows, "minutes_since_last_closed_candle": since,
            "no_candle": [_key_name(r["symbol"], r["interval"]) for r in rows if r["last_close_ms"] is None]}
