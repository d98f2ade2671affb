"""Transform: raw JSON -> validated, deduplicated, typed Arrow -> curated Parquet.

* Candles dedupe on open time within a (symbol, interval, date) partition; the most
  recently fetched copy wins. Orders upsert on order id; the latest ``updateTime`` wins.
* A curated partition is rewritten whole and atomically (``Lake.write_bytes``): a reader
  never sees half a partition. Incremental runs merge the existing partition with the
  raw files named by pending markers; a partition that cannot be read (corrupted) is
  rebuilt from all of its raw files.
* Rows that break a type or an invariant, and raw files that do not parse, go to
  ``quarantine/`` with the reason; the rest lands.

Runs on Python 3.9 (Glue Python shell); needs pyarrow, which the extract side avoids.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from binance_lake.crash import crash_point, pause_point
from binance_lake.extract import history_page_last_id, orders_index_key, pending_key, read_orders_index
from binance_lake.lake import Lake
from binance_lake.lock import lake_lock
from binance_lake.schema import CANDLES, DECIMAL, DECIMAL_SCALE, INT64, OPEN_ORDER_STATUSES, ORDERS, TIMESTAMP, Table
from binance_lake.times import _MICROS_THRESHOLD, interval_ms, to_ms

log = logging.getLogger(__name__)

PART_NAME = "part-0.parquet"
# Day partitions folded at once within one symbol's lock. Measured on a year (365 partitions,
# 2 cores): 1 -> 3.47 s, 2 -> 3.29 s, 4 -> 4.24 s; most of the work is Python holding the GIL,
# so 2 only overlaps the Parquet writes and fsyncs.
TRANSFORM_WORKERS = 2
# A marker whose raw file is missing is left alone this long: another run may be between
# writing the marker and the raw file (a Lambda runs at most 15 minutes).
MARKER_GRACE_MS = 15 * 60 * 1000
_MAX_DECIMAL = Decimal(10) ** (38 - DECIMAL_SCALE)


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


class Rejected(Exception):
    """A raw file that cannot be used at all (bad JSON, wrong envelope)."""


# -- typed columns ----------------------------------------------------------------------


def decimal_array(values: Sequence[Any]) -> Tuple[pa.Array, List[Optional[str]]]:
    """Exact string -> decimal128 cast; per-row reasons where a value does not fit."""
    target = pa.decimal128(38, DECIMAL_SCALE)
    if isinstance(values, pa.Array):  # archive CSV columns arrive as Arrow strings already
        strings = values.cast(pa.string())
    else:
        strings = _inferred(values, pa.types.is_string)
        if strings is None:  # not all strings (numbers, odd types): stringify one by one
            strings = pa.array([None if v is None else str(v) for v in values], pa.string())
    try:
        return pc.cast(strings, target), [None] * len(values)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        reasons = [decimal_problem(v) for v in strings.to_pylist()]
        cleaned = [None if r else v for v, r in zip(strings.to_pylist(), reasons)]
        return pc.cast(pa.array(cleaned, pa.string()), target), reasons


def decimal_problem(value: Any) -> Optional[str]:
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return f"not a decimal: {str(value)[:40]!r}"
    if not d.is_finite():
        return f"not a finite decimal: {value!r}"
    if d != d.quantize(Decimal(1).scaleb(-DECIMAL_SCALE), rounding="ROUND_DOWN") or abs(d) >= _MAX_DECIMAL:
        return f"value {value!r} does not fit decimal(38,{DECIMAL_SCALE}) exactly"
    return None


def timestamp_array(values: Sequence[Any]) -> pa.Array:
    """Binance epoch ints (ms or µs, per value) -> timestamp[ms, UTC]."""
    arr, problems = _int_column(values, timestamp=True)
    if any(problems):
        raise ValueError(f"not epoch integers: {[p for p in problems if p][:3]}")
    return arr


def _inferred(values: Sequence[Any], accept: Any) -> Optional[pa.Array]:
    """``values`` as one Arrow array if pyarrow infers a type ``accept`` likes (or all null).

    The fast path for well-formed input: one C-level conversion instead of a Python loop.
    Inference is strict (a float among ints, a bool, a string among numbers all fail it),
    so anything unusual falls back to the per-value path and its reasons.
    """
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    return arr if accept(arr.type) or pa.types.is_null(arr.type) else None


# -- candles ---------------------------------------------------------------------------


KLINE_FIELDS = 11  # the 12th field is "unused, ignore"


def candles_table(symbol: str, interval: str, rows: Sequence[Sequence[Any]], ingested_at: Sequence[int],
                  source_keys: Sequence[str], date: Optional[str] = None
                  ) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    """Kline arrays -> (valid curated rows, [(rejected row, reason)])."""
    reasons: List[Optional[str]] = [
        None if isinstance(r, (list, tuple)) and len(r) >= KLINE_FIELDS else "not a kline array of 12 fields"
        for r in rows]
    if any(reasons):
        rows_ok = [r[:KLINE_FIELDS] if reasons[i] is None else [None] * KLINE_FIELDS for i, r in enumerate(rows)]
    else:
        rows_ok = rows  # the usual case: transpose as is (the 12th field is never read)
    cols = list(zip(*rows_ok)) or [()] * KLINE_FIELDS
    arrays: Dict[str, pa.Array] = {}
    for col in CANDLES.columns:
        if not isinstance(col.source, int):
            continue
        values = cols[col.source]
        if col.kind == DECIMAL:
            arr, problems = decimal_array(values)
        elif col.kind == TIMESTAMP:
            arr, problems = _int_column(values, timestamp=True)
        else:
            arr, problems = _int_column(values, timestamp=False)
        arrays[col.name] = arr
        reasons = _merge_reasons(reasons, col.name, problems)
    arrays["ingested_at"] = timestamp_array(ingested_at)
    arrays["source_key"] = pa.array(source_keys, pa.string())
    return _finish_candles(symbol, interval, arrays, reasons, rows, date)


def _merge_reasons(reasons: List[Optional[str]], column: str, problems: List[Optional[str]]
                   ) -> List[Optional[str]]:
    """First reason per row wins; the common all-valid column costs no Python pass."""
    if not any(problems):
        return reasons
    return [r or (f"{column}: {p}" if p else None) for r, p in zip(reasons, problems)]


def candles_from_arrow(symbol: str, interval: str, raw: pa.Table, ingested_at: int, source_key: str,
                       date: Optional[str] = None) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    """The archive's columnar twin of ``candles_table``: same casts, checks and output.

    ``raw`` holds the kline fields in Binance's order (times/trades int64, decimals as
    strings, e.g. straight from ``pyarrow.csv``); times may be ms or µs per value.
    Vectorised end to end, because the public archive is millions of rows.
    """
    arrays: Dict[str, pa.Array] = {}
    reasons: List[Optional[str]] = [None] * raw.num_rows
    for col in CANDLES.columns:
        if not isinstance(col.source, int):
            continue
        values = _one_chunk(raw.column(col.source))
        if col.kind == DECIMAL:
            arrays[col.name], problems = decimal_array(values)
            reasons = _merge_reasons(reasons, col.name, problems)
        elif col.kind == TIMESTAMP:
            arrays[col.name] = ms_array(values.cast(pa.int64())).cast(pa.timestamp("ms", tz="UTC"))
        else:
            arrays[col.name] = values.cast(pa.int64())
    # constant columns built in C: a month is 44,640 rows, a Python list of them costs ~10 ms
    arrays["ingested_at"] = pa.repeat(pa.scalar(ingested_at, pa.timestamp("ms", tz="UTC")), raw.num_rows)
    arrays["source_key"] = pa.repeat(pa.scalar(source_key, pa.string()), raw.num_rows)
    return _finish_candles(symbol, interval, arrays, reasons, _RowView(raw), date)


class _RowView:
    """Rows of an Arrow table materialised one at a time (only rejected rows ever are)."""

    def __init__(self, table: pa.Table):
        self.table = table

    def __getitem__(self, i: int) -> List[Any]:
        return list(self.table.slice(i, 1).to_pylist()[0].values())


def _one_chunk(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values


def ms_array(values: pa.Array) -> pa.Array:
    """Vectorised ``times.to_ms``: values at or above 1e15 are microseconds."""
    micros = pc.greater_equal(pc.abs(values), _MICROS_THRESHOLD)
    # Integer division truncates; archive times are positive, so this equals to_ms's floor.
    return pc.if_else(micros, pc.divide(values, 1000), values)


def _finish_candles(symbol: str, interval: str, arrays: Dict[str, pa.Array], reasons: List[Optional[str]],
                    rows: Any, date: Optional[str]) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    """Shared tail of both entry points: pair column, invariants, split valid/rejected."""
    arrays["trading_pair"] = pa.array([symbol] * len(reasons), pa.string())
    table = pa.table([arrays[c] for c in CANDLES.column_names], schema=_nullable(CANDLES))
    bad = _candle_invariants(table, interval, date)
    if any(bad):
        reasons = [r or b for r, b in zip(reasons, bad)]
    return _split(table, rows, reasons, CANDLES)


def _int_column(values: Sequence[Any], timestamp: bool) -> Tuple[pa.Array, List[Optional[str]]]:
    fast = _inferred(values, pa.types.is_integer)
    if fast is not None:
        arr = fast.cast(pa.int64())
        if timestamp:
            arr = ms_array(arr).cast(pa.timestamp("ms", tz="UTC"))
        return arr, [None] * len(values)
    out, problems = [], []
    for v in values:
        if v is None or isinstance(v, bool):
            out.append(None)
            problems.append(None if v is None else f"not an integer: {v!r}")
            continue
        try:
            out.append(to_ms(v) if timestamp else int(v))
            problems.append(None)
        except (TypeError, ValueError):
            out.append(None)
            problems.append(f"not an integer: {str(v)[:40]!r}")
    arr = pa.array(out, pa.int64())
    return (arr.cast(pa.timestamp("ms", tz="UTC")) if timestamp else arr), problems


def _candle_invariants(t: pa.Table, interval: str, date: Optional[str]) -> List[Optional[str]]:
    """Vectorised OHLC/time checks; one reason per row (None = fine)."""
    step = interval_ms(interval)
    open_ms = t["candle_open_time"].cast(pa.int64())
    close_ms = t["candle_close_time"].cast(pa.int64())
    checks = [
        ("low_price above open/close/high", pc.and_(pc.and_(pc.less_equal(t["low_price"], t["open_price"]),
                                                            pc.less_equal(t["low_price"], t["close_price"])),
                                                    pc.less_equal(t["low_price"], t["high_price"]))),
        ("high_price below open/close", pc.and_(pc.greater_equal(t["high_price"], t["open_price"]),
                                                pc.greater_equal(t["high_price"], t["close_price"]))),
        ("negative volume", pc.and_(pc.greater_equal(t["base_volume"], pa.scalar(0).cast(t["base_volume"].type)),
                                    pc.greater_equal(t["quote_volume"],
                                                     pa.scalar(0).cast(t["quote_volume"].type)))),
        ("negative number_of_trades", pc.greater_equal(t["number_of_trades"], 0)),
        (f"open time not aligned to {interval}", pc.equal(pc.subtract(open_ms, pc.multiply(
            pc.divide(open_ms, step), step)), 0)),
        (f"close time is not open time + {interval} - 1ms", pc.equal(pc.subtract(close_ms, open_ms), step - 1)),
    ]
    if date is not None:
        day = int(pa.scalar(date).cast(pa.date32()).cast(pa.int32()).as_py()) * 86_400_000
        checks.append((f"open time outside partition date {date}",
                       pc.and_(pc.greater_equal(open_ms, day), pc.less(open_ms, day + 86_400_000))))
    reasons: List[Optional[str]] = [None] * t.num_rows
    for reason, ok in checks:
        for i in _false_indices(ok):
            reasons[i] = reasons[i] or reason
    return reasons


def _false_indices(mask: Any) -> List[int]:
    # Null (a value already rejected for its type) counts as already explained.
    filled = pc.fill_null(mask, True)
    if pc.all(filled).as_py():
        return []
    return [i for i, ok in enumerate(filled.to_pylist()) if not ok]


def _nullable(table: Table) -> pa.Schema:
    # Invalid rows carry nulls until they are split off; the final schema is strict.
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in table.arrow_schema()])


def _split(t: pa.Table, rows: Sequence[Any], reasons: List[Optional[str]], table: Table
           ) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    rejected = [(rows[i], r) for i, r in enumerate(reasons) if r]
    if rejected:
        t = t.filter(pa.array([r is None for r in reasons]))
    return t.cast(table.arrow_schema()), rejected


def dedupe(t: pa.Table, keys: Sequence[str], version: Sequence[str]) -> pa.Table:
    """Keep one row per key: the one with the greatest ``version`` columns."""
    if t.num_rows == 0:
        return t
    order = [(k, "ascending") for k in (*keys, *version)]
    t = t.take(pc.sort_indices(t, sort_keys=order))
    t = t.append_column("__i", pa.array(range(t.num_rows), pa.int64()))
    last = t.group_by(list(keys), use_threads=False).aggregate([("__i", "max")])
    picked = pc.sort_indices(last["__i_max"])
    return t.take(pc.take(last["__i_max"], picked)).drop_columns(["__i"])


# -- orders ----------------------------------------------------------------------------


_ORDER_SOURCES = {c.source for c in ORDERS.columns if isinstance(c.source, str)}
_REQUIRED_ORDER_FIELDS = [c.source for c in ORDERS.columns if isinstance(c.source, str) and not c.nullable]


def orders_table(orders: Sequence[Any], ingested_at: Sequence[int], source_keys: Sequence[str]
                 ) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    reasons: List[Optional[str]] = []
    for o in orders:
        if not isinstance(o, dict):
            reasons.append("not an order object")
            continue
        missing = [f for f in _REQUIRED_ORDER_FIELDS if o.get(f) is None]
        reasons.append(f"missing fields {missing}" if missing else None)
    good = [o if isinstance(o, dict) else {} for o in orders]
    arrays: Dict[str, pa.Array] = {}
    for col in ORDERS.columns:
        if not isinstance(col.source, str):
            continue
        values = [o.get(col.source) for o in good]
        problems: List[Optional[str]] = [None] * len(values)
        if col.kind == DECIMAL:
            arr, problems = decimal_array(values)
        elif col.kind in (INT64, TIMESTAMP):
            arr, problems = _int_column(values, timestamp=col.kind == TIMESTAMP)
            if col.kind == TIMESTAMP and col.nullable:
                arr = _unset_times_to_null(arr)
        elif col.kind == "bool":
            arr = pa.array([v if isinstance(v, bool) else None for v in values], pa.bool_())
        else:
            arr = pa.array([None if v is None else str(v) for v in values], pa.string())
        arrays[col.name] = arr
        reasons = _merge_reasons(reasons, col.name, problems)
    arrays["extra_fields"] = pa.array([_extra_fields(o) for o in good], pa.string())
    arrays["ingested_at"] = timestamp_array(ingested_at)
    arrays["source_key"] = pa.array(source_keys, pa.string())
    t = pa.table([arrays[c] for c in ORDERS.column_names], schema=_nullable(ORDERS))
    return _split(t, orders, reasons, ORDERS)


def _unset_times_to_null(arr: pa.Array) -> pa.Array:
    """Binance writes -1 for a time that is not set yet (``workingTime`` of an untriggered
    stop order); stored as 1969-12-31T23:59:59.999 it would read as a real instant."""
    unset = pc.less(arr.cast(pa.int64()), 0)
    return pc.if_else(unset, pa.scalar(None, arr.type), arr)


def _extra_fields(order: Dict[str, Any]) -> Optional[str]:
    extra = {k: v for k, v in order.items() if k not in _ORDER_SOURCES}
    return json.dumps(extra, sort_keys=True, separators=(",", ":")) if extra else None


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


def read_raw(lake: Lake, key: str, table: str) -> Tuple[int, List[Any]]:
    """(fetched_at ms, data rows) of a raw envelope; ``Rejected`` if it is unusable."""
    try:
        body = json.loads(lake.read_bytes(key))
    except KeyError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"raw file is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or "fetched_at" not in body:
        raise Rejected("raw file is not a binance-lake envelope (needs 'data' list and 'fetched_at')")
    expected = "klines" if table == CANDLES.name else "orders"
    if body.get("table") != expected:
        raise Rejected(f"raw file holds {body.get('table')!r}, expected {expected!r}")
    try:
        return int(body["fetched_at"]), body["data"]
    except (TypeError, ValueError):
        raise Rejected("raw envelope has a non-integer 'fetched_at'") from None


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
    lake.write_bytes(f"quarantine/{key}", data)
    lake.write_bytes(f"quarantine/{key}.reason.json", json.dumps(
        {"source_key": key, "reason": reason, "quarantined_at": int(time.time() * 1000)}).encode())
    lake.delete(key)
    log.warning("quarantined raw file %s: %s", key, reason)


def quarantine_rows(lake: Lake, partition: str, source: str, rejected: List[Tuple[Any, str]]) -> None:
    if not rejected:
        return
    name = f"{int(time.time() * 1000)}-{source.rsplit('/', 1)[-1]}"
    body = {"partition": partition, "rows": [{"row": row, "reason": reason} for row, reason in rejected]}
    lake.write_bytes(f"quarantine/{partition[len('curated/'):]}/{name}", json.dumps(body, default=str).encode())
    log.warning("%s: %d row(s) quarantined, first reason: %s", partition, len(rejected), rejected[0][1])


# -- curated partitions -----------------------------------------------------------------------


def read_partition(lake: Lake, partition: str, table: Table) -> Optional[pa.Table]:
    """The partition's rows; None if absent. Raises ``Rejected`` if unreadable or of another schema."""
    try:
        data = lake.read_bytes(f"{partition}/{PART_NAME}")
    except KeyError:
        return None
    try:
        t = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise Rejected(f"unreadable Parquet ({type(exc).__name__})") from None
    if t.schema.remove_metadata() != table.arrow_schema().remove_metadata():
        raise Rejected("schema differs from binance_lake.schema")
    return t


