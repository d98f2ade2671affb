"""Extraction: Binance -> immutable raw JSON in the lake. No pyarrow here (it runs in a
small Lambda); the transform turns raw into curated Parquet.

Raw layout (see DESIGN.md)::

    raw/klines/interval=1m/symbol=BTCUSDT/date=2024-03-01/<start_ms>-<end_ms>.json
    raw/orders/symbol=BTCUSDT/date=2024-03-01/<fetched_ms>-<run>-<page>-<kind>-<first_id>-<last_id>.json
    raw/_pending/<table>/<partition>/<raw name>       marker: raw file not yet in curated
    raw/_gaps/candles/interval=1m/symbol=BTCUSDT/<start_ms>-<end_ms>.json   exchange gap

A candle window only ever covers closed candles, so its key is deterministic and a
rerun finds the file already there (``if_absent``). The pending marker is written
*before* the raw file: a crash in between leaves a marker for nothing (harmless),
never a raw file the transform would not see.

Watermarks come from the data, never from a state file: candles continue from the end
of the newest raw window; orders from the history cursor (the last id of contiguous
orderId paging) in the curated index and in history pages not yet transformed. The
index is derived from raw: lost, the next sync re-pages the history (no loss, upserts).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from binance_lake.client import BinanceClient
from binance_lake.crash import crash_point
from binance_lake.errors import BadInputError, BinanceError
from binance_lake.lake import Lake
from binance_lake.schema import CANDLES, ORDERS
from binance_lake.times import MS_PER_DAY, date_to_ms, day_start, floor_to, interval_ms, ms_to_date, ms_to_iso, to_ms

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000
DEFAULT_LOOKBACK_MS = MS_PER_DAY  # an empty lake starts 24 hours before now
RAW_FORMAT_VERSION = 1
ORDERS_WINDOW_MAX_MS = MS_PER_DAY  # Binance: at most 24 h between startTime and endTime

Progress = Callable[[int, int], None]  # (units done, units total)


@dataclass
class ExtractResult:
    table: str
    symbol: str
    rows: int = 0
    raw_keys: List[str] = field(default_factory=list)
    dates: List[str] = field(default_factory=list)
    exchange_gaps: List[Tuple[int, int]] = field(default_factory=list)
    start: Optional[int] = None
    end: Optional[int] = None
    note: str = ""
    symbol_status: Optional[str] = None  # exchangeInfo's status (TRADING, BREAK, HALT, END_OF_DAY, ...)
    orders_resolved: Dict[str, List[int]] = field(default_factory=dict)  # reason -> order ids

    def summary(self) -> Dict[str, Any]:
        out = {"table": self.table, "symbol": self.symbol, "rows": self.rows, "raw_files": len(self.raw_keys),
               "dates": sorted(set(self.dates)), "exchange_gaps": [list(g) for g in self.exchange_gaps],
               "start": self.start, "end": self.end, "note": self.note, "symbol_status": self.symbol_status}
        if self.orders_resolved:
            out["orders_resolved"] = {k: sorted(v) for k, v in self.orders_resolved.items()}
        return out


# -- raw files ------------------------------------------------------------------------


def raw_partition(table: str, symbol: str, date: str, interval: Optional[str] = None) -> str:
    if table == CANDLES.name:
        return f"{CANDLES.raw_prefix}/interval={interval}/symbol={symbol}/date={date}"
    return f"{ORDERS.raw_prefix}/symbol={symbol}/date={date}"


def pending_key(raw_key: str) -> str:
    """``raw/klines/...`` -> ``raw/_pending/klines/...``."""
    return "raw/_pending/" + raw_key[len("raw/"):]


def write_raw(lake: Lake, key: str, envelope: Dict[str, Any]) -> bool:
    """Marker first, then the immutable raw file. Returns False if the key existed.

    The marker holds its creation time: a transform that finds no raw file behind a
    young marker leaves it (the raw write may be in flight in another run).
    """
    mark_pending(lake, key)
    return store_raw(lake, key, raw_body(envelope))


def mark_pending(lake: Lake, key: str) -> None:
    lake.write_bytes(pending_key(key), str(int(time.time() * 1000)).encode())
    crash_point("marker")


def raw_body(envelope: Dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def store_raw(lake: Lake, key: str, body: bytes) -> bool:
    written = lake.write_bytes(key, body, if_absent=True)
    crash_point("raw")
    return written


def envelope(client: BinanceClient, table: str, symbol: str, endpoint: str, params: Dict[str, Any],
             data: Any, **extra: Any) -> Dict[str, Any]:
    # The base URL is recorded without any secret (keys travel in headers, never in URLs).
    return {"format": RAW_FORMAT_VERSION, "table": table, "symbol": symbol, "endpoint": endpoint,
            "params": params, "base_url": client.base_url, "fetched_at": int(time.time() * 1000),
            "used_weight": client.stats.weight_used, "time_unit": client.config.time_unit or "MILLISECOND",
            **extra, "data": data}


# -- candles ------------------------------------------------------------------------


def candle_pages(start: int, end: int, step: int, limit: int = PAGE_LIMIT) -> List[Tuple[int, int]]:
    """Split [start, end) into request windows of at most ``limit`` candles."""
    span = step * limit
    return [(s, min(s + span, end)) for s in range(start, end, span)]


def split_by_day(start: int, end: int) -> List[Tuple[int, int]]:
    """[start, end) cut at UTC midnights, so each raw file belongs to one date partition."""
    out, s = [], start
    while s < end:
        e = min(day_start(s) + MS_PER_DAY, end)
        out.append((s, e))
        s = e
    return out


def candle_raw_key(symbol: str, interval: str, start: int, end: int) -> str:
    return f"{raw_partition(CANDLES.name, symbol, ms_to_date(start), interval)}/{start}-{end}.json"


def parse_window_name(name: str) -> Optional[Tuple[int, int]]:
    stem = name[:-5] if name.endswith(".json") else name
    parts = stem.split("-")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _raw_windows(lake: Lake, symbol: str, interval: str, newest: bool) -> Optional[Tuple[int, int]]:
    base = f"{CANDLES.raw_prefix}/interval={interval}/symbol={symbol}"
    dates = lake.list_children(base)
    for date_dir in reversed(dates) if newest else dates:
        windows = [w for w in map(parse_window_name, lake.list_children(f"{base}/{date_dir}")) if w]
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


def gap_key(symbol: str, interval: str, start: int, end: int) -> str:
    return f"raw/_gaps/{CANDLES.name}/interval={interval}/symbol={symbol}/{start}-{end}.json"


def exchange_gaps(lake: Lake, symbol: str, interval: str) -> List[Tuple[int, int]]:
    """Ranges Binance confirmed empty (maintenance), merged, from the gap records' names."""
    prefix = f"raw/_gaps/{CANDLES.name}/interval={interval}/symbol={symbol}"
    windows = sorted(w for w in map(parse_window_name, lake.list_children(prefix)) if w)
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
# The backfill (binance_lake.archive) stores each verified zip under
# raw/archive/klines/interval=1m/symbol=X/<monthly|daily>/<X>-1m-<period>.zip and writes the
# sidecar <name>.zip.json only once the zip's rows are in curated: a sidecar's *name* is
# the coverage claim, so watermarks stay listing-only (no reads, no pyarrow).

