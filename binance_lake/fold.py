"""Fold: the one writer of curated partitions.

Sources bring data into raw (REST pages, verified archive zips); the fold turns them into
curated Parquet, and nothing else writes ``curated/``. Every write happens under the
per-(table, symbol) lease of :mod:`binance_lake.lock`, so the sync's transform tick, a
backfill's archive files, ``transform --rebuild`` and verify's repair can run at the same
time without one overwriting the rows another merged (the transform tick holds one lease for
its whole run, standing for the pair leases of its symbols: ``lock.run_lock``).

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

import hashlib
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
from binance_lake.columns import (
    arrow_schema,
    candles_from_arrow,
    candles_table,
    dedupe,
    orders_table,
    row_values,
    trades_table,
)
from binance_lake.crash import crash_point, pause_point
from binance_lake.errors import Rejected, WriteConflict
from binance_lake.lake import Lake, Version
from binance_lake.lock import check_held, lake_lock, run_lock
from binance_lake.schema import CANDLES, OPEN_ORDER_STATUSES, ORDERS, TRADES, Table
from binance_lake.sources.archive import (
    ArchiveFile,
    FileResult,
    StoredArchive,
    drop_gaps_from,
    file_gaps,
    split_days,
)
from binance_lake.sources.coverage import record_exchange_gap
from binance_lake.sources.rest.orders import history_page_last_id, read_orders_indexes
from binance_lake.sources.rest.raw import read_raw
from binance_lake.sources.rest.trades import history_page_last_id as trades_history_last_id
from binance_lake.sources.rest.trades import read_trades_indexes
from binance_lake.times import MS_PER_DAY, date_to_ms, ms_to_date

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
    unusable_raw: List[str] = field(default_factory=list)  # raw pages that do not parse (now in quarantine/)
    unexplained_rows: int = 0  # curated rows no readable source explains, kept (never dropped by a rebuild)
    migrated: int = 0  # old-layout day partitions folded into their month partition and removed

    @property
    def needs_attention(self) -> bool:
        """A source could not be read, or curated holds rows no source explains (exit 6, like verify)."""
        return bool(self.unusable_raw or self.unexplained_rows)

    def add(self, other: TransformResult) -> None:
        self.missing_raw += other.missing_raw
        self.unusable_raw += other.unusable_raw
        self.unexplained_rows += other.unexplained_rows
        self.migrated += other.migrated
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
                "rebuilt": self.rebuilt, "unusable_raw": self.unusable_raw,
                "unexplained_rows": self.unexplained_rows, "migrated_day_partitions": self.migrated}


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
            result.unusable_raw.append(key)
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
        # One file: ParquetFile, not read_table, whose dataset layer (pyarrow._dataset) imports
        # pandas when installed, ~0.3-0.5 s of the 1-symbol tick (docs/benchmarks.md, Issue 21).
        t = pq.ParquetFile(io.BytesIO(data)).read()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise UnreadablePartition(f"unreadable Parquet ({type(exc).__name__})", version) from None
    if t.schema.remove_metadata() != arrow_schema(table).remove_metadata():
        raise UnreadablePartition("schema differs from binance_lake.schema", version)
    return StoredPartition(t, version)


def read_partition(lake: Lake, partition: str, table: Table) -> Optional[pa.Table]:
    """The partition's rows, for readers; None if absent. Raises ``Rejected`` if unreadable or of
    another schema. A writer reads with :func:`read_stored` (it needs the version)."""
    return read_stored(lake, partition, table).rows


def write_partition(lake: Lake, partition: str, t: pa.Table, version: Version) -> Version:
    """Replace a partition whole, only if it still is ``version`` (what the caller read; None:
    create only). Raises ``WriteConflict`` if another writer got in between (run the caller's
    read-merge-write again: :func:`retry_on_conflict`), ``LeaseLost`` if this process's lease on
    the partition's (table, symbol) was taken over."""
    pause_point("curated-merge", partition)  # test hook: every caller has read and merged by now
    check_held(lake, partition.split("/")[1], layout.symbol_of(partition))  # curated/<table>/...
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    return lake.write_if_version(layout.part_key(partition), buf.getvalue(), version)


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