def write_partition(lake: Lake, partition: str, t: pa.Table) -> None:
    pause_point("curated-merge", partition)  # test hook: every caller has read and merged by now
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    lake.write_bytes(f"{partition}/{PART_NAME}", buf.getvalue())


# -- incremental and full runs ---------------------------------------------------------------


def pending_markers(lake: Lake, table: Table, symbols: Optional[Sequence[str]] = None) -> List[str]:
    raw_table = table.raw_prefix.split("/", 1)[1]
    keys = lake.list_keys(f"raw/_pending/{raw_table}")
    if symbols:
        keys = [k for k in keys if any(f"/symbol={s}/" in k for s in symbols)]
    return keys


def raw_key_of_marker(marker: str) -> str:
    return "raw/" + marker[len("raw/_pending/"):]


def transform_pending(lake: Lake, tables: Sequence[str] = ("candles", "orders"),
                      symbols: Optional[Sequence[str]] = None) -> TransformResult:
    """Fold every raw file named by a pending marker into curated; delete those markers."""
    result = TransformResult()
    if "candles" in tables:
        result.add(transform_candles(lake, pending_markers(lake, CANDLES, symbols)))
    if "orders" in tables:
        result.add(transform_orders(lake, pending_markers(lake, ORDERS, symbols)))
    return result