ARCHIVE_PREFIX = "raw/archive/klines"
ARCHIVE_KINDS = ("monthly", "daily")
SIDECAR_SUFFIX = ".zip.json"


def archive_dir(symbol: str, interval: str, kind: str) -> str:
    return f"{ARCHIVE_PREFIX}/interval={interval}/symbol={symbol}/{kind}"


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
    prefix = f"{symbol}-{interval}-"
    return [name[len(prefix):-len(SIDECAR_SUFFIX)]
            for kind in ARCHIVE_KINDS for name in lake.list_children(archive_dir(symbol, interval, kind))
            if name.startswith(prefix) and name.endswith(SIDECAR_SUFFIX)]


def archive_coverage(lake: Lake, symbol: str, interval: str) -> List[Tuple[int, int]]:
    """Merged ranges of archive files already verified and curated."""
    return merge_ranges(archive_period_range(p) for p in archive_periods(lake, symbol, interval))


def archive_watermark(lake: Lake, symbol: str, interval: str) -> Optional[int]:
    covered = archive_coverage(lake, symbol, interval)
    return covered[-1][1] if covered else None


def max_or_none(*values: Optional[int]) -> Optional[int]:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass
class CandleRange:
    start: int
    end: int
    note: str = ""


TRADING = "TRADING"