def transform_pending(lake: Lake, tables: Sequence[str] = ("candles", "orders", "trades"),
                      symbols: Optional[Sequence[str]] = None) -> TransformResult:
    """Fold every raw file named by a pending marker into curated; delete those markers.

    Under one lease for the whole run (``lock.run_lock``), standing for the (table, symbol) lock
    of every pair with pending work: a steady tick's lock requests do not grow with the symbols
    (issue 21, lever 4). No pending work: no lease at all."""
    folds: Sequence[Tuple[Table, Callable[[Lake, Sequence[str]], TransformResult]]] = (
        (CANDLES, transform_candles), (ORDERS, transform_orders), (TRADES, transform_trades))
    steps = [(table, fold_table, pending_markers(lake, table, symbols)) for table, fold_table in folds
             if table.name in tables]
    scope = {(table.name, layout.symbol_of(layout.raw_key_of_marker(m))) for table, _, markers in steps
             for m in markers}
    result = TransformResult()
    if not scope:
        return result
    with run_lock(lake, scope):
        for _, fold_table, markers in steps:
            result.add(fold_table(lake, markers))
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
        # Curated partitions of the old layout too (day partitions of a month-grain interval):
        # the rebuild is what moves them to their month, whatever raw still holds.
        old = [v for v in curated_periods(lake, symbol, interval) if layout.is_old_layout(interval, v)]
        dates = sorted({layout.period_of_value(d, interval) for d in [*rest_days, *old]} | set(archive.days()))
    else:
        dates = sorted({layout.period_of_value(d, interval) for d in dates})
    result = TransformResult()
    with lake_lock(lake, CANDLES.name, symbol):
        archive.check()  # a damaged stored zip stops the rebuild before it writes anything (DamagedFileError)
        for date in dates:  # in order, so each archive zip is parsed once (StoredArchive keeps it)
            result.add(_rebuild_candle_day(lake, symbol, interval, date, archive))
    return result


def _rebuild_candle_day(lake: Lake, symbol: str, interval: str, date: str, archive: StoredArchive,
                        known_keys: Sequence[str] = ()) -> TransformResult:
    """One partition (a day, or a month: ``date`` is its value) from its sources; the caller holds
    the symbol's lock.

    The partition's version is taken before the raw pages are listed: a writer that folds a page
    this listing missed writes after that, so this write then fails and the day is derived again.

    Migration: for an interval with month partitions, the day partitions an older version wrote
    inside the month are read as the month's existing rows (what no source explains is kept), and
    deleted only once the month partition holding their rows is durable (``Lake.sync``): a crash
    in between leaves both, the same candles twice until the next rebuild, never a lost row.
    """
    partition = layout.candle_partition(symbol, interval, date)
    old = old_day_partitions(lake, symbol, interval, date)

    def attempt() -> Tuple[TransformResult, Derivation]:
        version = lake.version_of(layout.part_key(partition))
        result = TransformResult(partitions=[partition], rebuilt=[partition])
        derived = derive_candle_day(lake, symbol, interval, date, archive, known_keys)
        write_derived(lake, partition, CANDLES, derived.days.get(date), derived, result, version, also=old)
        return result, derived

    result, derived = retry_on_conflict(partition, attempt)
    crash_point("curated")
    if old:
        lake.sync()  # the month partition is on disk before the day files it replaces go
        crash_point("migrate")
        for day_partition in old:
            lake.delete(layout.part_key(day_partition))
        result.migrated += len(old)
    unmark(lake, derived.keys, result.missing_raw)
    return result


def curated_periods(lake: Lake, symbol: str, interval: str) -> List[str]:
    """The ``date=`` values of the curated candle partitions of (symbol, interval) that hold a
    file (a local lake keeps the directory of a partition whose file was moved out)."""
    return layout.curated_candle_periods(lake.list_keys(layout.partition_prefix(CANDLES, interval=interval,
                                                                                symbol=symbol)))


def old_day_partitions(lake: Lake, symbol: str, interval: str, period: str) -> List[str]:
    """Curated day partitions inside month ``period`` of a month-grain interval (the layout
    before intervals from 1h got month partitions); none for a day-grain interval."""
    if not layout.is_month(period):
        return []
    return [layout.partition(CANDLES, interval=interval, symbol=symbol, date=v)
            for v in curated_periods(lake, symbol, interval)
            if layout.is_old_layout(interval, v) and v.startswith(period + "-")]


# -- the one derivation of curated from raw: rebuild writes it, verify compares with it -----------