def _candle_partition_of(raw_key: str) -> Tuple[str, str, str, str]:
    """raw/klines/interval=1m/symbol=X/date=D/f.json -> (curated partition, interval, symbol, date)."""
    parts = dict(p.split("=", 1) for p in raw_key.split("/") if "=" in p)
    interval, symbol, date = parts["interval"], parts["symbol"], parts["date"]
    return CANDLES.partition_path(interval=interval, symbol=symbol, date=date), interval, symbol, date


def transform_candles(lake: Lake, markers: Sequence[str], rebuild: bool = False) -> TransformResult:
    result = TransformResult()
    groups: Dict[str, List[str]] = defaultdict(list)
    for marker in markers:
        raw_key = raw_key_of_marker(marker) if marker.startswith("raw/_pending/") else marker
        groups[_candle_partition_of(raw_key)[0]].append(raw_key)
    by_symbol: Dict[str, List[Tuple[str, List[str]]]] = defaultdict(list)
    for partition, raw_keys in sorted(groups.items()):
        by_symbol[_candle_partition_of(raw_keys[0])[2]].append((partition, sorted(raw_keys)))
    for symbol, items in sorted(by_symbol.items()):
        # One run per symbol at a time: read-merge-write-unmark by two runs at once would
        # lose rows. Inside the lock each day partition is independent, so they are folded
        # concurrently (pyarrow's casts and Parquet writes and fsync release the GIL).
        with lake_lock(lake, CANDLES.name, symbol):
            for part in _map_partitions(lambda item: _fold_candle_partition(lake, *item, rebuild), items):
                result.add(part)
    return result