def resolve_candle_range(client: BinanceClient, lake: Lake, symbol: str, interval: str,
                         start: Optional[int], end: Optional[int], now_ms: int,
                         symbol_status: str = TRADING) -> CandleRange:
    """Decide [start, end) of closed candles to fetch; see the README for the defaults.

    A symbol that is not TRADING (BREAK, HALT, END_OF_DAY: enums.md "Symbol status") prints
    no candles, so its silence after its last candle is not an exchange outage: the range
    stops at that candle, and an empty lake takes the 24 hours before it.
    """
    step = interval_ms(interval)
    if start is not None and end is not None and start >= end:
        raise BadInputError(f"--start {ms_to_iso(start)} is not before --end {ms_to_iso(end)}; "
                            "--start is inclusive and --end exclusive")
    last_closed_end = floor_to(now_ms, step)  # candles opening before this are closed
    note = ""
    tail_end = last_closed_end
    if symbol_status != TRADING:
        last = last_candle_ms(client, symbol, interval)
        tail_end = min(tail_end, last + step) if last is not None else -1
        note = (f"{symbol} is {symbol_status} (not trading) on Binance: "
                + (f"its last candle opened at {ms_to_iso(last)}; nothing after it is an exchange gap"
                   if last is not None else "it has no candles"))
    if start is None:
        # The public-archive backfill covers whole days without REST raw windows.
        mark = max_or_none(candles_watermark(lake, symbol, interval), archive_watermark(lake, symbol, interval))
        anchor = last_closed_end if tail_end < 0 else tail_end
        start = mark if mark is not None else floor_to(anchor - DEFAULT_LOOKBACK_MS, step)
        how = "continuing from the lake's watermark" if mark is not None else (
            "empty lake: last 24 hours" + ("" if symbol_status == TRADING else " before its last candle"))
        note = f"{how}; {note}" if note else how
    else:
        start = -(-start // step) * step  # round up to a candle boundary
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
    if end is not None and start >= last_closed_end:
        raise BadInputError(f"--start {ms_to_iso(start)} is in the future or its candle is still open "
                            f"(Binance server time {ms_to_iso(now_ms)})")
    return CandleRange(start, max(stop, start), note)


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
                 progress: Optional[Progress] = None) -> ExtractResult:
    """Fetch every closed candle in [start, end) into raw files; idempotent and resumable."""
    info = client.symbol_info(symbol)  # unknown symbol -> clear error before anything is written
    status = str(info.get("status") or TRADING)
    now_ms = client.server_time()
    rng = resolve_candle_range(client, lake, symbol, interval, start, end, now_ms, status)
    result = ExtractResult(CANDLES.name, symbol, start=rng.start, end=rng.end, note=rng.note,
                           symbol_status=status)
    pages = candle_pages(rng.start, rng.end, interval_ms(interval))

    def fetch(page: Tuple[int, int]) -> List[PreparedRaw]:
        crash_point("fetch")
        rows = client.klines(symbol, interval, page[0], page[1] - 1, limit=PAGE_LIMIT)
        return prepare_candle_page(client, lake, symbol, interval, page[0], page[1], now_ms, rows)

    # Pages are fetched, encoded and marked pending concurrently, but their raw files are
    # stored strictly in order, so a run killed at any point leaves a prefix of the range
    # in raw and the watermark (newest raw end) never jumps over a page that was not
    # stored. (Markers may run ahead: a marker without its raw file is the in-flight case
    # the transform already waits for.)
    for done, prepared in enumerate(_ordered(fetch, pages, max(1, workers)), 1):
        for key, n, gaps in commit_candle_page(lake, symbol, interval, prepared):
            result.raw_keys.append(key)
            result.rows += n
            result.dates.append(key.split("date=")[1].split("/")[0])
            result.exchange_gaps.extend(gaps)
        if progress:
            progress(done, len(pages))
    result.exchange_gaps = merge_ranges(result.exchange_gaps)
    return result


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
                      now_ms: int) -> List[Tuple[str, int, List[Tuple[int, int]]]]:
    """One klines request covering [start, end) -> one raw file per UTC day touched."""
    rows = client.klines(symbol, interval, start, end - 1, limit=PAGE_LIMIT)
    return store_candle_page(client, lake, symbol, interval, start, end, now_ms, rows)