@dataclass
class Derivation:
    """Curated partitions as their sources derive them, with what could not be used.

    The one rule: ``transform --rebuild`` (and any partition found unreadable) writes it,
    ``verify`` compares curated with it, so the two can never disagree on what raw says.
    Side-effect free: writing, quarantining and unmarking are the caller's.
    """

    days: Dict[str, pa.Table] = field(default_factory=dict)  # date -> rows, deduplicated
    keys: List[str] = field(default_factory=list)  # every raw page listed or named
    unusable: Dict[str, str] = field(default_factory=dict)  # raw page -> why it cannot be read
    missing: List[str] = field(default_factory=list)  # named pages that are not there (in flight)
    rejected: List[Tuple[str, List[Tuple[Any, str]]]] = field(default_factory=list)  # (source, rows, reasons)
    sources: List[str] = field(default_factory=list)  # pages that gave rows

    @property
    def rejected_rows(self) -> int:
        return sum(len(rows) for _, rows in self.rejected)

    def read(self, lake: Lake, table: str) -> Iterable[Tuple[str, int, List[Any]]]:
        """(key, fetched_at, rows) of each readable page of ``self.keys``, in key order."""
        for key in self.keys:
            try:
                fetched_at, rows = read_raw(lake, key, table)
            except KeyError:
                self.missing.append(key)
                continue
            except Rejected as exc:
                self.unusable[key] = str(exc)
                continue
            if rows:
                self.sources.append(key)
            yield key, fetched_at, rows


def derive_candle_day(lake: Lake, symbol: str, interval: str, date: str, archive: Optional[StoredArchive],
                      known_keys: Sequence[str] = ()) -> Derivation:
    """A day's candles from all of its sources: the stored archive share (checked against its
    sha256; a damaged zip raises ``DamagedFileError``), then each REST page of the day in key
    order, deduplicated on open time (a later fetch wins a minute both hold).
    ``archive=None``: the REST pages alone (``verify --against-archive``)."""
    out = Derivation(keys=sorted(set(known_keys) | {k for d in _raw_dirs(lake, symbol, interval, date)
                                                     for k in lake.list_keys(d)}))
    rows = archive.rows(date) if archive is not None else None
    for key, fetched_at, page in out.read(lake, CANDLES.name):
        new, rejected = candles_table(symbol, interval, page, [fetched_at] * len(page), [key] * len(page), date)
        if rejected:
            out.rejected.append((key, rejected))
        rows = new if rows is None else pa.concat_tables([rows, new])
    if rows is not None and (rows.num_rows or out.keys):  # an archive file's pre-listing day has no partition
        out.days[date] = dedupe(rows, CANDLES)
    return out


def _raw_dirs(lake: Lake, symbol: str, interval: str, period: str) -> List[str]:
    """The raw REST directories whose pages hold candles of partition ``period``: the day's own,
    or for a month every raw directory of the month (pages an older version filed by day too)."""
    if not layout.is_month(period):
        return [layout.raw_partition(CANDLES.name, symbol, period, interval)]
    base = layout.raw_prefix(CANDLES, interval=interval, symbol=symbol)
    return [layout.child(base, d) for d in lake.list_children(base)
            if layout.period_of_value(layout.value_of(d), interval) == period]


def derive_orders(lake: Lake, symbol: str, dates: Optional[Sequence[str]] = None) -> Derivation:
    """Orders by creation date from the symbol's raw pages (every date, or only ``dates``).

    Raw order pages are filed by fetch date, and an order is fetched after it is created, so
    an order created on day D is taken only from pages filed on D-1 or later (one day of slack
    for a fetching clock behind Binance's). For ``dates`` only those pages are read; with all
    dates the same rule is applied per row, so a rebuild and a verify of one day agree.
    """
    base = layout.raw_prefix(ORDERS, symbol=symbol)
    first = ms_to_date(date_to_ms(min(dates)) - MS_PER_DAY) if dates else ""
    out = Derivation(keys=sorted(k for d in lake.list_children(base) if "date" in layout.values_of(d)
                                 and layout.value_of(d) >= first for k in lake.list_keys(layout.child(base, d))))
    rows: List[Any] = []
    fetched: List[int] = []
    keys: List[str] = []
    for key, fetched_at, page in out.read(lake, ORDERS.name):
        rows += page
        fetched += [fetched_at] * len(page)
        keys += [key] * len(page)
    new, rejected = orders_table(rows, fetched, keys)
    rejected = list(rejected)
    if new.num_rows:
        wrong = pc.not_equal(new[ORDERS.symbol_column], symbol)
        day = _dates(new, ORDERS)
        page_day = pc.struct_field(pc.extract_regex(new["source_key"], r"date=(?P<d>\d{4}-\d{2}-\d{2})"), "d")
        too_early = pc.less(page_day, pc.strftime(pc.subtract(new[ORDERS.time_column],
                                                              pa.scalar(MS_PER_DAY, pa.duration("ms"))),
                                                  format="%Y-%m-%d"))
        rejected += [(r, f"symbol is not {symbol}") for r in new.filter(wrong).to_pylist()]
        rejected += [(r, "order created more than a day after the page holding it was fetched")
                     for r in new.filter(pc.and_(pc.invert(wrong), too_early)).to_pylist()]
        keep = pc.invert(pc.or_(wrong, too_early))
        new, day = new.filter(keep), day.filter(keep)
        for date in sorted(set(day.to_pylist())):
            if dates is None or date in dates:
                out.days[date] = dedupe(new.filter(pc.equal(day, date)), ORDERS)
    if rejected:
        out.rejected.append((out.keys[0] if out.keys else "orders", rejected))
    return out