def _fold_candle_partition(lake: Lake, partition: str, raw_keys: List[str], rebuild: bool) -> TransformResult:
    part = _candle_partition(lake, partition, raw_keys, rebuild)
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
        lake.delete(pending_key(key))


def _marker_time(lake: Lake, raw_key: str) -> int:
    try:
        return int(lake.read_bytes(pending_key(raw_key)) or b"0")
    except (KeyError, ValueError):
        return 0  # gone, or an old empty marker: old enough


def _candle_partition(lake: Lake, partition: str, raw_keys: List[str], rebuild: bool) -> TransformResult:
    result = TransformResult(partitions=[partition])
    _, interval, symbol, date = _candle_partition_of(raw_keys[0])
    existing = None
    if not rebuild:
        try:
            existing = read_partition(lake, partition, CANDLES)
        except Rejected as exc:
            log.warning("%s: %s; rebuilding it from raw", partition, exc)
            rebuild = True
    if rebuild:
        raw_dir = raw_keys[0].rsplit("/", 1)[0]
        raw_keys = sorted(set(raw_keys) | set(lake.list_keys(raw_dir)))
        result.rebuilt.append(partition)
        existing = _archive_share(lake, symbol, interval, date)
    for key in raw_keys:
        batch = gather(lake, [key], CANDLES.name, result)
        new, rejected = candles_table(symbol, interval, batch.rows, batch.ingested_at, batch.source_keys, date)
        quarantine_rows(lake, partition, key, rejected)
        result.quarantined_rows += len(rejected)
        existing = new if existing is None else pa.concat_tables([existing, new])
    if existing is None:
        return result
    merged = dedupe(existing, ["candle_open_time"], ["ingested_at"])
    write_partition(lake, partition, merged)
    result.rows_written += merged.num_rows
    if merged.num_rows:
        last = pc.max(merged["candle_close_time"]).cast(pa.int64()).as_py()
        result.last_candle_close[symbol] = last
    return result


