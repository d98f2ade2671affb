"""Rebuild-and-verify: re-derive curated partitions from raw, compare, repair, report.

For each (table, symbol, interval, date) partition of a range the rows are re-derived
exactly as ``transform --rebuild`` derives them (REST raw pages of the day plus the
verified archive zips for candles; every raw order page that can hold orders created
that day for orders), then compared with what curated holds, keyed on the table's
dedupe key, every column exact (decimals as ``Decimal``, times as instants):

* ``ok``: identical.
* ``repaired`` / ``mismatch`` (dry run): rows missing from curated, rows whose values
  differ, duplicate keys, or an unreadable file; repair rewrites the partition whole
  and atomically from the re-derived rows.
* ``raw-missing``: curated holds rows no raw file explains. They are never dropped
  silently: repair keeps them (or, with ``quarantine_unexplained``, moves them to
  ``quarantine/`` with the reason), and the run exits non-zero so a human looks.
* ``gaps``: minutes missing in both, inside the range raw claims, minus the
  exchange gaps Binance confirmed (those are not ours to fill).
* ``locked``: the symbol's transform lock could not be had in time.
* ``damaged``: a stored archive zip of the day fails its sha256 check (or does not open);
  the partition is left as it is, the message names the file and the backfill that restores
  it, and the run exits 5.

The derivation is the fold's own (:func:`binance_lake.fold.derive_candle_day`,
:func:`binance_lake.fold.derive_orders`), so verify and ``transform --rebuild`` agree on
every partition, a damaged raw page included (``raw-missing``, exit 6, for both).

Each partition is read, compared and rewritten under the same per-symbol lock as the
transform (``binance_lake.lock``), so verify never interleaves with the 5-minute run.
The lock is taken in a dry run too: it is what makes the comparison a consistent
snapshot (a transform folding new raw mid-comparison would look like a mismatch).
The lock key is created and removed again, so a dry run leaves the lake as it was.

Needs pyarrow (and boto3 for S3 and the metric) only: it runs on Glue 5.0 Spark
executors (``binance_lake.aws.spark.verify_spark``) and on one machine (CLI).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from binance_lake import layout
from binance_lake.columns import arrow_schema, candles_from_arrow
from binance_lake.errors import (
    EXIT_ATTENTION,
    EXIT_STORAGE,
    BadInputError,
    BinanceUnavailableError,
    DamagedFileError,
    LockHeldError,
    Rejected,
    StorageError,
)
from binance_lake.fold import (
    UnreadablePartition,
    derive_candle_day,
    derive_orders,
    keep_unexplained,
    old_day_partitions,
    read_partition,
    read_stored,
    retry_on_conflict,
    write_partition,
)
from binance_lake.lake import Lake
from binance_lake.lock import WAIT_S, lake_lock
from binance_lake.query import subtract_ranges
from binance_lake.reconcile import check_symbols
from binance_lake.schema import CANDLES, LINEAGE_COLUMNS, ORDERS, REDERIVED_TABLES, Table
from binance_lake.sources.archive import (
    ArchiveConfig,
    ArchiveFile,
    ChecksumMismatch,
    NotInArchive,
    StoredArchive,
    published_checksum,
    read_archive_csv,
    verified_zip,
)
from binance_lake.sources.coverage import archive_coverage, exchange_gaps, missing_ranges, raw_coverage
from binance_lake.times import MS_PER_DAY, count_candles, date_to_ms, interval_ms, ms_to_date, ms_to_iso

log = logging.getLogger(__name__)

KEYS_SHOWN = 100  # per partition and kind; the counts are always complete
EXIT_UNREPAIRED = EXIT_ATTENTION  # a mismatch was left (documented in the CLI docstring)


@dataclass(frozen=True)
class TableRule:
    """How a table's partitions are keyed (the fold's own rules, from the schema)."""

    table: Table

    @property
    def key(self) -> str:
        return self.table.key_in_symbol  # every row of a partition has one symbol


RULES = {t.name: TableRule(t) for t in (CANDLES, ORDERS)}


@dataclass(frozen=True)
class PartitionRef:
    table: str  # "candles" | "orders"
    symbol: str
    interval: str  # "" for orders
    date: str

    @property
    def path(self) -> str:
        if self.table == CANDLES.name:
            return layout.candle_partition(self.symbol, self.interval, self.date)
        return layout.partition(ORDERS, symbol=self.symbol, date=self.date)


@dataclass
class VerifyOptions:
    repair: bool = True  # False: report only (--dry-run)
    quarantine_unexplained: bool = False  # move rows raw cannot explain to quarantine/ instead of keeping them
    lock_wait_s: float = WAIT_S
    run_id: str = ""


@dataclass
class PartitionReport:
    table: str
    symbol: str
    interval: str
    date: str
    partition: str
    status: str = "ok"
    rows_curated: int = 0
    rows_derived: int = 0
    missing: int = 0
    extra: int = 0
    changed: int = 0
    duplicates: int = 0
    # Rows raw holds with the same values from a newer fetch whose pending page the next transform
    # folds (a killed or in-flight sync, a re-fetch): not a mismatch (found by tests/test_model_lake.py).
    newer_fetch: int = 0
    missing_keys: List[Any] = field(default_factory=list)
    extra_keys: List[Any] = field(default_factory=list)
    changed_keys: List[Dict[str, Any]] = field(default_factory=list)
    gaps: List[List[str]] = field(default_factory=list)
    gap_minutes: int = 0
    rejected_rows: int = 0
    unusable_raw: List[str] = field(default_factory=list)
    curated_unreadable: bool = False
    repaired: bool = False
    quarantined: Optional[str] = None
    reason: Optional[str] = None

    @property
    def differs(self) -> bool:
        return bool(self.missing or self.changed or self.duplicates or self.curated_unreadable)


# -- planning ------------------------------------------------------------------------------


def date_range(now_ms: int, days_back: int = 1, start: Optional[str] = None, end: Optional[str] = None
               ) -> List[str]:
    """UTC dates to verify: ``[start, end)`` if given, else the ``days_back`` full days before today."""
    today = now_ms - now_ms % MS_PER_DAY
    if start:
        lo = date_to_ms(start)
        hi = date_to_ms(end) if end else today
    elif end:
        raise BadInputError("--end needs --start (or use --days-back)")
    else:
        if days_back < 1:
            raise BadInputError(f"--days-back must be at least 1, got {days_back}")
        lo, hi = today - days_back * MS_PER_DAY, today
    if lo % MS_PER_DAY or hi % MS_PER_DAY:
        raise BadInputError("--start/--end are UTC dates (YYYY-MM-DD); verify works on whole days")
    if hi <= lo:
        raise BadInputError(f"empty range: --end {ms_to_date(hi)} is not after --start {ms_to_date(lo)} "
                            "(--end is exclusive)")
    return [ms_to_date(d) for d in range(lo, hi, MS_PER_DAY)]


def plan(symbols: Sequence[str], interval: str, dates: Sequence[str],
         tables: Sequence[str] = REDERIVED_TABLES) -> List[PartitionRef]:
    interval_ms(interval)  # a clear error for an unsupported interval, before any work
    unknown = sorted(set(tables) - set(REDERIVED_TABLES))
    if unknown:  # e.g. trades: never hand its partitions to the orders rule
        raise BadInputError(f"verify re-derives {', '.join(REDERIVED_TABLES)} only, not {', '.join(unknown)} "
                            "(trades are checked against their orders)")
    # Candle partitions are days or months (layout.grain): a range of days verifies the months it touches.
    periods = sorted({layout.period_of_value(d, interval) for d in dates})
    refs = [PartitionRef(t, s, interval if t == "candles" else "", d)
            for t in tables for s in symbols for d in (periods if t == "candles" else dates)]
    return sorted(refs, key=lambda r: (r.table, r.symbol, r.interval, r.date))


def symbol_context(lake: Lake, symbol: str, interval: str) -> Dict[str, Any]:
    """What every candle partition of a symbol needs: the range raw claims, the exchange gaps.

    Computed once (on the Spark driver, or once per symbol here) and passed to each partition.
    """
    spans = [s for s in (raw_coverage(lake, symbol, interval), *archive_coverage(lake, symbol, interval)) if s]
    claim = [min(s[0] for s in spans), max(s[1] for s in spans)] if spans else None
    return {"claim": claim, "exchange_gaps": [list(g) for g in exchange_gaps(lake, symbol, interval)]}


# -- re-derivation: the fold's own rule (binance_lake.fold.derive_*), without its side effects --


@dataclass
class Derived:
    rows: Optional[pa.Table]
    rejected_rows: int = 0
    unusable_raw: List[str] = field(default_factory=list)


def derive(lake: Lake, ref: PartitionRef) -> Derived:
    """The partition exactly as ``transform --rebuild`` derives it (the same function); raises
    ``DamagedFileError`` for a stored archive zip that fails its sha256 check."""
    if ref.table == "candles":
        d = derive_candle_day(lake, ref.symbol, ref.interval, ref.date,
                              StoredArchive(lake, ref.symbol, ref.interval))
    else:
        d = derive_orders(lake, ref.symbol, [ref.date])
    return Derived(d.days.get(ref.date), d.rejected_rows, sorted([*d.unusable, *d.missing]))


# -- comparison ---------------------------------------------------------------------------------


@dataclass
class Diff:
    missing: List[Any]
    extra: List[Any]
    changed: Dict[Any, List[str]]
    duplicates: int


def compare(curated: Optional[pa.Table], derived: Optional[pa.Table], key: str) -> Diff:
    """Keyed, exact comparison of every column (Decimal == Decimal, instant == instant)."""
    cur = {r[key]: r for r in curated.to_pylist()} if curated is not None else {}
    der = {r[key]: r for r in derived.to_pylist()} if derived is not None else {}
    changed = {}
    for k in sorted(cur.keys() & der.keys()):
        cols = [c for c, v in der[k].items() if cur[k].get(c) != v]
        if cols:
            changed[k] = cols
    dups = (curated.num_rows - len(cur)) if curated is not None else 0
    return Diff(sorted(der.keys() - cur.keys()), sorted(cur.keys() - der.keys()), changed, dups)


def _show(key: Any) -> Any:
    return ms_to_iso(int(key.timestamp() * 1000)) if isinstance(key, datetime) else key


# -- one partition ------------------------------------------------------------------------------


def verify_partition(lake: Lake, ref: PartitionRef, opts: VerifyOptions,
                     context: Optional[Dict[str, Any]] = None) -> PartitionReport:
    """Verify (and unless a dry run, repair) one partition under the symbol's transform lock."""
    report = PartitionReport(ref.table, ref.symbol, ref.interval, ref.date, ref.path)
    rule = RULES[ref.table]
    old = old_day_partitions(lake, ref.symbol, ref.interval, ref.date) if ref.table == CANDLES.name else []
    if old:
        # Comparing (or repairing) the month while its rows sit in day files would write them twice.
        report.status = "old-layout"
        report.reason = (f"{len(old)} day partitions of the layout before {ref.interval} candles got month partitions "
                         f"(e.g. {old[0]}); move them into {ref.path} with "
                         f"`binance-lake transform --rebuild --symbol {ref.symbol}`")
        return report
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lake_lock(lake, rule.table.name, ref.symbol, wait_s=opts.lock_wait_s))
        except LockHeldError as exc:
            report.status, report.reason = "locked", str(exc)
            return report
        except StorageError:
            # The lock cannot be written (a read-only lake). A repair must stop (exit 5, the path
            # named); a dry run changes nothing, so it compares without the lock.
            if opts.repair:
                raise
        retry_on_conflict(ref.path, lambda: _check(lake, ref, rule, opts, report, context))
    return report