def keep_unexplained(existing: Optional[pa.Table], derived: Optional[pa.Table], table: Table
                     ) -> Tuple[Optional[pa.Table], Optional[pa.Table]]:
    """(derived plus the existing rows whose key no source derives, those rows).

    A row curated holds but raw cannot explain (its page does not parse, or is gone) may have
    no other copy: a rebuild keeps it, as verify's repair does, and reports it.
    """
    if existing is None or existing.num_rows == 0:
        return derived, None
    key = table.key_in_symbol
    unexplained = existing if derived is None or derived.num_rows == 0 else existing.filter(
        pc.invert(pc.is_in(existing[key], value_set=derived[key].cast(existing[key].type))))
    if unexplained.num_rows == 0:
        return derived, None
    base = derived if derived is not None else arrow_schema(table).empty_table()
    return dedupe(pa.concat_tables([base, unexplained.cast(base.schema)]), table), unexplained


def write_derived(lake: Lake, partition: str, table: Table, rows: Optional[pa.Table], derived: Derivation,
                  result: TransformResult, version: Version, also: Sequence[str] = ()) -> Optional[pa.Table]:
    """Write a derived partition, keeping the curated rows no source explains; quarantine what
    the derivation could not use. Returns what was written (None: no source holds this day).
    ``version``: the partition's, taken before the derivation listed raw (``WriteConflict`` if
    another writer wrote it since: derive again). ``also``: partitions whose rows count as this
    one's existing rows (the old day partitions a month partition replaces)."""
    account(lake, partition, derived, result)
    result.rows_in += rows.num_rows if rows is not None else 0
    existing = [t for t in (_existing(lake, p, table) for p in [partition, *also]) if t is not None]
    merged, kept = keep_unexplained(pa.concat_tables(existing) if existing else None, rows, table)
    if kept is not None:
        result.unexplained_rows += kept.num_rows
        log.warning("%s: kept %d curated row(s) that no readable raw file explains (%s)", partition,
                    kept.num_rows, ", ".join(sorted(set(kept["source_key"].to_pylist()))[:3]))
    if merged is None:
        return None
    merged = merged.cast(arrow_schema(table))
    write_partition(lake, partition, merged, version)
    result.rows_written += merged.num_rows
    if table is CANDLES and merged.num_rows:
        result.last_candle_close[layout.symbol_of(partition)] = pc.max(
            merged["candle_close_time"]).cast(pa.int64()).as_py()
    return merged


def account(lake: Lake, partition: str, derived: Derivation, result: TransformResult) -> None:
    """Quarantine the rows and raw pages a derivation could not use (once), and report them."""
    for source, rejected in derived.rejected:
        quarantine_rows(lake, partition, source, rejected)
        result.quarantined_rows += len(rejected)
    derived.rejected = []  # one derivation may feed many partitions (orders): quarantine once
    for key, reason in derived.unusable.items():
        quarantine_file(lake, key, reason)
        result.quarantined_files += 1
        result.unusable_raw.append(key)
    derived.unusable = {}
    result.missing_raw += [k for k in derived.missing if k not in result.missing_raw]


def _existing(lake: Lake, partition: str, table: Table) -> Optional[pa.Table]:
    """The partition's rows, for the keep rule; an unreadable file is copied to quarantine first
    (it may hold rows raw lacks) and counts as absent."""
    try:
        return read_partition(lake, partition, table)
    except Rejected as exc:
        log.warning("%s: %s; a copy is kept in quarantine before it is rebuilt", partition, exc)
        copy = layout.quarantine_rows_key(partition, f"rebuild-{int(time.time() * 1000)}-{layout.PART_NAME}")
        lake.write_bytes(copy, lake.read_bytes(layout.part_key(partition)))
        return None


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
        quarantine_rows(lake, layout.candle_partition(f.symbol, f.interval, layout.period_of(lo, f.interval)),
                        f.key, rejected)
        for date, rows, ordered in split_days(table, open_ms, f.interval):
            _merge_archive_day(lake, f, date, rows, ordered)
    result.rows, result.rejected = table.num_rows, len(rejected)
    result.exchange_gaps = file_gaps(open_ms, lo, hi, f.interval, first)
    if replaced:
        drop_gaps_from(lake, f)  # a re-published file may have filled what the old one lacked
    for gap in result.exchange_gaps:
        record_exchange_gap(lake, f.symbol, f.interval, gap, f.key)