def store_candle_page(client: BinanceClient, lake: Lake, symbol: str, interval: str, start: int, end: int,
                      now_ms: int, rows: List[list]) -> List[Tuple[str, int, List[Tuple[int, int]]]]:
    """The rows of one klines request -> one raw file per UTC day touched (+ exchange gaps)."""
    prepared = prepare_candle_page(client, lake, symbol, interval, start, end, now_ms, rows)
    return commit_candle_page(lake, symbol, interval, prepared)


@dataclass
class PreparedRaw:
    """One day's raw file of a page, encoded and marked pending, not yet stored."""

    key: str
    body: bytes
    rows: int
    gaps: List[Tuple[int, int]]


def prepare_candle_page(client: BinanceClient, lake: Lake, symbol: str, interval: str, start: int, end: int,
                        now_ms: int, rows: List[list]) -> List[PreparedRaw]:
    """Split a page by UTC day, encode each day's envelope and write its pending marker."""
    step = interval_ms(interval)
    by_open = {to_ms(r[0]): r for r in rows if isinstance(r, list) and r}
    params = {"symbol": symbol, "interval": interval, "startTime": start, "endTime": end - 1, "limit": PAGE_LIMIT}
    out = []
    for day_s, day_e in split_by_day(start, end):
        day_rows = [r for t, r in sorted(by_open.items()) if day_s <= t < day_e]
        gaps = missing_ranges(day_s, day_e, [to_ms(r[0]) for r in day_rows], step)
        key = candle_raw_key(symbol, interval, day_s, day_e)
        env = envelope(client, "klines", symbol, "/api/v3/klines", params, day_rows, interval=interval,
                       covered=[day_s, day_e], server_time=now_ms, exchange_gaps=[list(g) for g in gaps])
        mark_pending(lake, key)  # marker first, as in write_raw
        out.append(PreparedRaw(key, raw_body(env), len(day_rows), gaps))
    return out


def commit_candle_page(lake: Lake, symbol: str, interval: str, prepared: List[PreparedRaw]
                       ) -> List[Tuple[str, int, List[Tuple[int, int]]]]:
    """Store a prepared page's raw files (the ordered step) and record its exchange gaps."""
    out = []
    for p in prepared:
        store_raw(lake, p.key, p.body)
        for g in p.gaps:
            record_exchange_gap(lake, symbol, interval, g, p.key)
        out.append((p.key, p.rows, p.gaps))
    return out


def record_exchange_gap(lake: Lake, symbol: str, interval: str, gap: Tuple[int, int], source: str) -> None:
    body = {"start": ms_to_iso(gap[0]), "end": ms_to_iso(gap[1]), "source_key": source,
            "recorded_at": ms_to_iso(int(time.time() * 1000))}
    lake.write_bytes(gap_key(symbol, interval, *gap), json.dumps(body).encode(), if_absent=True)
    log.warning("%s %s: Binance has no candles for %s .. %s (exchange gap recorded)", symbol, interval,
                ms_to_iso(gap[0]), ms_to_iso(gap[1]))


