"""Coverage: what the lake claims per (symbol, interval), from key names alone (listing, no reads).

REST raw windows, verified archive files (a sidecar's *name* is the claim, written only once
the zip's rows are in curated) and exchange gaps Binance confirmed empty. Watermarks come
from here, never from a state file. No pyarrow (the extractor Lambdas import it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from binance_lake import layout
from binance_lake.errors import BadInputError
from binance_lake.lake import Lake
from binance_lake.schema import CANDLES
from binance_lake.times import (
    MS_PER_DAY,
    date_to_ms,
    interval_ms,
    is_fixed,
    ms_to_iso,
    next_open,
    open_ceil,
    parse_time,
)

log = logging.getLogger(__name__)


def _raw_windows(lake: Lake, symbol: str, interval: str, newest: bool) -> Optional[Tuple[int, int]]:
    base = layout.raw_prefix(CANDLES, interval=interval, symbol=symbol)
    dates = lake.list_children(base)
    for date_dir in reversed(dates) if newest else dates:
        windows = [w for w in map(layout.parse_window_name, lake.list_children(layout.child(base, date_dir))) if w]
        if windows:
            return (max(windows, key=lambda w: w[1]) if newest else min(windows))
    return None


def candles_watermark(lake: Lake, symbol: str, interval: str) -> Optional[int]:
    """End (exclusive) of the newest raw candle window, from the lake's listing alone."""
    newest = _raw_windows(lake, symbol, interval, newest=True)
    return newest[1] if newest else None


def raw_coverage(lake: Lake, symbol: str, interval: str) -> Optional[Tuple[int, int]]:
    """[start of the oldest, end of the newest] raw candle window: the range the lake claims."""
    oldest, newest = _raw_windows(lake, symbol, interval, False), _raw_windows(lake, symbol, interval, True)
    return (oldest[0], newest[1]) if oldest and newest else None


def exchange_gaps(lake: Lake, symbol: str, interval: str) -> List[Tuple[int, int]]:
    """Ranges Binance confirmed empty (maintenance), merged, from the gap records' names."""
    prefix = layout.gaps_prefix(symbol, interval)
    windows = sorted(w for w in map(layout.parse_window_name, lake.list_children(prefix)) if w)
    return merge_ranges(windows)


def merge_ranges(ranges: Iterable[Tuple[int, int]]) -> List[Tuple[int, int]]:
    merged: List[Tuple[int, int]] = []
    for s, e in sorted(ranges):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def missing_ranges(start: int, end: int, present: Sequence[int], interval: str) -> List[Tuple[int, int]]:
    """Ranges of [start, end) whose candle open times are not in ``present`` (sorted ms).

    The first candle expected is the first that opens at or after ``start``: a window cut at a
    partition boundary need not start on a candle (a 1w candle opens on a Monday, a month on any day).
    """
    out, expect = [], open_ceil(start, interval)
    step = interval_ms(interval) if is_fixed(interval) else 0  # fixed lengths: no call per candle (1m path)
    for t in present:
        if t < start or t >= end:
            continue
        if t > expect:
            out.append((expect, t))
        expect = max(expect, t + step if step else next_open(t, interval))
    if expect < end:
        out.append((expect, end))
    return out


# -- public archive (data.binance.vision) coverage --------------------------------------
# The backfill (binance_lake.sources.archive + binance_lake.fold) stores each verified zip under
# raw/archive/klines/interval=1m/symbol=X/<monthly|daily>/<X>-1m-<period>.zip and writes the
# sidecar <name>.zip.json only once the zip's rows are in curated: a sidecar's *name* is
# the coverage claim, so watermarks stay listing-only (no reads, no pyarrow).

def archive_period_range(period: str) -> Tuple[int, int]:
    """``2024-01`` -> that month, ``2024-01-05`` -> that day, as [start, end) ms UTC."""
    if len(period) == 7:
        year, month = int(period[:4]), int(period[5:7])
        nxt = f"{year + month // 12:04d}-{month % 12 + 1:02d}"
        return date_to_ms(f"{period}-01"), date_to_ms(f"{nxt}-01")
    start = date_to_ms(period)
    return start, start + MS_PER_DAY


def archive_periods(lake: Lake, symbol: str, interval: str) -> List[str]:
    """Periods (``2024-01``, ``2024-01-05``) of archive files verified and curated (sidecar names)."""
    names = (n for kind in layout.ARCHIVE_KINDS for n in lake.list_children(layout.archive_dir(symbol, interval, kind)))
    return [p for p in (layout.archive_period_of_sidecar(symbol, interval, n) for n in names) if p is not None]


def archive_coverage(lake: Lake, symbol: str, interval: str) -> List[Tuple[int, int]]:
    """Merged ranges of archive files already verified and curated."""
    return merge_ranges(archive_period_range(p) for p in archive_periods(lake, symbol, interval))


def archive_watermark(lake: Lake, symbol: str, interval: str) -> Optional[int]:
    covered = archive_coverage(lake, symbol, interval)
    return covered[-1][1] if covered else None