def _merge_archive_day(lake: Lake, f: ArchiveFile, date: str, rows: pa.Table, ordered: bool) -> None:
    partition = layout.candle_partition(f.symbol, f.interval, date)

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
    """Each symbol's pages folded under its lock, then one write of the orders index for every
    symbol (issue 21 lever 7: 1 read + 1 write a tick instead of one of each per symbol)."""
    if not markers:  # a tick with candles only: no index read
        return TransformResult()
    indexes, _ = read_orders_indexes(lake)
    updates: Dict[str, IndexUpdate] = {}
    result = _transform_per_symbol(lake, ORDERS, markers, lambda sym, keys: _orders_symbol(
        lake, sym, keys, rebuild, indexes.get(sym, {}), updates))
    # After the markers are gone: a crash before this write leaves the cursor behind what curated
    # holds, so the next extract re-pages those orders (the fold keeps one row each), never skips one.
    if updates:
        update_orders_indexes(lake, updates)
    return result


def _transform_per_symbol(lake: Lake, table: Table, markers: Sequence[str],
                          fold_symbol: Callable[[str, List[str]], TransformResult]) -> TransformResult:
    """The account tables' tick: each symbol's marked raw pages folded under that symbol's lock
    (see transform_candles), then their markers deleted."""
    result = TransformResult()
    by_symbol: Dict[str, List[str]] = defaultdict(list)
    for marker in markers:
        raw_key = layout.raw_key_of_marker(marker)
        by_symbol[layout.symbol_of(raw_key)].append(raw_key)
    for symbol, raw_keys in sorted(by_symbol.items()):
        with lake_lock(lake, table.name, symbol):
            part = fold_symbol(symbol, sorted(raw_keys))
            crash_point("curated")
            unmark(lake, raw_keys, part.missing_raw)
        result.add(part)
    return result


def _symbol_rows(lake: Lake, table: Table, symbol: str, raw_keys: List[str], convert: Callable[..., Any],
                 result: TransformResult) -> Tuple[pa.Table, RawBatch]:
    """One symbol's raw pages as typed rows; rows that break a type, or name another symbol, are
    quarantined (a page is filed under the symbol it was asked for)."""
    batch = gather(lake, raw_keys, table.name, result)
    new, rejected = convert(batch.rows, batch.ingested_at, batch.source_keys)
    wrong_symbol = pc.not_equal(new[table.symbol_column], symbol)
    if new.num_rows and pc.any(wrong_symbol).as_py():
        rejected += [(r, f"symbol is not {symbol}") for r in new.filter(wrong_symbol).to_pylist()]
        new = new.filter(pc.invert(wrong_symbol))
    quarantine_rows(lake, layout.partition_prefix(table, symbol=symbol), raw_keys[0] if raw_keys else "x", rejected)
    result.quarantined_rows += len(rejected)
    return new, batch


IndexUpdate = Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]  # a symbol's entry -> new entry (None: drop)


def _orders_symbol(lake: Lake, symbol: str, raw_keys: List[str], rebuild: bool, index: Dict[str, Any],
                   updates: Dict[str, IndexUpdate]) -> TransformResult:
    """Fold one symbol's pages; its index change goes into ``updates`` (written once per run).
    ``index``: the symbol's entry as read at the start of the run (a hint, see _drop_unchanged)."""
    result = TransformResult()
    new, batch = _symbol_rows(lake, ORDERS, symbol, raw_keys, orders_table, result)
    if not rebuild:
        new = _drop_unchanged(lake, symbol, new, index)
    dates = _dates(new, ORDERS).to_pylist() if new.num_rows else []
    written: Dict[str, Tuple[pa.Table, Version]] = {}
    for date in sorted(set(dates)):
        partition = layout.partition(ORDERS, symbol=symbol, date=date)
        part_new = new.filter(pc.equal(pa.array(dates), date))
        written[date] = _merge_orders(lake, partition, part_new, rebuild, result)
        result.partitions.append(partition)
        result.rows_written += written[date][0].num_rows
    if dates or not index or _history_through(index, batch.source_keys) > int(index.get("history_through", -1)):
        keys = list(batch.source_keys)
        updates[symbol] = lambda old: _index_entry(symbol, old, written, keys)
    return result


