"""Fold: the one writer of curated partitions.

Sources bring data into raw (REST pages, verified archive zips); the fold turns them into
curated Parquet, and nothing else writes ``curated/``. Every write happens under the
per-(table, symbol) lease of :mod:`binance_lake.lock`, so the sync's transform tick, a
backfill's archive files, ``transform --rebuild`` and verify's repair can run at the same
time without one overwriting the rows another merged.

* A partition is rewritten whole and atomically: a reader never sees half a partition. The
  write is a compare-and-swap (``Lake.write_if_version``): it replaces only the version this
  writer read, so a writer that read before another one wrote loses loudly (``WriteConflict``),
  re-reads, merges again and retries (:func:`retry_on_conflict`), instead of dropping the other's
  rows. That holds even if the lease was lost (a stalled holder taken over). The merge keeps one
  row per ``Table.primary_key``, the greatest ``Table.version_columns`` winning (candles: the
  most recent fetch; orders: the latest update, then the latest fetch).
* Inputs: REST raw pages named by pending markers (the tick; markers are deleted once the
  rows are in), all raw pages plus the stored archive share of a day (rebuild, and any
  partition found unreadable), one archive file's rows split by day (backfill).
* Rows that break a type or an invariant (:mod:`binance_lake.columns`) and raw files that
  do not parse go to ``quarantine/`` with the reason; the rest lands.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from binance_lake import layout
from binance_lake.columns import arrow_schema, candles_from_arrow, candles_table, dedupe, orders_table
from binance_lake.crash import crash_point, pause_point
from binance_lake.errors import Rejected, WriteConflict
from binance_lake.lake import Lake, Version
from binance_lake.lock import check_held, lake_lock
from binance_lake.schema import CANDLES, OPEN_ORDER_STATUSES, ORDERS, Table
from binance_lake.sources.archive import (
    ArchiveFile,
    FileResult,
    StoredArchive,
    drop_gaps_from,
    file_gaps,
    split_days,
)
from binance_lake.sources.coverage import record_exchange_gap
from binance_lake.sources.rest.orders import history_page_last_id, read_orders_index
from binance_lake.sources.rest.raw import read_raw
from binance_lake.times import interval_ms, ms_to_date

log = logging.getLogger(__name__)

# Day partitions folded at once within one symbol's lock. Measured on a year (365 partitions,
# 2 cores): 1 -> 3.47 s, 2 -> 3.29 s, 4 -> 4.24 s; most of the work is Python holding the GIL,
# so 2 only overlaps the Parquet writes and fsyncs.
TRANSFORM_WORKERS = 2
# A marker whose raw file is missing is left alone this long: another run may be between
# writing the marker and the raw file (a Lambda runs at most 15 minutes).
MARKER_GRACE_MS = 15 * 60 * 1000
# Conditional writes of one partition tried before giving up: a conflict means another writer
# wrote it between this one's read and write, which the lease makes rare; five in a row means
# something keeps rewriting it, and the run stops with an error rather than loop.
CAS_ATTEMPTS = 5
T = TypeVar("T")


@dataclass
class TransformResult:
    partitions: List[str] = field(default_factory=list)
    rows_in: int = 0
    rows_written: int = 0
    quarantined_rows: int = 0
    quarantined_files: int = 0
    rebuilt: List[str] = field(default_factory=list)
    last_candle_close: Dict[str, int] = field(default_factory=dict)
    missing_raw: List[str] = field(default_factory=list)  # markers' raw keys not (yet) there

    def add(self, other: TransformResult) -> None:
        self.missing_raw += other.missing_raw
        self.partitions += other.partitions
        self.rows_in += other.rows_in
        self.rows_written += other.rows_written
        self.quarantined_rows += other.quarantined_rows
        self.quarantined_files += other.quarantined_files
        self.rebuilt += other.rebuilt
        for k, v in other.last_candle_close.items():
            self.last_candle_close[k] = max(v, self.last_candle_close.get(k, v))

    def summary(self) -> Dict[str, Any]:
        return {"partitions": len(self.partitions), "rows_in": self.rows_in, "rows_written": self.rows_written,
                "quarantined_rows": self.quarantined_rows, "quarantined_files": self.quarantined_files,
                "rebuilt": self.rebuilt}


# -- raw files ---------------------------------------------------------------------------


@dataclass
class RawBatch:
    """Rows gathered from raw files, with their lineage."""

    rows: List[Any] = field(default_factory=list)
    ingested_at: List[int] = field(default_factory=list)
    source_keys: List[str] = field(default_factory=list)

    def extend(self, key: str, fetched_at: int, rows: List[Any]) -> None:
        self.rows.extend(rows)
        self.ingested_at.extend([fetched_at] * len(rows))
        self.source_keys.extend([key] * len(rows))


def gather(lake: Lake, keys: Iterable[str], table: str, result: TransformResult) -> RawBatch:
    batch = RawBatch()
    for key in keys:
        try:
            fetched_at, rows = read_raw(lake, key, table)
        except KeyError:
            result.missing_raw.append(key)  # a crash between marker and raw, or a write in flight
            continue
        except Rejected as exc:
            quarantine_file(lake, key, str(exc))
            result.quarantined_files += 1
            continue
        batch.extend(key, fetched_at, rows)
    result.rows_in += len(batch.rows)
    return batch


def quarantine_file(lake: Lake, key: str, reason: str) -> None:
    """Move an unusable raw file to quarantine/raw/<key> (+ .reason.json); a rerun refetches it."""
    try:
        data = lake.read_bytes(key)
    except KeyError:
        return
    copy_key, reason_key = layout.quarantine_file_keys(key)
    lake.write_bytes(copy_key, data)
    lake.write_bytes(reason_key, json.dumps(
        {"source_key": key, "reason": reason, "quarantined_at": int(time.time() * 1000)}).encode())
    lake.delete(key)
    log.warning("quarantined raw file %s: %s", key, reason)


def quarantine_rows(lake: Lake, partition: str, source: str, rejected: List[Tuple[Any, str]]) -> None:
    if not rejected:
        return
    name = f"{int(time.time() * 1000)}-{layout.file_name(source)}"
    body = {"partition": partition, "rows": [{"row": row, "reason": reason} for row, reason in rejected]}
    lake.write_bytes(layout.quarantine_rows_key(partition, name), json.dumps(body, default=str).encode())
    log.warning("%s: %d row(s) quarantined, first reason: %s", partition, len(rejected), rejected[0][1])


# -- curated partitions -----------------------------------------------------------------------


@dataclass
class StoredPartition:
    """A partition as read: its rows (None: absent) and the version a conditional write must match."""

    rows: Optional[pa.Table]
    version: Version  # None: absent, so a write may only create it


class UnreadablePartition(Rejected):
    """The stored file is unreadable or of another schema; ``version`` is what a repair replaces."""

    def __init__(self, reason: str, version: Version):
        super().__init__(reason)
        self.version = version


def read_stored(lake: Lake, partition: str, table: Table) -> StoredPartition:
    """The partition's rows and version. Raises ``UnreadablePartition`` (a ``Rejected``)."""
    try:
        data, version = lake.read_with_version(layout.part_key(partition))
    except KeyError:
        return StoredPartition(None, None)
    try:
        t = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise UnreadablePartition(f"unreadable Parquet ({type(exc).__name__})", version) from None
    if t.schema.remove_metadata() != arrow_schema(table).remove_metadata():
        raise UnreadablePartition("schema differs from binance_lake.schema", version)
    return StoredPartition(t, version)