def _check(lake: Lake, ref: PartitionRef, rule: TableRule, opts: VerifyOptions, report: PartitionReport,
           context: Optional[Dict[str, Any]]) -> None:
    # Curated (and its version) before raw: a writer folding a page this derivation misses writes
    # after this read, so the repair's conditional write fails and the check runs again.
    try:
        stored = read_stored(lake, ref.path, rule.table)
        curated, version = stored.rows, stored.version
    except UnreadablePartition as exc:
        curated, version = None, exc.version
        report.curated_unreadable, report.reason = True, f"curated file unreadable: {exc}"
    try:
        derived = derive(lake, ref)
    except DamagedFileError as exc:  # reported, and the partition left as it is: a source is missing
        report.status, report.reason = "damaged", str(exc)
        return
    report.rejected_rows, report.unusable_raw = derived.rejected_rows, derived.unusable_raw
    report.rows_derived = derived.rows.num_rows if derived.rows is not None else 0
    report.rows_curated = curated.num_rows if curated is not None else 0
    diff = compare(curated, derived.rows, rule.key)
    lineage_only = [k for k, cols in diff.changed.items() if set(cols) <= LINEAGE_COLUMNS]
    for k in lineage_only:
        del diff.changed[k]
    report.newer_fetch = len(lineage_only)
    report.missing, report.extra, report.changed = len(diff.missing), len(diff.extra), len(diff.changed)
    report.duplicates = diff.duplicates
    report.missing_keys = [_show(k) for k in diff.missing[:KEYS_SHOWN]]
    report.extra_keys = [_show(k) for k in diff.extra[:KEYS_SHOWN]]
    report.changed_keys = [{"key": _show(k), "columns": c} for k, c in list(diff.changed.items())[:KEYS_SHOWN]]
    if ref.table == "candles":
        _gaps(ref, curated, derived.rows, context or {}, report)
    if opts.repair and (report.differs or (diff.extra and opts.quarantine_unexplained)):
        _repair(lake, ref, rule, opts, curated, derived.rows, diff.extra, report, version)
    report.status = _status(report)