def update_orders_indexes(lake: Lake, updates: Dict[str, IndexUpdate]) -> None:
    update_index_object(lake, layout.orders_index_key(), lambda: read_orders_indexes(lake), updates)


def update_index_object(lake: Lake, key: str, read: Callable[[], Tuple[Dict[str, Dict[str, Any]], Version]],
                        updates: Dict[str, IndexUpdate]) -> None:
    """Apply each symbol's change to one index object, over the version read (compare-and-swap):
    a writer of other symbols that got in between is re-read and the changes applied again."""

    def attempt() -> None:
        entries, version = read()
        for symbol, change in updates.items():
            entry = change(entries.get(symbol, {}))
            if entry is None:
                entries.pop(symbol, None)
            else:
                entries[symbol] = entry
        body = {"symbols": dict(sorted(entries.items())), "updated_at": int(time.time() * 1000)}
        lake.write_if_version(key, json.dumps(body).encode(), version)

    retry_on_conflict(key, attempt)


def _history_through(index: Dict[str, Any], source_keys: Iterable[str]) -> int:
    """The orders cursor: only history pages that were actually read (not quarantined) advance it."""
    return max([int(index.get("history_through", -1)),
                *(i for i in map(history_page_last_id, set(source_keys)) if i is not None)])


# -- orders: rewrite only the days whose rows changed (issue 21 lever 6) -----------------------
#
# Every tick re-fetches each open order; unchanged, it is the same row (ORDERS.first_fetch_lineage:
# it keeps its first fetch's lineage), so its day need not be read or rewritten. The orders index
# records, for each open order, its day, a digest of its values and its lineage, and for each such
# day the partition version written with it. A fetched row is dropped before the merge only if
# all of that matches and the partition is still that version (one HEAD per day): then the merge
# would return the partition unchanged. Anything else (a repair, a rebuild, a lost lease, an index
# from before this rule) fails the version check and the row is merged as before.


def _drop_unchanged(lake: Lake, symbol: str, new: pa.Table, index: Dict[str, Any]) -> pa.Table:
    states, versions = index.get("open_states"), index.get("open_days")
    if not isinstance(states, dict) or not isinstance(versions, dict) or not new.num_rows:
        return new
    rows = _order_states(new)
    candidate = [_same_as_recorded(states.get(str(oid)), day, digest, ing, src)
                 for oid, day, digest, ing, src in rows]
    # A day with any changed row is read and rewritten anyway (its unchanged rows merge to
    # themselves): only days whose every fetched row is unchanged are worth a HEAD.
    days = {row[1] for row, c in zip(rows, candidate) if c} - {row[1] for row, c in zip(rows, candidate) if not c}
    if not days:
        return new
    current = {d: lake.version_of(layout.part_key(layout.partition(ORDERS, symbol=symbol, date=d))) for d in days}
    same = {d for d, v in current.items() if v is not None and v == versions.get(d)}
    return new.filter(pa.array([row[1] not in same for row in rows]))


def _same_as_recorded(state: Any, day: str, digest: str, ingested_at: int, source_key: str) -> bool:
    """The row has the values the index recorded, and its fetch is not earlier than the recorded
    one (an earlier fetch, e.g. a page folded late, would become the row's lineage: merge it)."""
    if not (isinstance(state, list) and len(state) == 4):
        return False
    return state[:2] == [day, digest] and (ingested_at, source_key) >= (state[2], state[3])


def _order_states(t: pa.Table) -> List[Tuple[int, str, str, int, str]]:
    """(order id, day, values digest, ingested_at ms, source_key) of each row."""
    digests = [hashlib.sha256(v.encode()).hexdigest()[:32] for v in row_values(t, ORDERS).to_pylist()]
    return list(zip(t[ORDERS.key_in_symbol].to_pylist(), _dates(t, ORDERS).to_pylist(), digests,
                    t["ingested_at"].cast(pa.int64()).to_pylist(), t["source_key"].to_pylist()))