def read_partition(lake: Lake, partition: str, table: Table) -> Optional[pa.Table]:
    """The partition's rows, for readers; None if absent. Raises ``Rejected`` if unreadable or of
    another schema. A writer reads with :func:`read_stored` (it needs the version)."""
    return read_stored(lake, partition, table).rows


def write_partition(lake: Lake, partition: str, t: pa.Table, version: Version) -> None:
    """Replace a partition whole, only if it still is ``version`` (what the caller read; None:
    create only). Raises ``WriteConflict`` if another writer got in between (run the caller's
    read-merge-write again: :func:`retry_on_conflict`), ``LeaseLost`` if this process's lease on
    the partition's (table, symbol) was taken over."""
    pause_point("curated-merge", partition)  # test hook: every caller has read and merged by now
    check_held(lake, partition.split("/")[1], layout.symbol_of(partition))  # curated/<table>/...
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    lake.write_if_version(layout.part_key(partition), buf.getvalue(), version)


def retry_on_conflict(partition: str, attempt: Callable[[], T]) -> T:
    """``attempt()`` (a read-merge-write of ``partition``) again after each ``WriteConflict``: the
    loser re-reads what the winner wrote and merges over it. Bounded by ``CAS_ATTEMPTS``."""
    for n in range(1, CAS_ATTEMPTS + 1):
        try:
            return attempt()
        except WriteConflict as exc:
            if n == CAS_ATTEMPTS:
                raise WriteConflict(f"{partition} was rewritten by another writer {n} times while this run "
                                    "merged it; nothing was overwritten and its input stays pending: rerun") from exc
            log.warning("%s: another writer wrote it after this run read it; reading and merging again", partition)
    raise AssertionError("unreachable")