def _archive_share(lake: Lake, symbol: str, interval: str, date: str) -> Optional[pa.Table]:
    """The day's rows from verified public-archive zips in the lake, if a backfill stored any."""
    from binance_lake.archive import stored_archive_rows  # the archive module builds on this one

    return stored_archive_rows(lake, symbol, interval, date)


def rebuild_candles(lake: Lake, symbol: str, interval: str = "1m", dates: Optional[Sequence[str]] = None
                    ) -> TransformResult:
    """Rewrite curated candle partitions from all of their raw files."""
    base = f"{CANDLES.raw_prefix}/interval={interval}/symbol={symbol}"
    keys = [k for d in (dates or [c[5:] for c in lake.list_children(base)])
            for k in lake.list_keys(f"{base}/date={d}")]
    return transform_candles(lake, keys, rebuild=True)


# -- orders ------------------------------------------------------------------------------------


def _order_symbol(raw_key: str) -> str:
    return next(p.split("=", 1)[1] for p in raw_key.split("/") if p.startswith("symbol="))


def transform_orders(lake: Lake, markers: Sequence[str], rebuild: bool = False) -> TransformResult:
    result = TransformResult()
    by_symbol: Dict[str, List[str]] = defaultdict(list)
    for marker in markers:
        raw_key = raw_key_of_marker(marker) if marker.startswith("raw/_pending/") else marker
        by_symbol[_order_symbol(raw_key)].append(raw_key)
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
    wrong_symbol = pc.not_equal(new["symbol"], symbol)
    if new.num_rows and pc.any(wrong_symbol).as_py():
        rejected += [(r, f"symbol is not {symbol}") for r in new.filter(wrong_symbol).to_pylist()]
        new = new.filter(pc.invert(wrong_symbol))
    quarantine_rows(lake, f"{ORDERS.curated_prefix}/symbol={symbol}", raw_keys[0] if raw_keys else "x", rejected)
    result.quarantined_rows += len(rejected)
    dates = pc.strftime(new["order_time"], format="%Y-%m-%d").to_pylist() if new.num_rows else []
    index = read_orders_index(lake, symbol)
    open_ids = set(index.get("open_order_ids", []))
    max_id = int(index.get("max_order_id", -1))
    # Only history pages that were actually read (not quarantined) advance the cursor.
    through = max([int(index.get("history_through", -1)),
                   *(i for i in map(history_page_last_id, set(batch.source_keys)) if i is not None)])
    for date in sorted(set(dates)):
        partition = ORDERS.partition_path(symbol=symbol, date=date)
        part_new = new.filter(pc.equal(pa.array(dates), date))
        merged = _merge_orders(lake, partition, part_new, rebuild, result)
        result.partitions.append(partition)
        result.rows_written += merged.num_rows
        for oid, status in zip(merged["order_id"].to_pylist(), merged["status"].to_pylist()):
            (open_ids.add if status in OPEN_ORDER_STATUSES else open_ids.discard)(oid)
            max_id = max(max_id, oid)
    if dates or not index:
        body = {"symbol": symbol, "history_through": through, "max_order_id": max_id,
                "open_order_ids": sorted(open_ids), "updated_at": int(time.time() * 1000)}
        lake.write_bytes(orders_index_key(symbol), json.dumps(body).encode())
    return result