# -- orders ---------------------------------------------------------------------------


@dataclass
class OrdersRequest:
    """What ``sync orders`` fetches: everything new (default), the latest N, or a time window."""

    latest: Optional[int] = None
    start: Optional[int] = None
    end: Optional[int] = None

    def validate(self) -> None:
        if self.latest is not None and not 1 <= self.latest <= PAGE_LIMIT:
            raise BadInputError(f"--limit {self.latest} is out of range; Binance returns 1 to 1000 orders")
        if self.latest is not None and self.start is not None:
            raise BadInputError("use either --limit or a time window (--window / --start/--end), not both")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise BadInputError(f"--start {ms_to_iso(self.start)} is not before --end {ms_to_iso(self.end)}")


def orders_index_key(symbol: str) -> str:
    return f"curated/_index/orders/symbol={symbol}.json"


def read_orders_index(lake: Lake, symbol: str) -> Dict[str, Any]:
    """{history_through, max_order_id, open_order_ids} written by the transform; empty if absent."""
    try:
        return json.loads(lake.read_bytes(orders_index_key(symbol)))
    except (KeyError, ValueError):
        return {}


# Raw orders pages are named <fetched>-<run>-<page>-<kind>-<first id>-<last id>.json. Only
# HISTORY pages (paging orderId upward from the history cursor) prove that no order below
# their last id is missing; samples (--limit, --window) and refreshes (/openOrders, /order)
# store real orders but never move the cursor, or the history before a sample would be
# skipped for good.
HISTORY, SAMPLE, REFRESH = "history", "sample", "refresh"


def order_page_name(fetched: int, run_id: str, page: int, kind: str, first: int, last: int) -> str:
    return f"{fetched}-{run_id}-{page:05d}-{kind}-{first}-{last}.json"


def history_page_last_id(raw_key: str) -> Optional[int]:
    """Last order id of a HISTORY page, from its name; None for any other page."""
    parts = raw_key.rsplit("/", 1)[-1][: -len(".json")].split("-")
    if len(parts) == 6 and parts[3] == HISTORY and parts[5].isdigit():
        return int(parts[5])
    return None


def pending_order_ids(lake: Lake, symbol: str) -> List[int]:
    """Last order id of each HISTORY page not yet transformed (from key names).

    Only markers whose raw file exists count: a run killed between marker and raw file
    must not move the cursor past orders that were never stored.
    """
    ids = []
    for key in lake.list_keys(f"raw/_pending/orders/symbol={symbol}"):
        last = history_page_last_id(key)
        if last is not None and lake.exists("raw/" + key[len("raw/_pending/"):]):
            ids.append(last)
    return ids


def known_orders(lake: Lake, symbol: str) -> Tuple[int, List[int]]:
    """(history cursor: every order id up to it is stored, or -1; ids stored in a non-final state).

    Orders Binance no longer knows (-2013, see ``OrdersRun._one``) are left out: never re-queried.
    """
    index = read_orders_index(lake, symbol)
    through = max([int(index.get("history_through", -1)), *pending_order_ids(lake, symbol)])
    gone = set(resolved_order_ids(lake, symbol))
    return through, sorted(int(i) for i in index.get("open_order_ids", []) if int(i) not in gone)


def resolved_key(symbol: str, order_id: int) -> str:
    return f"raw/_resolved/orders/symbol={symbol}/{order_id}.json"


def resolved_order_ids(lake: Lake, symbol: str) -> List[int]:
    """Ids of stored orders Binance answered -2013 (or -2026 with no stored copy), from key names."""
    names = lake.list_children(f"raw/_resolved/orders/symbol={symbol}")
    return [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]


def _order_page_ids(raw_key: str) -> Optional[Tuple[int, int, int]]:
    """(fetched ms, first id, last id) from a raw orders page name, or None."""
    parts = raw_key.rsplit("/", 1)[-1][: -len(".json")].split("-")
    if len(parts) == 6 and parts[0].isdigit() and parts[4].isdigit() and parts[5].isdigit():
        return int(parts[0]), int(parts[4]), int(parts[5])
    return None