# -- the transform tick: REST pages named by pending markers -----------------------------------


def pending_markers(lake: Lake, table: Table, symbols: Optional[Sequence[str]] = None) -> List[str]:
    keys = lake.list_keys(layout.pending_prefix(table))
    if symbols:
        wanted = set(symbols)
        keys = [k for k in keys if layout.values_of(k).get("symbol") in wanted]
    return keys


def transform_pending(lake: Lake, tables: Sequence[str] = ("candles", "orders"),
                      symbols: Optional[Sequence[str]] = None) -> TransformResult:
    """Fold every raw file named by a pending marker into curated; delete those markers."""
    result = TransformResult()
    if CANDLES.name in tables:
        result.add(transform_candles(lake, pending_markers(lake, CANDLES, symbols)))
    if ORDERS.name in tables:
        result.add(transform_orders(lake, pending_markers(lake, ORDERS, symbols)))
    return result


def transform_candles(lake: Lake, markers: Sequence[str]) -> TransformResult:
    result = TransformResult()
    groups: Dict[str, List[str]] = defaultdict(list)
    for marker in markers:
        raw_key = layout.raw_key_of_marker(marker)
        groups[layout.candle_partition_of_raw(raw_key)[0]].append(raw_key)
    by_symbol: Dict[str, List[Tuple[str, List[str]]]] = defaultdict(list)
    for partition, raw_keys in sorted(groups.items()):
        by_symbol[layout.symbol_of(partition)].append((partition, sorted(raw_keys)))
    for symbol, items in sorted(by_symbol.items()):
        # One writer per symbol at a time: read-merge-write-unmark by two runs at once would
        # lose rows. Inside the lock each day partition is independent, so they are folded
        # concurrently (pyarrow's casts and Parquet writes and fsync release the GIL).
        with lake_lock(lake, CANDLES.name, symbol):
            for part in _map_partitions(lambda item: _fold_candle_partition(lake, *item), items):
                result.add(part)
    return result


def _fold_candle_partition(lake: Lake, partition: str, raw_keys: List[str]) -> TransformResult:
    part = _candle_partition(lake, partition, raw_keys)
    crash_point("curated")
    unmark(lake, raw_keys, part.missing_raw)
    return part


def _map_partitions(fn: Any, items: List[Any]) -> Iterable[TransformResult]:
    """fn over items, results in order; a small thread pool when there is more than one."""
    if len(items) <= 1:
        return [fn(item) for item in items]  # the 5-minute tick: no pool to start
    with ThreadPoolExecutor(max_workers=TRANSFORM_WORKERS) as pool:
        return list(pool.map(fn, items))


def unmark(lake: Lake, raw_keys: Sequence[str], missing: Sequence[str]) -> None:
    """Delete the pending markers of raw files now in curated, and of raw files that never came."""
    now = int(time.time() * 1000)
    for key in raw_keys:
        if key in missing and now - _marker_time(lake, key) < MARKER_GRACE_MS:
            continue  # its raw file may still be on its way: the next transform takes it
        lake.delete(layout.pending_key(key))


def _marker_time(lake: Lake, raw_key: str) -> int:
    try:
        return int(lake.read_bytes(layout.pending_key(raw_key)) or b"0")
    except (KeyError, ValueError):
        return 0  # gone, or an old empty marker: old enough


