"""Coverage: what the lake claims per (symbol, interval), from key names alone (listing, no reads).

REST raw windows, verified archive files (a sidecar's *name* is the claim, written only once
the zip's rows are in curated) and exchange gaps Binance confirmed empty. Watermarks come
from here, never from a state file. No pyarrow (the extractor Lambdas import it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Iterable, List, Optional, Sequence, Tuple

from binance_lake import layout
from binance_lake.lake import Lake
from binance_lake.schema import CANDLES
from binance_lake.times import MS_PER_DAY, date_to_ms, ms_to_iso

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


def missing_ranges(start: int, end: int, present: Sequence[int], step: int) -> List[Tuple[int, int]]:
    """Ranges of [start, end) whose candle open times are not in ``present`` (sorted ms)."""
    out, expect = [], start
    for t in present:
        if t < start or t >= end:
            continue
        if t > expect:
            out.append((expect, t))
        expect = max(expect, t + step)
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
    lake.write_bytes(layout.gap_key(symbol, interval, *gap), json.dumps(body).encode(), if_absent=True)
    log.warning("%s %s: Binance has no candles for %s .. %s (exchange gap recorded)", symbol, interval,
                ms_to_iso(gap[0]), ms_to_iso(gap[1]))