def _gaps(ref: PartitionRef, curated: Optional[pa.Table], derived: Optional[pa.Table], context: Dict[str, Any],
          report: PartitionReport) -> None:
    claim = context.get("claim")
    if not claim:
        return
    p_lo, p_hi = layout.period_bounds(ref.date)
    lo, hi = max(p_lo, claim[0]), min(p_hi, claim[1])
    if lo >= hi:
        return
    present = set()
    for t in (curated, derived):
        if t is not None and t.num_rows:
            present.update(t["candle_open_time"].cast(pa.int64()).to_pylist())
    holes = subtract_ranges(missing_ranges(lo, hi, sorted(present), ref.interval),
                            [tuple(g) for g in context.get("exchange_gaps", [])])
    report.gaps = [[ms_to_iso(s), ms_to_iso(e)] for s, e in holes]
    report.gap_minutes = sum(count_candles(s, e, ref.interval) for s, e in holes)  # missing candles


def _repair(lake: Lake, ref: PartitionRef, rule: TableRule, opts: VerifyOptions, curated: Optional[pa.Table],
            derived: Optional[pa.Table], extra: List[Any], report: PartitionReport, version: Any) -> None:
    schema = arrow_schema(rule.table)
    rows = derived if derived is not None else schema.empty_table()
    if report.curated_unreadable:
        _keep_unreadable(lake, ref, opts)
    if extra and curated is not None:
        unexplained = curated.filter(pc.is_in(curated[rule.key], value_set=pa.array(extra, curated[rule.key].type)))
        if opts.quarantine_unexplained:
            report.quarantined = _quarantine(lake, ref, opts, unexplained)
        else:
            # Kept as they are: raw cannot vouch for them, and curated may be their only copy
            # (the rebuild's rule, binance_lake.fold.keep_unexplained).
            rows = keep_unexplained(curated, rows, rule.table)[0]
    write_partition(lake, ref.path, rows.cast(schema), version)  # only over the version compared
    report.repaired = True