def _candle_partition(lake: Lake, partition: str, raw_keys: List[str]) -> TransformResult:
    _, interval, symbol, date = layout.candle_partition_of_raw(raw_keys[0])
    try:
        reads = [read_stored(lake, partition, CANDLES)]  # before the pages: an unreadable one is rebuilt instead
        result = TransformResult(partitions=[partition])
        pages = _page_tables(lake, partition, symbol, interval, date, raw_keys, result)

        def attempt() -> Optional[pa.Table]:
            # After a conflict, read again: these pages are merged over the winner's rows.
            stored = reads.pop() if reads else read_stored(lake, partition, CANDLES)
            merged = _merge_candles(stored.rows, pages, raw_keys)
            if merged is not None:
                write_partition(lake, partition, merged, stored.version)
            return merged

        merged = retry_on_conflict(partition, attempt)
    except Rejected as exc:
        log.warning("%s: %s; rebuilding it from raw", partition, exc)
        return _rebuild_candle_day(lake, symbol, interval, date, StoredArchive(lake, symbol, interval), raw_keys)
    _count_written(result, symbol, merged)
    return result


def _page_tables(lake: Lake, partition: str, symbol: str, interval: str, date: str, raw_keys: Sequence[str],
                 result: TransformResult) -> List[pa.Table]:
    """Each REST page's rows in key order (rejects quarantined once, whatever the retries)."""
    tables = []
    for key in raw_keys:
        batch = gather(lake, [key], CANDLES.name, result)
        new, rejected = candles_table(symbol, interval, batch.rows, batch.ingested_at, batch.source_keys, date)
        quarantine_rows(lake, partition, key, rejected)
        result.quarantined_rows += len(rejected)
        tables.append(new)
    return tables


def _merge_candles(base: Optional[pa.Table], pages: List[pa.Table], raw_keys: Sequence[str]) -> Optional[pa.Table]:
    """``base`` rows, then the pages (a later one wins a minute), merged; None: nothing to write."""
    tables = ([] if base is None else [base]) + pages
    if not tables:
        return None
    combined = pa.concat_tables(tables)
    if combined.num_rows == 0 and not raw_keys:
        return None  # no source holds this day (an archive file's pre-listing days)
    return dedupe(combined, CANDLES)


def _count_written(result: TransformResult, symbol: str, merged: Optional[pa.Table]) -> None:
    if merged is None:
        return
    result.rows_written += merged.num_rows
    if merged.num_rows:
        last = pc.max(merged["candle_close_time"]).cast(pa.int64()).as_py()
        result.last_candle_close[symbol] = last


# -- rebuild: every source of a day, once ------------------------------------------------------


def rebuild_candles(lake: Lake, symbol: str, interval: str = "1m", dates: Optional[Sequence[str]] = None
                    ) -> TransformResult:
    """Rewrite curated candle partitions from all of their sources, each read once.

    A day's sources are the verified archive files stored in the lake (their share of the
    day) and every REST raw page of the day, in that order (a REST page fetched later wins
    a minute both hold). Without ``dates``: every day either source covers.
    """
    archive = StoredArchive(lake, symbol, interval)
    if dates is None:
        rest_days = [layout.value_of(d) for d in lake.list_children(layout.raw_prefix(CANDLES, interval=interval,
                                                                                      symbol=symbol))]
        dates = sorted(set(rest_days) | set(archive.days()))
    result = TransformResult()
    with lake_lock(lake, CANDLES.name, symbol):
        for date in dates:  # in order, so each archive zip is parsed once (StoredArchive keeps it)
            result.add(_rebuild_candle_day(lake, symbol, interval, date, archive))
    return result


def _rebuild_candle_day(lake: Lake, symbol: str, interval: str, date: str, archive: StoredArchive,
                        known_keys: Sequence[str] = ()) -> TransformResult:
    """One day from its sources; the caller holds the symbol's lock.

    The partition's version is taken before the raw pages are listed: a writer that folds a page
    this listing missed writes after that, so this write then fails and the day is derived again.
    """
    partition = layout.partition(CANDLES, interval=interval, symbol=symbol, date=date)
    raw_dir = layout.raw_partition(CANDLES.name, symbol, date, interval)

    def attempt() -> Tuple[TransformResult, List[str]]:
        version = lake.version_of(layout.part_key(partition))
        raw_keys = sorted(set(known_keys) | set(lake.list_keys(raw_dir)))
        result = TransformResult(partitions=[partition], rebuilt=[partition])
        pages = _page_tables(lake, partition, symbol, interval, date, raw_keys, result)
        merged = _merge_candles(archive.rows(date), pages, raw_keys)
        if merged is not None:
            write_partition(lake, partition, merged, version)
        _count_written(result, symbol, merged)
        return result, raw_keys

    result, raw_keys = retry_on_conflict(partition, attempt)
    crash_point("curated")
    unmark(lake, raw_keys, result.missing_raw)
    return result