def max_or_none(*values: Optional[int]) -> Optional[int]:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def record_exchange_gap(lake: Lake, symbol: str, interval: str, gap: Tuple[int, int], source: str) -> None:
    body = {"start": ms_to_iso(gap[0]), "end": ms_to_iso(gap[1]), "source_key": source,
            "recorded_at": ms_to_iso(int(time.time() * 1000))}
    if not lake.write_bytes(layout.gap_key(symbol, interval, *gap), json.dumps(body).encode(), if_absent=True):
        return  # recorded before (a rerun): nothing new to say
    log.warning("%s %s: Binance has no candles for %s .. %s (exchange gap recorded)", symbol, interval,
                ms_to_iso(gap[0]), ms_to_iso(gap[1]))


# -- late data: exchange gaps are not final ------------------------------------------------------
# Minutes can be missing and appear later: github.com/binance/binance-public-data issue 181 (data
# of 2022-09-14 published on 2022-09-28; "usually updated with a delay of 1 to 7 days") and 262
# (missed klines, later fixed), while maintenance windows stay empty for good (issue 169: "when
# trading is suspended, the kline will not be generated"). So `gaps --repair` re-asks a recorded
# exchange gap while its record is younger than this horizon, counted from when the lake first
# saw the minutes empty: a month is twice the longest delay reported, and past it a gap is treated
# as final, so a symbol with years of maintenance windows does not cost a request per gap on every
# repair. ``--recheck-gaps all`` re-asks every one. An explicit-range `sync candles` fetches every
# page of its range anyway, so it takes late candles in any recorded gap of the range, whatever
# its age.
RECHECK_HORIZON_MS = 30 * MS_PER_DAY
RECHECK_POLICIES = ("recent", "all", "none")


@dataclass
class GapRecord:
    """One exchange-gap record: the minutes [start, end) Binance answered empty, and its key."""

    start: int
    end: int
    key: str


def gap_records(lake: Lake, symbol: str, interval: str) -> List[GapRecord]:
    """Every exchange-gap record of (symbol, interval), unmerged, from the listing alone."""
    prefix = layout.gaps_prefix(symbol, interval)
    out = []
    for name in lake.list_children(prefix):
        window = layout.parse_window_name(name)
        if window:
            out.append(GapRecord(window[0], window[1], layout.child(prefix, name)))
    return sorted(out, key=lambda r: (r.start, r.end))


def _read_record(lake: Lake, key: str) -> Dict[str, Any]:
    try:
        body = json.loads(lake.read_bytes(key))
    except (KeyError, ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def gaps_to_recheck(lake: Lake, symbol: str, interval: str, policy: str = "recent",
                    now_ms: Optional[int] = None) -> List[Tuple[int, int]]:
    """The recorded exchange gaps `gaps --repair` asks Binance about again (merged ranges).

    ``recent``: records younger than :data:`RECHECK_HORIZON_MS` (a record without a readable
    ``recorded_at`` counts as young: asking once more is cheap, missing data is not);
    ``all``: every record; ``none``: no record.
    """
    if policy not in RECHECK_POLICIES:
        raise ValueError(f"unknown recheck policy {policy!r}; known: {RECHECK_POLICIES}")
    if policy == "none":
        return []
    records = gap_records(lake, symbol, interval)
    if policy == "recent":
        # recorded_at is wall-clock time (record_exchange_gap), so the horizon is measured on it too.
        now = int(time.time() * 1000) if now_ms is None else now_ms
        records = [r for r in records if now - _recorded_at(lake, r.key, now) < RECHECK_HORIZON_MS]
    return merge_ranges((r.start, r.end) for r in records)


def _recorded_at(lake: Lake, key: str, default: int) -> int:
    text = _read_record(lake, key).get("recorded_at")
    try:
        return parse_time(str(text), "recorded_at") if text else default
    except BadInputError:  # a damaged record: treat as young (re-asking it is one request)
        return default


def narrow_exchange_gaps(lake: Lake, records: Sequence[GapRecord], present: Sequence[int], interval: str,
                         source: str) -> Tuple[List[GapRecord], int]:
    """Minutes Binance now answered with candles are no longer an exchange gap.

    Each record holding some of ``present`` (open times of a reply stored under ``source``) is
    replaced by the pieces still missing, written first, then the record is deleted: a crash in
    between leaves an overlapping record (merged when listed), never a lost one. A piece keeps
    the record's fields (``recorded_at``: the horizon counts from the first sighting,
    ``source_key``: the archive file that produced it) and names the reply that narrowed it.
    Returns (the records left, candles that filled a recorded gap).
    """
    kept: List[GapRecord] = []
    filled = 0
    for rec in records:
        inside = [t for t in present if rec.start <= t < rec.end]
        if not inside:
            kept.append(rec)
            continue
        filled += len(inside)
        body = _read_record(lake, rec.key)
        for s, e in missing_ranges(rec.start, rec.end, inside, interval):
            piece = {**body, "start": ms_to_iso(s), "end": ms_to_iso(e), "narrowed_by": source}
            key = layout.gap_key(layout.symbol_of(rec.key), layout.values_of(rec.key)["interval"], s, e)
            lake.write_bytes(key, json.dumps(piece).encode(), if_absent=True)
            kept.append(GapRecord(s, e, key))
        lake.delete(rec.key)
        log.warning("%s: %d candle(s) Binance had answered empty now exist (late data, stored in %s)",
                    rec.key, len(inside), source)
    return sorted(kept, key=lambda r: (r.start, r.end)), filled