def _quarantine(lake: Lake, ref: PartitionRef, opts: VerifyOptions, rows: pa.Table) -> str:
    """Rows no raw file explains -> quarantine/<partition>/verify-<run>.json (the transform's row format)."""
    key = layout.quarantine_rows_key(ref.path, f"verify-{opts.run_id or 'run'}.json")
    body = {"partition": ref.path, "rows": [{"row": r, "reason": "no raw file explains this curated row"}
                                            for r in rows.to_pylist()]}
    lake.write_bytes(key, json.dumps(body, default=str).encode())
    return key


def _keep_unreadable(lake: Lake, ref: PartitionRef, opts: VerifyOptions) -> None:
    """An unreadable curated file is kept in quarantine before it is replaced (it may hold rows raw lacks)."""
    with contextlib.suppress(KeyError):
        data = lake.read_bytes(layout.part_key(ref.path))
        lake.write_bytes(layout.quarantine_rows_key(ref.path, f"verify-{opts.run_id or 'run'}-{layout.PART_NAME}"),
                         data)


def _status(report: PartitionReport) -> str:
    if report.extra or report.unusable_raw:
        return "raw-missing"
    if report.differs:
        return "repaired" if report.repaired else "mismatch"
    return "gaps" if report.gap_minutes else "ok"