def _index_entry(symbol: str, index: Dict[str, Any], written: Dict[str, Tuple[pa.Table, Version]],
                 source_keys: Iterable[str]) -> Dict[str, Any]:
    """A symbol's orders cursor after the ``written`` partitions (day -> rows, version written;
    None: not known) were written from pages ``source_keys``, over its entry ``index``."""
    open_ids = set(index.get("open_order_ids", []))
    max_id = int(index.get("max_order_id", -1))
    old_states = _dict(index.get("open_states"))
    old_days = _dict(index.get("open_days"))
    states = {k: v for k, v in old_states.items() if isinstance(v, list) and v and v[0] not in written}
    days = {d: v for d, v in old_days.items() if d not in written}
    for day, (part, version) in written.items():
        for (oid, _, digest, ing, src), status in zip(_order_states(part), part["status"].to_pylist()):
            is_open = status in OPEN_ORDER_STATUSES
            (open_ids.add if is_open else open_ids.discard)(oid)
            max_id = max(max_id, oid)
            if is_open and version is not None:
                states[str(oid)] = [day, digest, ing, src]
        days[day] = version
    live = {v[0] for v in states.values()}
    return {"symbol": symbol, "history_through": _history_through(index, source_keys), "max_order_id": max_id,
            "open_order_ids": sorted(open_ids), "open_states": states,
            "open_days": {d: v for d, v in sorted(days.items()) if d in live and v is not None},
            "updated_at": int(time.time() * 1000)}


def _dict(value: Any) -> Dict[str, Any]:
    """An index field that should be an object; anything else (an older index) counts as empty."""
    return value if isinstance(value, dict) else {}


def _dates(t: pa.Table, table: Table) -> pa.Array:
    """The UTC date partition of each row, from the table's time column."""
    return pc.strftime(t[table.time_column], format="%Y-%m-%d")


def _merge_orders(lake: Lake, partition: str, new: pa.Table, rebuild: bool, result: TransformResult
                  ) -> Tuple[pa.Table, Version]:
    """``new`` over the stored partition: (the rows, the version now stored). A merge that changes
    nothing (a re-fetched row equal to the stored one keeps it) is not written."""
    tries = 0

    def attempt() -> Tuple[pa.Table, Version]:
        nonlocal tries
        tries += 1
        stored_ok = False  # existing is what the partition holds (not a rebuild's derivation)
        if rebuild and tries == 1:
            existing, version = None, lake.version_of(layout.part_key(partition))
        else:  # after a conflict a rebuild too merges over what the other writer wrote: nothing dropped
            try:
                stored = read_stored(lake, partition, ORDERS)
                existing, version, stored_ok = stored.rows, stored.version, True
            except UnreadablePartition as exc:
                # Orders of one creation date may come from many raw pages: rebuild from all of them.
                log.warning("%s: %s; rebuilding orders of this symbol from raw", partition, exc)
                result.rebuilt.append(partition)
                existing, version = _orders_from_all_raw(lake, partition, result), exc.version
        combined = new if existing is None else pa.concat_tables([existing, new])
        merged = dedupe(combined, ORDERS)
        if stored_ok and existing is not None and merged.equals(existing):
            return merged, version
        return merged, write_partition(lake, partition, merged, version)

    return retry_on_conflict(partition, attempt)


def _orders_from_all_raw(lake: Lake, partition: str, result: TransformResult) -> pa.Table:
    symbol, date = layout.symbol_of(partition), layout.date_of(partition)
    derived = derive_orders(lake, symbol, [date])
    account(lake, partition, derived, result)
    return derived.days.get(date, arrow_schema(ORDERS).empty_table())


def rebuild_orders(lake: Lake, symbol: str) -> TransformResult:
    """Rewrite every orders partition of ``symbol`` from its raw pages (:func:`derive_orders`),
    keeping curated rows no readable page explains, and the cursor from scratch."""
    base = layout.partition_prefix(ORDERS, symbol=symbol)

    def attempt() -> TransformResult:
        # Versions before the raw listing (see _rebuild_candle_day); a conflict derives all again.
        result = TransformResult()
        update_orders_indexes(lake, {symbol: lambda _old: None})
        curated = {layout.value_of(d) for d in lake.list_children(base) if "date" in layout.values_of(d)}
        versions = {d: lake.version_of(layout.part_key(layout.partition(ORDERS, symbol=symbol, date=d)))
                    for d in curated}
        derived = derive_orders(lake, symbol)
        account(lake, base, derived, result)  # rejected rows of every date, as the tick files them
        written: Dict[str, Tuple[pa.Table, Version]] = {}
        for date in sorted(set(derived.days) | curated):
            partition = layout.partition(ORDERS, symbol=symbol, date=date)
            part = write_derived(lake, partition, ORDERS, derived.days.get(date), derived, result, versions.get(date))
            result.partitions.append(partition)
            result.rebuilt.append(partition)
            if part is not None:
                written[date] = (part, None)  # version not recorded: the next tick merges these days once
        update_orders_indexes(lake, {symbol: lambda _old: _index_entry(symbol, {}, written, derived.sources)})
        crash_point("curated")
        unmark(lake, derived.keys, result.missing_raw)
        return result

    with lake_lock(lake, ORDERS.name, symbol):
        return retry_on_conflict(base, attempt)