# -- backfill: one verified archive file ---------------------------------------------------------


def fold_archive_file(lake: Lake, f: ArchiveFile, raw: pa.Table, downloaded_at: int, first: bool,
                      replaced: bool, result: FileResult) -> None:
    """One archive file's rows -> its UTC days' curated partitions, plus its exchange gaps.

    Under the symbol's lock, like every curated write: a sync's tick folding REST pages of
    the same days waits, then merges over what this wrote (and the other way round).
    """
    table, rejected = candles_from_arrow(f.symbol, f.interval, raw, downloaded_at, f.key)
    lo, hi = f.span
    open_ms = table["candle_open_time"].cast(pa.int64())
    inside = pc.and_(pc.greater_equal(open_ms, lo), pc.less(open_ms, hi))
    if not pc.all(inside).as_py():
        stray = table.filter(pc.invert(inside))
        rejected += [(r, f"open time outside {f.name}'s period") for r in stray.to_pylist()]
        table, open_ms = table.filter(inside), open_ms.filter(inside)
    with lake_lock(lake, CANDLES.name, f.symbol):
        quarantine_rows(lake, layout.partition(CANDLES, interval=f.interval, symbol=f.symbol, date=ms_to_date(lo)),
                        f.key, rejected)
        for date, rows, ordered in split_days(table, open_ms):
            _merge_archive_day(lake, f, date, rows, ordered)
    result.rows, result.rejected = table.num_rows, len(rejected)
    result.exchange_gaps = file_gaps(open_ms, lo, hi, interval_ms(f.interval), first)
    if replaced:
        drop_gaps_from(lake, f)  # a re-published file may have filled what the old one lacked
    for gap in result.exchange_gaps:
        record_exchange_gap(lake, f.symbol, f.interval, gap, f.key)


def _merge_archive_day(lake: Lake, f: ArchiveFile, date: str, rows: pa.Table, ordered: bool) -> None:
    partition = layout.partition(CANDLES, interval=f.interval, symbol=f.symbol, date=date)

    def attempt() -> None:
        try:
            stored = read_stored(lake, partition, CANDLES)
        except Rejected as exc:
            # Keep what the other sources hold for this day, then lay this file over it.
            log.warning("%s: %s; rebuilding it from raw before merging the archive", partition, exc)
            _rebuild_candle_day(lake, f.symbol, f.interval, date, StoredArchive(lake, f.symbol, f.interval))
            stored = _readable(lake, partition)
        existing = stored.rows
        if existing is None and ordered:
            merged = rows  # strictly ascending: already what dedupe would return
        elif existing is None and pc.count_distinct(rows["candle_open_time"]).as_py() == rows.num_rows:
            merged = rows.sort_by("candle_open_time")  # what dedupe returns for unique keys, without its group_by
        else:
            merged = dedupe(rows if existing is None else pa.concat_tables([existing, rows]), CANDLES)
        write_partition(lake, partition, merged, stored.version)

    retry_on_conflict(partition, attempt)


def _readable(lake: Lake, partition: str) -> StoredPartition:
    """The partition as stored; no rows (but its version, to replace it) if still unreadable."""
    try:
        return read_stored(lake, partition, CANDLES)
    except UnreadablePartition as exc:
        return StoredPartition(None, exc.version)


# -- orders ------------------------------------------------------------------------------------


def transform_orders(lake: Lake, markers: Sequence[str], rebuild: bool = False) -> TransformResult:
    result = TransformResult()
    by_symbol: Dict[str, List[str]] = defaultdict(list)
    for marker in markers:
        raw_key = layout.raw_key_of_marker(marker)
        by_symbol[layout.symbol_of(raw_key)].append(raw_key)
    for symbol, raw_keys in sorted(by_symbol.items()):
        with lake_lock(lake, ORDERS.name, symbol):  # see transform_candles
            part = _orders_symbol(lake, symbol, sorted(raw_keys), rebuild)
            crash_point("curated")
            unmark(lake, raw_keys, part.missing_raw)
        result.add(part)
    return result