# -- a run ------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    run_id: str
    lake: str
    interval: str
    symbols: List[str]
    dates: List[str]
    mode: str
    started_at: str
    finished_at: str = ""
    partitions: List[PartitionReport] = field(default_factory=list)
    report_key: Optional[str] = None
    # Final orders whose trades do not add up (binance_lake.reconcile), each with both sides.
    order_trade_mismatches: List[Dict[str, Any]] = field(default_factory=list)

    def summary(self) -> Dict[str, Any]:
        by = {s: sum(1 for p in self.partitions if p.status == s)
              for s in ("ok", "repaired", "mismatch", "raw-missing", "gaps", "locked", "damaged", "old-layout")}
        return {"partitions": len(self.partitions), **{k.replace("-", "_"): v for k, v in by.items()},
                "with_gaps": sum(1 for p in self.partitions if p.gap_minutes),
                "gap_minutes": sum(p.gap_minutes for p in self.partitions),
                "rows_missing": sum(p.missing for p in self.partitions),
                "rows_extra": sum(p.extra for p in self.partitions),
                "rows_changed": sum(p.changed for p in self.partitions),
                "unrepaired": by["mismatch"] + by["raw-missing"] + by["locked"] + by["damaged"] + by["old-layout"]}

    def as_dict(self) -> Dict[str, Any]:
        return {"run_id": self.run_id, "lake": self.lake, "interval": self.interval, "symbols": self.symbols,
                "dates": [self.dates[0], self.dates[-1]] if self.dates else [], "mode": self.mode,
                "started_at": self.started_at, "finished_at": self.finished_at, "report_key": self.report_key,
                "summary": self.summary(), "partitions": [asdict(p) for p in self.partitions],
                "order_trade_mismatches": self.order_trade_mismatches}

    def line(self) -> str:
        s = self.summary()
        span = f"{self.dates[0]}..{self.dates[-1]}" if self.dates else "-"
        return (f"verify {span} ({self.mode}, {len(self.symbols)} symbols): {s['partitions']} partitions, "
                f"{s['ok']} ok, {s['repaired']} repaired, {s['mismatch']} mismatched, {s['raw_missing']} raw-missing, "
                f"{s['locked']} locked, {s['damaged']} damaged; "
                f"rows {s['rows_missing']} missing, {s['rows_changed']} changed, "
                f"{s['rows_extra']} unexplained; {s['with_gaps']} partitions with gaps ({s['gap_minutes']} minutes)"
                + f"; {len(self.order_trade_mismatches)} orders inconsistent with their trades"
                + (f"; report {self.report_key}" if self.report_key else "")
                + "".join(f"\n{p.partition}: {p.reason}" for p in self.partitions
                          if p.status in ("damaged", "old-layout"))
                + "".join(f"\n  order {m['symbol']} {m['order_id']} {m['status']}: executedQty {m['executed_qty']} "
                          f"vs trades {m['trades_qty']}, cummulativeQuoteQty {m['cummulative_quote_qty'] or 'n/a'} "
                          f"vs trades {m['trades_quote_qty']} ({m['trades']} trades)"
                          for m in self.order_trade_mismatches))


def new_run_id(given: Optional[str] = None) -> str:
    """A key-safe run id: Glue's JOB_RUN_ID when there is one, else a short random one."""
    run = re.sub(r"[^A-Za-z0-9_-]", "-", given or "")[:80]
    return run or uuid.uuid4().hex[:12]