# -- trades ------------------------------------------------------------------------------------


def transform_trades(lake: Lake, markers: Sequence[str], rebuild: bool = False) -> TransformResult:
    """Raw myTrades pages -> curated trades, one row per (symbol, trade id): a trade fetched twice
    (a rerun, an orderId page overlapping a fromId page) stays one row. Under the symbol's lock;
    then one write of the trades index for every symbol (as transform_orders)."""
    if not markers:  # a tick without trades pages: no index read
        return TransformResult()
    indexes, _ = read_trades_indexes(lake)
    updates: Dict[str, IndexUpdate] = {}
    result = _transform_per_symbol(lake, TRADES, markers, lambda sym, keys: _trades_symbol(
        lake, sym, keys, rebuild, {} if rebuild else indexes.get(sym, {}), updates))
    if updates:  # after the markers: a crash before it leaves the cursor behind (re-asked), never ahead
        update_index_object(lake, layout.trades_index_key(), lambda: read_trades_indexes(lake), updates)
    return result


def _trades_symbol(lake: Lake, symbol: str, raw_keys: List[str], rebuild: bool, index: Dict[str, Any],
                   updates: Dict[str, IndexUpdate]) -> TransformResult:
    result = TransformResult()
    new, batch = _symbol_rows(lake, TRADES, symbol, raw_keys, trades_table, result)
    dates = _dates(new, TRADES).to_pylist() if new.num_rows else []
    max_id = -1
    for date in sorted(set(dates)):
        partition = layout.partition(TRADES, symbol=symbol, date=date)
        part_new = new.filter(pc.equal(pa.array(dates), date))
        merged = _merge_trades(lake, partition, part_new, rebuild, result)
        result.partitions.append(partition)
        result.rows_written += merged.num_rows
        max_id = max(max_id, pc.max(merged[TRADES.key_in_symbol]).as_py())
    pages = [i for i in map(trades_history_last_id, set(batch.source_keys)) if i is not None]
    if dates or not index or max(pages, default=-1) > int(index.get("history_through", -1)):
        updates[symbol] = lambda old: _trades_entry(symbol, {} if rebuild else old, max_id, pages)
    return result


def _trades_entry(symbol: str, index: Dict[str, Any], max_id: int, pages: List[int]) -> Dict[str, Any]:
    """A symbol's trades cursor after folding pages whose history pages end at ``pages``."""
    return {"symbol": symbol, "history_through": max([int(index.get("history_through", -1)), *pages]),
            "max_trade_id": max(int(index.get("max_trade_id", -1)), max_id), "updated_at": int(time.time() * 1000)}


def _merge_trades(lake: Lake, partition: str, new: pa.Table, rebuild: bool, result: TransformResult) -> pa.Table:
    """``new`` over the stored partition, written only over the version read (see _merge_orders)."""
    tries = 0

    def attempt() -> pa.Table:
        nonlocal tries
        tries += 1
        if rebuild and tries == 1:
            existing, version = None, lake.version_of(layout.part_key(partition))
        else:  # after a conflict a rebuild too merges over what the other writer wrote: nothing dropped
            existing, version = _readable_or_rebuilt(lake, partition, result)
        merged = dedupe(new if existing is None else pa.concat_tables([existing, new]), TRADES)
        write_partition(lake, partition, merged, version)
        return merged

    return retry_on_conflict(partition, attempt)


def _readable_or_rebuilt(lake: Lake, partition: str, result: TransformResult) -> Tuple[Optional[pa.Table], Version]:
    """The partition's rows and version; an unreadable one is re-derived from every raw trades
    page of its day (the version is the unreadable file's, which the write replaces)."""
    try:
        stored = read_stored(lake, partition, TRADES)
        return stored.rows, stored.version
    except UnreadablePartition as exc:
        log.warning("%s: %s; rebuilding trades of this day from raw", partition, exc)
        result.rebuilt.append(partition)
        symbol, date = layout.symbol_of(partition), layout.date_of(partition)
        batch = gather(lake, lake.list_keys(layout.raw_prefix(TRADES, symbol=symbol)), TRADES.name, result)
        t, _ = trades_table(batch.rows, batch.ingested_at, batch.source_keys)
        return (t.filter(pc.equal(_dates(t, TRADES), date)) if t.num_rows else None), exc.version


def rebuild_trades(lake: Lake, symbol: str) -> TransformResult:
    """Every curated trades partition of ``symbol`` again from all of its raw pages."""
    return transform_trades(lake, lake.list_keys(layout.raw_prefix(TRADES, symbol=symbol)), rebuild=True)


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