def _orders_symbol(lake: Lake, symbol: str, raw_keys: List[str], rebuild: bool) -> TransformResult:
    result = TransformResult()
    batch = gather(lake, raw_keys, ORDERS.name, result)
    new, rejected = orders_table(batch.rows, batch.ingested_at, batch.source_keys)
    wrong_symbol = pc.not_equal(new[ORDERS.symbol_column], symbol)
    if new.num_rows and pc.any(wrong_symbol).as_py():
        rejected += [(r, f"symbol is not {symbol}") for r in new.filter(wrong_symbol).to_pylist()]
        new = new.filter(pc.invert(wrong_symbol))
    quarantine_rows(lake, layout.partition_prefix(ORDERS, symbol=symbol), raw_keys[0] if raw_keys else "x", rejected)
    result.quarantined_rows += len(rejected)
    dates = _dates(new, ORDERS).to_pylist() if new.num_rows else []
    index = read_orders_index(lake, symbol)
    open_ids = set(index.get("open_order_ids", []))
    max_id = int(index.get("max_order_id", -1))
    # Only history pages that were actually read (not quarantined) advance the cursor.
    through = max([int(index.get("history_through", -1)),
                   *(i for i in map(history_page_last_id, set(batch.source_keys)) if i is not None)])
    for date in sorted(set(dates)):
        partition = layout.partition(ORDERS, symbol=symbol, date=date)
        part_new = new.filter(pc.equal(pa.array(dates), date))
        merged = _merge_orders(lake, partition, part_new, rebuild, result)
        result.partitions.append(partition)
        result.rows_written += merged.num_rows
        for oid, status in zip(merged[ORDERS.key_in_symbol].to_pylist(), merged["status"].to_pylist()):
            (open_ids.add if status in OPEN_ORDER_STATUSES else open_ids.discard)(oid)
            max_id = max(max_id, oid)
    if dates or not index:
        body = {"symbol": symbol, "history_through": through, "max_order_id": max_id,
                "open_order_ids": sorted(open_ids), "updated_at": int(time.time() * 1000)}
        lake.write_bytes(layout.orders_index_key(symbol), json.dumps(body).encode())
    return result


def _dates(t: pa.Table, table: Table) -> pa.Array:
    """The UTC date partition of each row, from the table's time column."""
    return pc.strftime(t[table.time_column], format="%Y-%m-%d")


def _merge_orders(lake: Lake, partition: str, new: pa.Table, rebuild: bool, result: TransformResult) -> pa.Table:
    tries = 0

    def attempt() -> pa.Table:
        nonlocal tries
        tries += 1
        if rebuild and tries == 1:
            existing, version = None, lake.version_of(layout.part_key(partition))
        else:  # after a conflict a rebuild too merges over what the other writer wrote: nothing dropped
            try:
                stored = read_stored(lake, partition, ORDERS)
                existing, version = stored.rows, stored.version
            except UnreadablePartition as exc:
                # Orders of one creation date may come from many raw pages: rebuild from all of them.
                log.warning("%s: %s; rebuilding orders of this symbol from raw", partition, exc)
                result.rebuilt.append(partition)
                existing, version = _orders_from_all_raw(lake, partition, result), exc.version
        combined = new if existing is None else pa.concat_tables([existing, new])
        merged = dedupe(combined, ORDERS)
        write_partition(lake, partition, merged, version)
        return merged

    return retry_on_conflict(partition, attempt)


def _orders_from_all_raw(lake: Lake, partition: str, result: TransformResult) -> pa.Table:
    symbol, date = layout.symbol_of(partition), layout.date_of(partition)
    keys = lake.list_keys(layout.raw_prefix(ORDERS, symbol=symbol))
    batch = gather(lake, keys, ORDERS.name, result)
    t, _ = orders_table(batch.rows, batch.ingested_at, batch.source_keys)
    if t.num_rows == 0:
        return t
    return t.filter(pc.equal(_dates(t, ORDERS), date))


def rebuild_orders(lake: Lake, symbol: str) -> TransformResult:
    lake.delete(layout.orders_index_key(symbol))
    return transform_orders(lake, lake.list_keys(layout.raw_prefix(ORDERS, symbol=symbol)), rebuild=True)


def last_closed_candle(lake: Lake, symbol: str, interval: str = "1m") -> Optional[int]:
    """Close time (ms) of the newest curated candle, reading one partition."""
    base = layout.partition_prefix(CANDLES, interval=interval, symbol=symbol)
    for date_dir in reversed(lake.list_children(base)):
        try:
            t = read_partition(lake, layout.child(base, date_dir), CANDLES)
        except Rejected:
            continue
        if t is not None and t.num_rows:
            return pc.max(t["candle_close_time"]).cast(pa.int64()).as_py()
    return None