def start_report(lake: Lake, symbols: Sequence[str], interval: str, dates: Sequence[str], opts: VerifyOptions
                 ) -> VerifyReport:
    opts.run_id = new_run_id(opts.run_id)
    return VerifyReport(opts.run_id, lake.uri, interval, list(symbols), list(dates),
                        "repair" if opts.repair else "dry-run", _now_iso())


def contexts(lake: Lake, refs: Sequence[PartitionRef]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {(r.symbol, r.interval): symbol_context(lake, r.symbol, r.interval)
            for r in refs if r.table == "candles"}


def verify(lake: Lake, symbols: Sequence[str], interval: str, dates: Sequence[str], opts: VerifyOptions,
           tables: Sequence[str] = REDERIVED_TABLES, write: bool = True) -> VerifyReport:
    """Verify every partition of the range on this machine, then store the report."""
    report = start_report(lake, symbols, interval, dates, opts)
    refs = plan(symbols, interval, dates, tables)
    ctx = contexts(lake, refs)
    report.partitions = [verify_partition(lake, r, opts, ctx.get((r.symbol, r.interval))) for r in refs]
    report.order_trade_mismatches = [m.as_dict() for m in check_symbols(lake, symbols)]
    return finish(lake, report, write)


def finish(lake: Lake, report: VerifyReport, write: bool = True) -> VerifyReport:
    """Store the report as ``curated/_verify/<started>-<run>.json``.

    A dry run writes no report either: it leaves the lake exactly as it found it.
    """
    report.finished_at = _now_iso()
    if write and report.mode == "repair":
        stamp = report.started_at.replace("-", "").replace(":", "")
        report.report_key = layout.verify_report_key(stamp, report.run_id)
        lake.write_bytes(report.report_key, json.dumps(report.as_dict(), default=str, indent=1).encode())
    return report


def exit_code(report: VerifyReport) -> int:
    """5 if a stored file is damaged (rerun backfill), 6 if anything else was left unrepaired."""
    s = report.summary()
    if s["damaged"]:
        return EXIT_STORAGE
    return EXIT_UNREPAIRED if s["unrepaired"] or report.order_trade_mismatches else 0


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_ms() -> int:
    return int(time.time() * 1000)


# -- REST against the public archive (verify --against-archive) ---------------------------------
#
# Binance publishes each day's kline file the next day, built from the same /api/v3/klines
# endpoint, with a sha256 .CHECKSUM (binance-public-data README,
# https://github.com/binance/binance-public-data). Once out, it is Binance's settled word on that
# day, so where it and the lake's REST candles differ the archive wins: the backfill folds the
# verified daily zip as the newest fetch (the fold's "latest fetch wins" keeps it on a rebuild);
# the REST pages stay in raw, untouched (binance_lake.jobs.backfill.verify_against_archive).

ARCHIVE_VALUE_COLUMNS = [c.name for c in CANDLES.columns if isinstance(c.source, int)]  # Binance's fields


@dataclass
class ArchiveCheck:
    """One day's REST candles compared with that day's archive file, minute by minute."""

    symbol: str
    interval: str
    date: str
    file: str
    # match | settled (they differ, curated already holds the archive's values) | mismatch (curated
    # does not) | adopted (mismatch, then the archive was folded in) | not-published | no-rest | failed
    status: str = "match"
    published: Optional[str] = None
    minutes_compared: int = 0  # minutes inside the REST pages' windows
    only_archive: int = 0  # the archive has them, REST answered without them
    only_rest: int = 0
    differing: int = 0
    unsettled: int = 0  # differing or archive-only minutes where curated does not hold the archive's row
    only_archive_minutes: List[str] = field(default_factory=list)
    only_rest_minutes: List[str] = field(default_factory=list)
    differences: List[Dict[str, str]] = field(default_factory=list)  # {minute, column, rest, archive}
    reason: str = ""

    @property
    def mismatched(self) -> bool:
        return bool(self.only_archive or self.only_rest or self.differing)


def against_archive(lake: Lake, symbol: str, interval: str, date: str, cfg: ArchiveConfig) -> ArchiveCheck:
    """Compare the lake's REST candles of ``date`` with the day's published archive file."""
    f = ArchiveFile(symbol, interval, date)
    check = ArchiveCheck(symbol, interval, date, f.name)
    period = layout.period_of_value(date, interval)  # the day, or its month (layout.grain)
    rest_day = derive_candle_day(lake, symbol, interval, period, None)
    rest = _day_rows(rest_day.days.get(period), date)
    try:
        check.published = published_checksum(f, cfg)
        if check.published is None:
            check.status = "not-published"
            return check
        if rest is None or rest.num_rows == 0:
            check.status = "no-rest"
            return check
        data, _, _ = verified_zip(lake, f, check.published, cfg)
        raw, _ = read_archive_csv(data, f.name)
    except (BinanceUnavailableError, ChecksumMismatch, NotInArchive, Rejected, ValueError) as exc:
        check.status, check.reason = "failed", str(exc) or type(exc).__name__
        return check
    archived = _within(candles_from_arrow(symbol, interval, raw, 0, f.key, date)[0], rest_day.keys, rest)
    diff = _compare_sources(rest, archived, check)
    if check.mismatched:
        path = layout.candle_partition(symbol, interval, period)
        check.unsettled = _unsettled(lake, path, archived, [*diff.changed, *diff.missing])
        check.status = "mismatch" if check.unsettled else "settled"
    return check


def _day_rows(rows: Optional[pa.Table], date: str) -> Optional[pa.Table]:
    """The rows of one UTC day out of a month partition's (a day partition's are all of them)."""
    if rows is None:
        return None
    lo, hi = layout.period_bounds(date)
    ms = rows["candle_open_time"].cast(pa.int64())
    return rows.filter(pc.and_(pc.greater_equal(ms, lo), pc.less(ms, hi)))


def _unsettled(lake: Lake, path: str, archived: pa.Table, keys: Sequence[Any]) -> int:
    """How many of ``keys`` curated does not hold as the archive has them (the archive wins)."""
    try:
        curated = read_partition(lake, path, CANDLES)
    except Rejected:
        curated = None
    key = "candle_open_time"
    held = {} if curated is None else {r[key]: r for r in curated.select(ARCHIVE_VALUE_COLUMNS).to_pylist()}
    wanted = {r[key]: r for r in archived.select(ARCHIVE_VALUE_COLUMNS).to_pylist()}
    return sum(1 for k in keys if held.get(k) != wanted[k])


def _within(archived: pa.Table, rest_keys: Sequence[str], rest: pa.Table) -> pa.Table:
    """The archive's minutes inside the windows REST was asked for (elsewhere REST has no say)."""
    opens = archived["candle_open_time"].cast(pa.int64())
    windows = [w for w in (layout.parse_window_name(k.rsplit("/", 1)[-1]) for k in rest_keys) if w]
    if not windows:
        rest_opens = rest["candle_open_time"].cast(pa.int64())
        windows = [(pc.min(rest_opens).as_py(), pc.max(rest_opens).as_py() + 1)]
    inside = pc.or_(*[pc.and_(pc.greater_equal(opens, lo), pc.less(opens, hi)) for lo, hi in windows]) \
        if len(windows) > 1 else pc.and_(pc.greater_equal(opens, windows[0][0]), pc.less(opens, windows[0][1]))
    return archived.filter(inside)


def _compare_sources(rest: pa.Table, archived: pa.Table, check: ArchiveCheck) -> Diff:
    key = "candle_open_time"
    r, a = rest.select(ARCHIVE_VALUE_COLUMNS), archived.select(ARCHIVE_VALUE_COLUMNS)
    diff = compare(r, a, key)  # "missing" from REST = only in the archive; "extra" = only in REST
    check.only_archive, check.only_rest, check.differing = len(diff.missing), len(diff.extra), len(diff.changed)
    check.minutes_compared = len({*r[key].to_pylist(), *a[key].to_pylist()})
    check.only_archive_minutes = [_show(k) for k in diff.missing[:KEYS_SHOWN]]
    check.only_rest_minutes = [_show(k) for k in diff.extra[:KEYS_SHOWN]]
    rows_r = {row[key]: row for row in r.to_pylist()}
    rows_a = {row[key]: row for row in a.to_pylist()}
    for k, columns in list(diff.changed.items())[:KEYS_SHOWN]:
        check.differences += [{"minute": _show(k), "column": c, "rest": _text(rows_r[k][c]),
                               "archive": _text(rows_a[k][c])} for c in columns]
    return diff


# Statuses that leave a day for a human: REST and the archive disagree and curated does not hold
# the archive's values, or the day could not be compared (download, checksum or parse failed).
ARCHIVE_UNSETTLED = ("mismatch", "failed")
ARCHIVE_STATUSES = ("match", "settled", "mismatch", "adopted", "not-published", "no-rest", "failed")


def archive_dates(now_ms: int, days_back: int, lag_days: int, start: Optional[str] = None,
                  end: Optional[str] = None) -> List[str]:
    """The days to compare with the archive: ``[start, end)`` when given (the operator's choice),
    else the ``days_back`` days ending ``lag_days`` before yesterday, i.e. old enough for Binance
    to have published their daily files (the horizon is documented in docs/reliability.md)."""
    if start:
        return date_range(now_ms, days_back, start, end)
    return date_range(now_ms - lag_days * MS_PER_DAY, days_back)


@dataclass
class ArchiveRun:
    """A report-only run of :func:`against_archive` over symbols x intervals x days (the daily Glue
    verify): stored whole as ``curated/_verify/<started>-<run>-archive.json``."""

    run_id: str
    lake: str
    dates: List[str]
    started_at: str
    checks: List[ArchiveCheck] = field(default_factory=list)
    report_key: Optional[str] = None

    def summary(self) -> Dict[str, int]:
        by = {s: sum(1 for c in self.checks if c.status == s) for s in ARCHIVE_STATUSES}
        return {"days": len(self.checks), **{k.replace("-", "_"): v for k, v in by.items()},
                "unsettled": sum(by[s] for s in ARCHIVE_UNSETTLED),
                "minutes_differing": sum(c.differing for c in self.checks),
                "minutes_only_archive": sum(c.only_archive for c in self.checks),
                "minutes_only_rest": sum(c.only_rest for c in self.checks)}

    def as_dict(self) -> Dict[str, Any]:
        return {"run_id": self.run_id, "lake": self.lake, "dates": self.dates, "started_at": self.started_at,
                "mode": "report-only", "winner": "archive", "report_key": self.report_key,
                "summary": self.summary(), "checks": [asdict(c) for c in self.checks]}

    def line(self) -> str:
        s = self.summary()
        span = f"{self.dates[0]}..{self.dates[-1]}" if self.dates else "-"
        counts = ", ".join(f"{s[k.replace('-', '_')]} {k}" for k in ARCHIVE_STATUSES)
        return (f"against the archive {span}: {s['days']} days, {counts}; minutes {s['minutes_differing']} "
                f"differing, {s['minutes_only_archive']} only in the archive, {s['minutes_only_rest']} only in REST"
                + (f"; report {self.report_key}" if self.report_key else "")
                + "".join(f"\n  {c.symbol} {c.interval} {c.date}: {c.status}" + (f" ({c.reason})" if c.reason else "")
                          for c in self.checks if c.status in ARCHIVE_UNSETTLED))


def start_archive_run(lake: Lake, dates: Sequence[str], run_id: str = "") -> ArchiveRun:
    return ArchiveRun(new_run_id(run_id), lake.uri, list(dates), _now_iso())


def finish_archive(lake: Lake, run: ArchiveRun) -> ArchiveRun:
    """Store the run's report (every check, each differing minute with both values); never curated."""
    stamp = run.started_at.replace("-", "").replace(":", "")
    run.report_key = layout.archive_report_key(stamp, run.run_id)
    lake.write_bytes(run.report_key, json.dumps(run.as_dict(), default=str, indent=1).encode())
    return run


def _text(value: Any) -> str:
    return ms_to_iso(int(value.timestamp() * 1000)) if isinstance(value, datetime) else (
        f"{value:f}" if hasattr(value, "as_tuple") else str(value))


__all__ = ["PartitionRef", "PartitionReport", "VerifyOptions", "VerifyReport", "date_range", "derive",
           "exit_code", "finish", "plan", "verify", "verify_partition"]