def _merge_orders(lake: Lake, partition: str, new: pa.Table, rebuild: bool, result: TransformResult) -> pa.Table:
    existing = None
    if not rebuild:
        try:
            existing = read_partition(lake, partition, ORDERS)
        except Rejected as exc:
            # Orders of one creation date may come from many raw pages: rebuild from all of them.
            log.warning("%s: %s; rebuilding orders of this symbol from raw", partition, exc)
            result.rebuilt.append(partition)
            existing = _orders_from_all_raw(lake, partition, result)
    combined = new if existing is None else pa.concat_tables([existing, new])
    merged = dedupe(combined, ["order_id"], ["update_time", "ingested_at"])
    write_partition(lake, partition, merged)
    return merged


def _orders_from_all_raw(lake: Lake, partition: str, result: TransformResult) -> pa.Table:
    symbol = _order_symbol(partition)
    date = partition.rsplit("date=", 1)[1]
    keys = lake.list_keys(f"{ORDERS.raw_prefix}/symbol={symbol}")
    batch = gather(lake, keys, ORDERS.name, result)
    t, _ = orders_table(batch.rows, batch.ingested_at, batch.source_keys)
    if t.num_rows == 0:
        return t
    return t.filter(pc.equal(pc.strftime(t["order_time"], format="%Y-%m-%d"), date))


def rebuild_orders(lake: Lake, symbol: str) -> TransformResult:
    lake.delete(orders_index_key(symbol))
    return transform_orders(lake, lake.list_keys(f"{ORDERS.raw_prefix}/symbol={symbol}"), rebuild=True)


def last_closed_candle(lake: Lake, symbol: str, interval: str = "1m") -> Optional[int]:
    """Close time (ms) of the newest curated candle, reading one partition."""
    base = f"{CANDLES.curated_prefix}/interval={interval}/symbol={symbol}"
    for date_dir in reversed(lake.list_children(base)):
        try:
            t = read_partition(lake, f"{base}/{date_dir}", CANDLES)
        except Rejected:
            continue
        if t is not None and t.num_rows:
            return pc.max(t["candle_close_time"]).cast(pa.int64()).as_py()
    return None


__all__ = ["TransformResult", "candles_table", "dedupe", "last_closed_candle", "orders_table",
           "rebuild_candles", "rebuild_orders", "transform_candles", "transform_orders", "transform_pending"]