def stored_orders(lake: Lake, symbol: str, order_ids: Iterable[int]) -> Dict[int, Dict[str, Any]]:
    """The newest stored copy of each order, read from raw pages whose names span its id.

    Listing plus a few reads, no pyarrow (this runs in the extract Lambda); used only for the
    rare order Binance has archived, whose last state must be carried into its final row.
    """
    wanted, found = set(order_ids), {}
    pages = [(ids, k) for k in lake.list_keys(f"{ORDERS.raw_prefix}/symbol={symbol}")
             if (ids := _order_page_ids(k)) is not None]
    for (_fetched, first, last), key in sorted(pages, reverse=True):  # newest fetch first
        todo = {i for i in wanted - found.keys() if first <= i <= last}
        if not todo:
            continue
        try:
            data = json.loads(lake.read_bytes(key)).get("data", [])
        except (KeyError, ValueError, AttributeError):
            continue  # an unreadable page: an older copy may still do
        for o in data:
            if isinstance(o, dict) and o.get("orderId") in todo:
                found.setdefault(int(o["orderId"]), o)
        if not wanted - found.keys():
            break
    return found


# What the lake records for an order answered -2026 ORDER_ARCHIVED. errors.md: "Order was
# canceled or expired with no executed qty over 90 days ago and has been archived"; the
# binance-spot-api-docs CHANGELOG (2023-03-13, "Fixed error message for querying archived orders")
# names the statuses CANCELED or EXPIRED with executedQty == 0, and its 2025-08-12 entry adds
# EXPIRED_IN_MATCH. Binance does not say which one, so the row takes CANCELED (the final status
# of almost every resting order that ends unexecuted) and says how it was decided in
# extra_fields.lakeResolution.
ARCHIVED_STATUS = "CANCELED"
ARCHIVED_SOURCE = ("Binance answered -2026 ORDER_ARCHIVED: canceled or expired (CANCELED, EXPIRED or "
                   "EXPIRED_IN_MATCH) with no executed qty over 90 days ago (binance-spot-api-docs errors.md, "
                   "CHANGELOG); the exact final status is not published, CANCELED is recorded")


def archived_order(stored: Dict[str, Any], now_ms: int) -> Dict[str, Any]:
    """The final row of an archived order: its stored copy, status final, provenance attached."""
    return {**stored, "status": ARCHIVED_STATUS, "isWorking": False,
            "lakeResolution": {"code": -2026, "storedStatus": stored.get("status"), "resolvedAt": now_ms,
                               "source": ARCHIVED_SOURCE}}


# Orders that left the book since the last sync are re-read one by one (weight 4 each) up to
# this many; beyond it, re-paging allOrders from the oldest of them (weight 20 per 1000) is cheaper.
REFRESH_ONE_BY_ONE_MAX = 50


def prefetch_open_orders(client: BinanceClient, symbols: Sequence[str]) -> Optional[List[Dict[str, Any]]]:
    """Every symbol's open orders in one call when that is cheaper than one call per symbol
    (80 against 6 each: beyond 13 symbols); None when per-symbol calls are cheaper."""
    from binance_lake.client import OPEN_ORDERS_ALL_WEIGHT, OPEN_ORDERS_WEIGHT

    if len(set(symbols)) * OPEN_ORDERS_WEIGHT <= OPEN_ORDERS_ALL_WEIGHT:
        return None
    return client.open_orders_all()


