"""REST candles: Binance klines -> immutable raw JSON pages in the lake. No pyarrow here (it
runs in a small Lambda); the fold turns raw into curated Parquet.

Raw layout: :mod:`binance_lake.layout` (the only module that builds or parses a key).

A candle window only ever covers closed candles, so its key is deterministic and a
rerun finds the file already there (``if_absent``), unless the rerun's reply holds candles
in minutes the lake recorded as an exchange gap: then the reply lands under a revision key
(late data, issue 17). The pending marker is written
*before* the raw file: a crash in between leaves a marker for nothing (harmless),
never a raw file the transform would not see.

Watermarks come from the data, never from a state file: candles continue from the end
of the newest raw window; orders from the history cursor (the last id of contiguous
orderId paging) in the curated index and in history pages not yet transformed. The
index is derived from raw: lost, the next sync re-pages the history (no loss, upserts).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Optional, Tuple

from binance_lake import layout
from binance_lake.crash import crash_point
from binance_lake.errors import BadInputError
from binance_lake.lake import Lake
from binance_lake.schema import CANDLES
from binance_lake.sources.coverage import (
    GapRecord,
    archive_watermark,
    candles_watermark,
    gap_records,
    max_or_none,
    merge_ranges,
    missing_ranges,
    narrow_exchange_gaps,
    record_exchange_gap,
)
from binance_lake.sources.rest.client import BinanceClient
from binance_lake.sources.rest.raw import (
    DEFAULT_LOOKBACK_MS,
    PAGE_LIMIT,
    TRADING,
    ExtractResult,
    Progress,
    envelope,
    mark_pending,
    raw_body,
    store_raw,
)
from binance_lake.times import (
    MS_PER_DAY,
    day_start,
    interval_ms,
    is_fixed,
    ms_to_iso,
    next_open,
    open_ceil,
    open_floor,
    span_of,
    to_ms,
)

log = logging.getLogger(__name__)


# -- candles ------------------------------------------------------------------------


def candle_pages(start: int, end: int, interval: str, limit: int = PAGE_LIMIT) -> List[Tuple[int, int]]:
    """Split [start, end) into request windows of at most ``limit`` candles (months vary in length)."""
    if is_fixed(interval):
        span = interval_ms(interval) * limit
        return [(s, min(s + span, end)) for s in range(start, end, span)]
    out, s = [], start
    while s < end:
        e = min(span_of(s, limit, interval), end)
        out.append((s, e))
        s = e
    return out


def split_by_day(start: int, end: int) -> List[Tuple[int, int]]:
    """[start, end) cut at UTC midnights (day-partitioned intervals: :func:`layout.split_by_period`)."""
    out, s = [], start
    while s < end:
        e = min(day_start(s) + MS_PER_DAY, end)
        out.append((s, e))
        s = e
    return out


@dataclass
class CandleRange:
    start: int
    end: int
    note: str = ""




def resolve_candle_range(client: BinanceClient, lake: Lake, symbol: str, interval: str,
                         start: Optional[int], end: Optional[int], now_ms: int,
                         symbol_status: str = TRADING, hint: Optional[str] = None) -> CandleRange:
    """Decide [start, end) of closed candles to fetch; see the README for the defaults.

    A symbol that is not TRADING (BREAK, HALT, END_OF_DAY: enums.md "Symbol status") prints
    no candles, so its silence after its last candle is not an exchange outage: the range
    stops at that candle, and an empty lake takes the 24 hours before it.
    """
    asked_start = start is not None
    if start is not None and end is not None and start >= end:
        raise BadInputError(f"--start {ms_to_iso(start)} is not before --end {ms_to_iso(end)}; "
                            "--start is inclusive and --end exclusive")
    last_closed_end = open_floor(now_ms, interval)  # candles opening before this are closed
    note = ""
    tail_end = last_closed_end
    if symbol_status != TRADING:
        last = last_candle_ms(client, symbol, interval)
        tail_end = min(tail_end, next_open(last, interval)) if last is not None else -1
        note = (f"{symbol} is {symbol_status} (not trading) on Binance: "
                + (f"its last candle opened at {ms_to_iso(last)}; nothing after it is an exchange gap"
                   if last is not None else "it has no candles"))
    if start is None:
        # The public-archive backfill covers whole days without REST raw windows.
        mark = lake_watermark(lake, symbol, interval, now_ms, hint)
        anchor = last_closed_end if tail_end < 0 else tail_end
        start = mark if mark is not None else open_floor(anchor - DEFAULT_LOOKBACK_MS, interval)
        how = "continuing from the lake's watermark" if mark is not None else (
            "empty lake: last 24 hours" + ("" if symbol_status == TRADING else " before its last candle"))
        note = f"{how}; {note}" if note else how
    else:
        start = open_ceil(start, interval)  # round up to a candle boundary
        listed = first_candle_ms(client, symbol, interval)
        if listed is None:
            raise BadInputError(f"{symbol} has no {interval} candles at all on Binance (symbol status "
                                f"{symbol_status}); nothing to sync")
        if end is not None and end <= listed:
            raise BadInputError(f"{symbol} has no {interval} candles before {ms_to_iso(listed)} (its first candle); "
                                "the requested range ends before that")
        if start < listed:
            note = f"{symbol} starts at {ms_to_iso(listed)}; earlier minutes skipped"
            start = listed
    stop = last_closed_end if end is None else min(end, last_closed_end)
    stop = min(stop, max(tail_end, 0))
    if asked_start and start >= last_closed_end:  # a range wholly in the future: nothing to do is an error
        raise BadInputError(f"--start {ms_to_iso(start)} is in the future or its candle is still open "
                            f"(Binance server time {ms_to_iso(now_ms)})")
    return CandleRange(start, max(stop, start), note)


def lake_watermark(lake: Lake, symbol: str, interval: str, now_ms: int, hint: Optional[str] = None
                   ) -> Optional[int]:
    """Where the lake's candles end: the newer of the REST raw windows and the archive files.

    Archive files cover whole UTC days that have ended (Binance publishes a day's file after
    it), so a REST watermark inside today is newer than any archive file and the archive is not
    listed (issue 14: two LISTs per symbol a tick saved). Were an archive claim ever newer, the
    tick would only re-fetch minutes the lake holds: raw pages are immutable and the fold keeps
    one row per candle, so nothing is lost or duplicated.

    ``hint`` (issue 21): the newest raw key the previous tick recorded for this symbol. If it is a
    window of this symbol inside today and the lake still holds it (one HEAD, a GET-priced request,
    instead of the two LISTs below, 0.005 USD per 1,000 each), its end is the watermark. A hint is
    never trusted blindly: a key the lake does not hold falls back to the listing. A stale hint
    (another run stored newer windows since) only makes the tick ask again for minutes the lake
    holds: the same safe direction as above.
    """
    hinted = hinted_watermark(lake, symbol, interval, hint)
    if hinted is not None and hinted >= day_start(now_ms):
        return hinted
    rest = candles_watermark(lake, symbol, interval)
    if rest is not None and rest >= day_start(now_ms):
        return rest
    return max_or_none(rest, archive_watermark(lake, symbol, interval))


def hinted_watermark(lake: Lake, symbol: str, interval: str, hint: Optional[str]) -> Optional[int]:
    """End of the hinted raw window if ``hint`` names a REST raw window of (symbol, interval) that
    the lake holds; None otherwise."""
    base = layout.raw_prefix(CANDLES, interval=interval, symbol=symbol)
    if not hint or not hint.startswith(base.rstrip("/") + "/") or ".." in hint.split("/"):
        return None
    window = layout.parse_window_name(hint.rsplit("/", 1)[-1])
    if window is None or not lake.exists(hint):
        return None
    return window[1]


def first_candle_ms(client: BinanceClient, symbol: str, interval: str) -> Optional[int]:
    rows = client.klines(symbol, interval, 0, limit=1)  # oldest first from startTime=0: the listing
    return to_ms(rows[0][0]) if rows else None


def last_candle_ms(client: BinanceClient, symbol: str, interval: str) -> Optional[int]:
    # Without startTime/endTime /klines returns the most recent candles (rest-api.md
    # "Kline/Candlestick data": "If startTime and endTime are not sent, the most recent klines are returned").
    rows = client.klines(symbol, interval, None, limit=1)
    return to_ms(rows[-1][0]) if rows else None


def sync_candles(client: BinanceClient, lake: Lake, symbol: str, interval: str = "1m",
                 start: Optional[int] = None, end: Optional[int] = None, workers: int = 4,
                 progress: Optional[Progress] = None, hint: Optional[str] = None) -> ExtractResult:
    """Fetch every closed candle in [start, end) into raw files; idempotent and resumable.

    ``hint``: the raw key of the newest window a previous run recorded (see :func:`lake_watermark`).

    An explicit range (``start`` given) is fetched whole even where raw already holds it, so a
    rerun also asks again for the minutes Binance answered empty: candles that now fill a
    recorded exchange gap land under a new raw key (see :func:`commit_candle_page`). A run from
    the watermark only ever fetches new windows, and does not look at the gap records.
    """
    info = client.symbol_info(symbol)  # unknown symbol -> clear error before anything is written
    status = str(info.get("status") or TRADING)
    now_ms = client.server_time()
    rng = resolve_candle_range(client, lake, symbol, interval, start, end, now_ms, status, hint)
    result = ExtractResult(CANDLES.name, symbol, start=rng.start, end=rng.end, note=rng.note,
                           symbol_status=status, rows_fetched=0)
    pages = candle_pages(rng.start, rng.end, interval)
    book = GapBook(lake, symbol, interval) if start is not None else None

    def fetch(page: Tuple[int, int]) -> List[PreparedRaw]:
        crash_point("fetch")
        rows, body = client.klines_reply(symbol, interval, page[0], page[1] - 1, limit=PAGE_LIMIT)
        return prepare_candle_page(client, lake, symbol, interval, page[0], page[1], now_ms, rows, body=body)

    # Pages are fetched, encoded and marked pending concurrently, but their raw files are
    # stored strictly in order, so a run killed at any point leaves a prefix of the range
    # in raw and the watermark (newest raw end) never jumps over a page that was not
    # stored. (Markers may run ahead: a marker without its raw file is the in-flight case
    # the transform already waits for.)
    for done, prepared in enumerate(_ordered(fetch, pages, max(1, workers)), 1):
        for c in commit_candle_page(lake, symbol, interval, prepared, book):
            count_committed(result, c)
        if progress:
            progress(done, len(pages))
    result.exchange_gaps = merge_ranges(result.exchange_gaps)
    return result


def count_committed(result: ExtractResult, c: Committed) -> None:
    """Count a window as written only if a raw file was created for it (issue 17: a skipped
    create-if-absent used to be counted as rows fetched *into* raw)."""
    result.rows_fetched = (result.rows_fetched or 0) + c.rows
    result.newest_key = c.key  # windows are committed in page order: the last one is the newest
    result.exchange_gaps.extend(c.gaps)
    if c.written:
        result.raw_keys.append(c.key)
        result.rows += c.rows
        result.dates.append(layout.date_of(c.key))
        result.late_candles += c.late
    else:
        result.rows_already_stored += c.rows
        result.raw_files_already_stored += 1


def _ordered(fn: Callable[[Tuple[int, int]], Any], pages: List[Tuple[int, int]], workers: int
             ) -> Iterable[Any]:
    """fn(page) for every page, results in page order, at most 2 * workers in flight (bounded memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures: List[Any] = []
        for page in pages:
            futures.append(pool.submit(fn, page))
            if len(futures) >= 2 * workers:
                yield futures.pop(0).result()
        for future in futures:
            yield future.result()


def fetch_candle_page(client: BinanceClient, lake: Lake, symbol: str, interval: str, start: int, end: int,
                      now_ms: int, book: Optional[GapBook] = None, recheck: bool = False) -> List[Committed]:
    """One klines request covering [start, end) -> one raw file per UTC day touched.

    ``recheck``: the window is a recorded exchange gap asked about again; a reply that still
    holds no candles writes nothing (not even a pending marker).
    """
    rows, body = client.klines_reply(symbol, interval, start, end - 1, limit=PAGE_LIMIT)
    prepared = prepare_candle_page(client, lake, symbol, interval, start, end, now_ms, rows, mark=not recheck,
                                   body=body)
    if recheck:
        prepared = [p for p in prepared if p.rows]
    return commit_candle_page(lake, symbol, interval, prepared, book)


@dataclass
class PreparedRaw:
    """One day's raw file of a page, encoded (and marked pending, unless ``marked`` is False)."""

    key: str
    body: bytes
    rows: int
    gaps: List[Tuple[int, int]]
    window: Tuple[int, int] = (0, 0)  # [start, end) of the day's share of the page
    opens: List[int] = field(default_factory=list)  # open times of the rows, ascending
    fetched_at: int = 0
    marked: bool = True


@dataclass
class Committed:
    """What one day's reply did to the lake."""

    key: str  # the raw file written, or the window's existing file when nothing was written
    rows: int  # candles Binance answered for the window
    gaps: List[Tuple[int, int]]  # minutes it answered empty
    written: bool  # a new raw file holds this reply
    late: int = 0  # candles that filled a recorded exchange gap


class GapBook:
    """The recorded exchange gaps of one (symbol, interval), listed once, on first use."""

    def __init__(self, lake: Lake, symbol: str, interval: str) -> None:
        self.lake, self.symbol, self.interval = lake, symbol, interval
        self._records: Optional[List[GapRecord]] = None

    def records(self) -> List[GapRecord]:
        if self._records is None:
            self._records = gap_records(self.lake, self.symbol, self.interval)
        return self._records

    def filled_by(self, opens: List[int]) -> List[GapRecord]:
        """Records holding a minute of ``opens``: Binance now has candles the lake recorded missing."""
        if not opens:
            return []
        lo, hi = opens[0], opens[-1]
        return [r for r in self.records() if r.start <= hi and r.end > lo
                and any(r.start <= t < r.end for t in opens)]

    def narrow(self, records: List[GapRecord], opens: List[int], source: str) -> int:
        kept, filled = narrow_exchange_gaps(self.lake, records, opens, self.interval, source)
        gone = {r.key for r in records}
        self._records = sorted([r for r in self.records() if r.key not in gone] + kept,
                               key=lambda r: (r.start, r.end))
        return filled


def prepare_candle_page(client: BinanceClient, lake: Lake, symbol: str, interval: str, start: int, end: int,
                        now_ms: int, rows: List[list], mark: bool = True,
                        body: Optional[bytes] = None) -> List[PreparedRaw]:
    """Split a page by partition (a UTC day, or a month from 1h up: :func:`layout.grain`), encode
    each share's envelope and (``mark``) write its pending marker.

    ``body``: the reply as received (``BinanceClient.klines_reply``). When it is Binance's compact
    array of rows in open-time order, each share's ``data`` is its slice of those bytes (no second
    encoding of the rows: issue 21); anything else takes the general path (sort, dedupe, encode).
    """
    shares = _page_shares(start, end, interval, rows, body)
    params = {"symbol": symbol, "interval": interval, "startTime": start, "endTime": end - 1, "limit": PAGE_LIMIT}
    out = []
    for (day_s, day_e), day_rows, opens, data in shares:
        gaps = missing_ranges(day_s, day_e, opens, interval)
        key = layout.candle_raw_key(symbol, interval, day_s, day_e)
        env = envelope(client, "klines", symbol, "/api/v3/klines", params, day_rows if data is None else [],
                       interval=interval, covered=[day_s, day_e], server_time=now_ms,
                       exchange_gaps=[list(g) for g in gaps])
        encoded = raw_body(env) if data is None else splice_data(raw_body(env), data)
        if mark:
            mark_pending(lake, key)  # marker first, as in write_raw
        out.append(PreparedRaw(key, encoded, len(day_rows), gaps, (day_s, day_e), opens,
                               int(env["fetched_at"]), mark))
    return out


# One share of a page: its window, rows, their open times, and its rows' bytes (None: encode them).
Share = Tuple[Tuple[int, int], List[list], List[int], Optional[bytes]]


def _page_shares(start: int, end: int, interval: str, rows: List[list], body: Optional[bytes]) -> List[Share]:
    windows = layout.split_by_period(start, end, interval)
    opens = _compact_opens(rows, body)
    if opens is None or body is None:
        by_open = {to_ms(r[0]): r for r in rows if isinstance(r, list) and r}
        ordered = sorted(by_open.items())
        out: List[Share] = []
        for day_s, day_e in windows:
            day_rows = [r for t, r in ordered if day_s <= t < day_e]
            out.append(((day_s, day_e), day_rows, [to_ms(r[0]) for r in day_rows], None))
        return out

    def row_start(k: int) -> int:  # offset of row k's "[" (len(body) past the last row)
        if k == 0 or k == len(rows):
            return 1 if k == 0 else len(body)
        return body.find(b"],[%d," % rows[k][0]) + 2

    out = []
    for day_s, day_e in windows:
        i, j = bisect_left(opens, day_s), bisect_left(opens, day_e)
        data = body[row_start(i):row_start(j) - 1] if i < j else b""  # rows i..j-1, not the comma after
        out.append(((day_s, day_e), rows[i:j], opens[i:j], data))
    return out


def _compact_opens(rows: List[list], body: Optional[bytes]) -> Optional[List[int]]:
    """The rows' open times (ms) when ``body`` is the compact JSON array of ``rows`` in strictly
    increasing open-time order, as Binance sends klines; None otherwise (the general path).

    Checked, not assumed, with C-speed counts instead of a loop over bytes: n rows and exactly
    n + 1 ``[`` and ``]`` (the outer array and one per row: no bracket inside a value), n - 1
    ``],[`` (every row boundary compact), ``[[`` ... ``]]``. Then the k-th ``],[`` precedes row k,
    the only one followed by its open time (an integer, unique as they increase), and the bytes
    between two row starts are exactly the rows between them, as Binance sent them.
    """
    n = len(rows)
    if (not body or not n or body[:2] != b"[[" or body[-2:] != b"]]" or body.count(b"[") != n + 1
            or body.count(b"]") != n + 1 or body.count(b"],[") != n - 1):
        return None
    try:
        firsts = [r[0] for r in rows]
    except (TypeError, IndexError, KeyError):
        return None
    if not all(type(t) is int for t in firsts) or not all(a < b for a, b in zip(firsts, firsts[1:])):
        return None  # not integers, out of order or a duplicate: the general path sorts and dedupes
    if not all(type(r) is list for r in rows) or not body[1:].startswith(b"[%d," % firsts[0]):
        return None
    if to_ms(firsts[0]) != firsts[0] or to_ms(firsts[-1]) != firsts[-1]:
        return None  # microseconds (BINANCE_TIME_UNIT): the general path converts each value
    return firsts


def splice_data(encoded: bytes, data: bytes) -> bytes:
    """An envelope encoded with ``"data":[]`` last, with ``data`` (rows' JSON, no brackets) in it."""
    tail = b'"data":[]}'
    if not encoded.endswith(tail):
        raise ValueError("envelope does not end with its data")  # envelope() keeps data last
    return encoded[:-2] + data + b"]}"


def commit_candle_page(lake: Lake, symbol: str, interval: str, prepared: List[PreparedRaw],
                       book: Optional[GapBook] = None) -> List[Committed]:
    """Store a prepared page's raw files (the ordered step) and record its exchange gaps.

    With a ``book`` (an explicit range, `gaps --repair`), minutes the reply holds that a gap
    record says Binance answered empty are late data: if the window's file already exists the
    reply is stored under a revision key (raw stays immutable; the fold's newest fetch wins a
    minute both hold), and the records are narrowed to what is still missing. A window whose
    file exists and whose reply fills no recorded gap writes nothing new.
    """
    out = []
    for p in prepared:
        filled = book.filled_by(p.opens) if book is not None else []
        key = p.key
        if not p.marked:
            mark_pending(lake, key)
        written = store_raw(lake, key, p.body)
        if not written and filled:
            key = layout.candle_raw_key(symbol, interval, *p.window, revision=p.fetched_at)
            mark_pending(lake, key)  # marker first, as in write_raw
            written = store_raw(lake, key, p.body)
        late = book.narrow(filled, p.opens, key) if book is not None and filled and written else 0
        for g in p.gaps:
            record_exchange_gap(lake, symbol, interval, g, key)
        out.append(Committed(key, p.rows, p.gaps, written, late))
    return out