def sync_orders(client: BinanceClient, lake: Lake, symbol: str, request: Optional[OrdersRequest] = None,
                progress: Optional[Progress] = None,
                open_orders: Optional[List[Dict[str, Any]]] = None) -> ExtractResult:
    """``open_orders``: every symbol's open orders fetched once (prefetch_open_orders) for a
    multi-symbol run; None asks /openOrders for this symbol alone."""
    request = request or OrdersRequest()
    request.validate()
    if not client.config.has_credentials:
        client.all_orders(symbol)  # raises the missing-credentials error
    info = client.symbol_info(symbol)
    run = OrdersRun(client, lake, symbol, progress)
    run.prefetched_open = open_orders
    run.result.symbol_status = str(info.get("status") or TRADING)
    if request.latest is not None:
        run.fetch_page({"limit": request.latest}, SAMPLE)
    elif request.start is not None:
        end = request.end if request.end is not None else client.server_time()
        run.fetch_window(request.start, end)
    else:
        run.incremental(*known_orders(lake, symbol))
    return run.result


class OrdersRun:
    """One ``sync orders`` run: every page becomes one raw file."""

    def __init__(self, client: BinanceClient, lake: Lake, symbol: str, progress: Optional[Progress]):
        self.client, self.lake, self.symbol, self.progress = client, lake, symbol, progress
        self.run_id = uuid.uuid4().hex[:8]
        self.result = ExtractResult(ORDERS.name, symbol)
        self.pages = 0
        self.seen_ids: set = set()
        self.archived: List[int] = []

    def fetch_page(self, params: Dict[str, Any], kind: str) -> List[Dict[str, Any]]:
        crash_point("fetch")
        orders = self.client.all_orders(
            self.symbol, order_id=params.get("orderId"), start=params.get("startTime"),
            end_inclusive=params.get("endTime"), limit=params.get("limit", PAGE_LIMIT))
        self.seen_ids.update(int(o["orderId"]) for o in orders if isinstance(o, dict) and "orderId" in o)
        self._count_page()
        if orders:
            self._write(params, orders, kind)
        return orders

    def incremental(self, highest: int, stored_open: List[int]) -> None:
        """New orders after ``highest``, plus fresh states of stored orders that were still open.

        /openOrders (weight 6) tells which stored open orders changed: the ones no longer on
        the book. Those are re-read; orders still open are stored again with their current state.
        Past REFRESH_ONE_BY_ONE_MAX, allOrders is re-paged from the oldest of them; the ones it
        does not return (Binance archives unexecuted cancels after 90 days and leaves them out of
        allOrders) are then asked one by one, so none stays open in the lake.
        """
        cursor = highest + 1
        left_book: List[int] = []
        if stored_open:
            on_book = self.open_on_book()
            self._count_page()
            if on_book:
                self._write({"endpoint": "openOrders"}, on_book, REFRESH, "/api/v3/openOrders")
            left_book = sorted(set(stored_open) - {int(o["orderId"]) for o in on_book})
            if len(left_book) > REFRESH_ONE_BY_ONE_MAX:
                cursor = min(cursor, left_book[0])
            else:
                self.refresh_one_by_one(left_book)
                left_book = []
        self.page_by_id(cursor, HISTORY)
        self.refresh_one_by_one([i for i in left_book if i not in self.seen_ids])

    # Set by sync_orders_many when one all-symbols /openOrders call served every symbol.
    prefetched_open: Optional[List[Dict[str, Any]]] = None

    def open_on_book(self) -> List[Dict[str, Any]]:
        if self.prefetched_open is not None:
            return [o for o in self.prefetched_open if o.get("symbol") == self.symbol]
        return self.client.open_orders(self.symbol)

    def refresh_one_by_one(self, order_ids: List[int]) -> None:
        if not order_ids:
            return
        found = [o for o in map(self._one, order_ids) if o is not None]
        if found:
            self._write({"orderIds": order_ids}, found, REFRESH, "/api/v3/order")
        if self.archived:
            self._write_archived(self.archived)

    def _one(self, order_id: int) -> Optional[Dict[str, Any]]:
        try:
            order = self.client.order(self.symbol, order_id)
        except BinanceError as exc:
            if exc.code == -2026:
                self.archived.append(order_id)  # final: recorded by _write_archived
            elif exc.code == -2013:
                # Binance no longer knows it (until 2023-03-13 that was also how archived orders
                # answered, CHANGELOG "Fixed error message for querying archived orders"). Its row is kept as
                # last seen (inventing a final state would be a guess) but it is not asked again.
                log.warning("%s order %d: Binance says it does not exist (-2013); kept as last stored "
                            "and not queried again", self.symbol, order_id)
                self._mark_resolved(order_id, exc.code, "Order does not exist.")
            else:
                raise
            order = None
        self._count_page()
        return order

    def _mark_resolved(self, order_id: int, code: int, msg: str) -> None:
        body = {"orderId": order_id, "code": code, "msg": msg, "resolved_at": int(time.time() * 1000)}
        self.lake.write_bytes(resolved_key(self.symbol, order_id), json.dumps(body).encode())
        self.result.orders_resolved.setdefault(str(code), []).append(order_id)

    def _write_archived(self, order_ids: List[int]) -> None:
        """Archived orders become final rows (see ARCHIVED_STATUS), built from their stored copy."""
        stored = stored_orders(self.lake, self.symbol, order_ids)
        now = int(time.time() * 1000)
        rows = [archived_order(stored[i], now) for i in order_ids if i in stored]
        if rows:
            self._write({"orderIds": [r["orderId"] for r in rows], "code": -2026}, rows, REFRESH,
                        "/api/v3/order (-2026 ORDER_ARCHIVED)")
        for i in order_ids:
            if i not in stored:  # no copy to carry over: at least never ask again
                self._mark_resolved(i, -2026, "Order archived; no stored copy to finalise")
        self.result.orders_resolved.setdefault("-2026", []).extend(r["orderId"] for r in rows)
        log.warning("%s: %d orders archived by Binance (-2026) recorded as final %s", self.symbol,
                    len(order_ids), ARCHIVED_STATUS)
        self.archived = []

    def _count_page(self) -> None:
        self.pages += 1
        if self.progress:
            self.progress(self.pages, 0)

    def _write(self, params: Dict[str, Any], orders: List[Dict[str, Any]], kind: str,
               endpoint: str = "/api/v3/allOrders") -> None:
        fetched = int(time.time() * 1000)
        ids = [int(o["orderId"]) for o in orders if isinstance(o, dict) and "orderId" in o]
        first, last = (min(ids), max(ids)) if ids else (0, 0)
        name = order_page_name(fetched, self.run_id, self.pages, kind, first, last)
        key = f"{raw_partition(ORDERS.name, self.symbol, ms_to_date(fetched))}/{name}"
        write_raw(self.lake, key, envelope(self.client, "orders", self.symbol, endpoint,
                                           {"symbol": self.symbol, **params}, orders))
        self.result.raw_keys.append(key)
        self.result.rows += len(orders)
        self.result.dates.append(ms_to_date(fetched))

    def page_by_id(self, cursor: int, kind: str, stop_time: Optional[int] = None) -> None:
        """Page ``orderId >= cursor`` in ascending id order until a short page (or ``stop_time``)."""
        while True:
            orders = self.fetch_page({"orderId": cursor, "limit": PAGE_LIMIT}, kind)
            if not orders:
                return
            cursor = max(int(o["orderId"]) for o in orders) + 1
            if len(orders) < PAGE_LIMIT:
                return
            if stop_time is not None and max(to_ms(o["time"]) for o in orders) >= stop_time:
                return

    def fetch_window(self, start: int, end: int) -> None:
        """Orders created in [start, end): 24-hour windows; a full page continues by orderId."""
        self.result.start, self.result.end = start, end
        for s in range(start, end, ORDERS_WINDOW_MAX_MS):
            e = min(s + ORDERS_WINDOW_MAX_MS, end)
            orders = self.fetch_page({"startTime": s, "endTime": e - 1, "limit": PAGE_LIMIT}, SAMPLE)
            if len(orders) == PAGE_LIMIT:
                self.page_by_id(max(int(o["orderId"]) for o in orders) + 1, SAMPLE, stop_time=e)

