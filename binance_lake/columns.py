"""Columns: Binance records -> typed, validated Arrow rows of the curated schema.

The one place that casts (exact decimals, ms/µs epochs) and checks invariants (OHLC,
alignment, the partition's date); every source goes through it -- REST pages
(``candles_table``, ``orders_table``) and archive CSVs (``candles_from_arrow``) -- so a
row means the same whatever brought it. Rejected rows come back with a reason; writing
them (quarantine) is the fold's job. ``dedupe`` keeps one row per ``Table.primary_key``,
the greatest ``Table.version_columns`` winning.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from binance_lake import layout
from binance_lake.schema import (
    BOOL,
    CANDLES,
    DECIMAL,
    DECIMAL_PRECISION,
    DECIMAL_SCALE,
    INT64,
    LINEAGE_COLUMNS,
    ORDERS,
    STRING,
    TIMESTAMP,
    TRADES,
    Table,
)
from binance_lake.times import _MICROS_THRESHOLD, close_of, interval_anchor, interval_ms, is_fixed, open_floor, to_ms

_MAX_DECIMAL = Decimal(10) ** (38 - DECIMAL_SCALE)


def arrow_type(kind: str) -> pa.DataType:
    return {
        STRING: pa.string(),
        DECIMAL: pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
        INT64: pa.int64(),
        # Milliseconds: Binance's native unit; µs inputs (archive 2025+, X-MBX-TIME-UNIT)
        # are normalised to ms so both give identical rows. Athena timestamps are ms too.
        TIMESTAMP: pa.timestamp("ms", tz="UTC"),
        BOOL: pa.bool_(),
    }[kind]


def arrow_schema(table: Table) -> pa.Schema:
    """The curated Parquet schema of ``table`` (column kinds from binance_lake.schema)."""
    return pa.schema([pa.field(c.name, arrow_type(c.kind), nullable=c.nullable) for c in table.columns],
                     metadata={"binance_lake.table": table.name})


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
    rows_ok: Sequence[Sequence[Any]]
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
    out: List[Optional[int]] = []
    problems: List[Optional[str]] = []
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
        *_alignment_checks(open_ms, close_ms, interval),
    ]
    if date is not None:
        lo, hi = layout.period_bounds(date)  # a day, or a month (layout.grain)
        checks.append((f"open time outside partition date {date}",
                       pc.and_(pc.greater_equal(open_ms, lo), pc.less(open_ms, hi))))
    reasons: List[Optional[str]] = [None] * t.num_rows
    for reason, ok in checks:
        for i in _false_indices(ok):
            reasons[i] = reasons[i] or reason
    return reasons


def _alignment_checks(open_ms: pa.Array, close_ms: pa.Array, interval: str) -> List[Tuple[str, Any]]:
    """A candle opens on its interval's boundary and closes 1 ms before the next one opens."""
    aligned, closes = f"open time not aligned to {interval}", f"close time is not open time + {interval} - 1ms"
    if is_fixed(interval):  # vectorised: every interval but 1M
        step, anchor = interval_ms(interval), interval_anchor(interval)
        since = pc.subtract(open_ms, anchor) if anchor else open_ms
        return [(aligned, pc.equal(pc.subtract(since, pc.multiply(pc.divide(since, step), step)), 0)),
                (closes, pc.equal(pc.subtract(close_ms, open_ms), step - 1))]
    # 1M: months vary (28 to 31 days); a few rows a year, so per value.
    opens = [None if o is None else int(o) for o in open_ms.to_pylist()]
    ok_open = [None if o is None else open_floor(o, interval) == o for o in opens]
    want_close = pa.array([None if o is None else close_of(o, interval) for o in opens], pa.int64())
    return [(aligned, pa.array(ok_open, pa.bool_())), (closes, pc.equal(_one_chunk(close_ms), want_close))]


def _false_indices(mask: Any) -> List[int]:
    # Null (a value already rejected for its type) counts as already explained.
    filled = pc.fill_null(mask, True)
    if pc.all(filled).as_py():
        return []
    return [i for i, ok in enumerate(filled.to_pylist()) if not ok]


def _nullable(table: Table) -> pa.Schema:
    # Invalid rows carry nulls until they are split off; the final schema is strict.
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in arrow_schema(table)])


def _split(t: pa.Table, rows: Sequence[Any], reasons: List[Optional[str]], table: Table
           ) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    rejected = [(rows[i], r) for i, r in enumerate(reasons) if r]
    if rejected:
        t = t.filter(pa.array([r is None for r in reasons]))
    return t.cast(arrow_schema(table)), rejected


def dedupe(t: pa.Table, table: Table) -> pa.Table:
    """One row per ``table.primary_key``: the one with the greatest ``table.version_columns``.

    ``table.first_fetch_lineage``: ties on the version go to a final status
    (``table.final_statuses``), then to the greatest values (the row's non-lineage columns,
    compared as text: arbitrary but the same in any order), and of rows with equal values the earliest fetch
    (``ingested_at``, then ``source_key``) is kept. That merge is order-free: folding rows
    tick by tick, skipping unchanged ones, or all at once in a rebuild gives the same row.
    """
    if t.num_rows == 0:
        return t
    keys = list(table.primary_key)
    order = [(k, "ascending") for k in (*keys, *table.version_columns)]
    if table.first_fetch_lineage:
        final = pa.array(sorted(table.final_statuses), pa.string())
        t = t.append_column(_FINAL, pc.is_in(t["status"], value_set=final))
        t = t.append_column(_VALUES, row_values(t, table))
        order += [(_FINAL, "ascending"), (_VALUES, "ascending"), ("ingested_at", "descending"),
                  ("source_key", "descending")]
    t = t.take(pc.sort_indices(t, sort_keys=order))
    t = t.append_column("__i", pa.array(range(t.num_rows), pa.int64()))
    last = t.group_by(keys, use_threads=False).aggregate([("__i", "max")])
    picked = pc.sort_indices(last["__i_max"])
    out = t.take(pc.take(last["__i_max"], picked)).drop_columns(["__i"])
    return out.drop_columns([_FINAL, _VALUES]) if table.first_fetch_lineage else out


_VALUES, _FINAL = "__values", "__final"


def row_values(t: pa.Table, table: Table) -> pa.Array:
    """Each row's non-lineage columns as one string (exact, a null distinct from any value): two
    rows are the same fetch of one state iff these match. The same text under every pyarrow the
    core runs on (verify on Glue's 17, the Lambdas' 26): pyarrow's decimal-to-string cast is not
    (17 writes zero at scale 8 as ``0.E-8``, 26 as ``0E-8``), so decimals are Python-formatted
    and instants are their epoch integers."""
    parts = []
    for col in table.columns:
        if col.name in LINEAGE_COLUMNS:
            continue
        parts.append(pc.if_else(pc.is_null(t[col.name]), "\x00",
                                pc.binary_join_element_wise("=", _stable_text(t[col.name], col.kind), "")))
    return pc.binary_join_element_wise(*parts, "\x1f")


def _stable_text(values: Any, kind: str) -> Any:
    if kind == DECIMAL:
        return pa.array([None if v is None else format(v, "f") for v in values.to_pylist()], pa.string())
    if kind == TIMESTAMP:
        return pc.cast(pc.cast(values, pa.int64()), pa.string())
    return pc.cast(values, pa.string())


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


# -- trades ----------------------------------------------------------------------------


_REQUIRED_TRADE_FIELDS = [c.source for c in TRADES.columns if isinstance(c.source, str) and not c.nullable]


def trades_table(trades: Sequence[Any], ingested_at: Sequence[int], source_keys: Sequence[str]
                 ) -> Tuple[pa.Table, List[Tuple[Any, str]]]:
    """myTrades objects -> (valid curated rows, [(rejected row, reason)]). Columns, kinds and
    required fields all come from ``schema.TRADES``; unknown keys are ignored (Binance may add some)."""
    reasons: List[Optional[str]] = []
    for t in trades:
        if not isinstance(t, dict):
            reasons.append("not a trade object")
            continue
        missing = [f for f in _REQUIRED_TRADE_FIELDS if t.get(f) is None]
        reasons.append(f"missing fields {missing}" if missing else None)
    good = [t if isinstance(t, dict) else {} for t in trades]
    arrays: Dict[str, pa.Array] = {}
    for col in TRADES.columns:
        if not isinstance(col.source, str):
            continue
        values = [t.get(col.source) for t in good]
        problems: List[Optional[str]] = [None] * len(values)
        if col.kind == DECIMAL:
            arr, problems = decimal_array(values)
        elif col.kind in (INT64, TIMESTAMP):
            arr, problems = _int_column(values, timestamp=col.kind == TIMESTAMP)
        elif col.kind == BOOL:
            arr = pa.array([v if isinstance(v, bool) else None for v in values], pa.bool_())
            if not col.nullable:
                problems = [None if isinstance(v, bool) else f"not a boolean: {v!r}" for v in values]
        else:
            arr = pa.array([None if v is None else str(v) for v in values], pa.string())
        arrays[col.name] = arr
        reasons = _merge_reasons(reasons, col.name, problems)
    arrays["ingested_at"] = timestamp_array(ingested_at)
    arrays["source_key"] = pa.array(source_keys, pa.string())
    t = pa.table([arrays[c] for c in TRADES.column_names], schema=_nullable(TRADES))
    bad = _trade_invariants(t)
    if any(bad):
        reasons = [r or b for r, b in zip(reasons, bad)]
    return _split(t, trades, reasons, TRADES)


def _trade_invariants(t: pa.Table) -> List[Optional[str]]:
    """A fill moves a positive quantity at a non-negative price and fee."""
    zero = pa.scalar(0).cast(t["qty"].type)
    checks = [
        ("qty not positive", pc.greater(t["qty"], zero)),
        ("negative price", pc.greater_equal(t["price"], zero)),
        ("negative quote_qty", pc.greater_equal(t["quote_qty"], zero)),
        ("negative commission", pc.greater_equal(t["commission"], zero)),
    ]
    reasons: List[Optional[str]] = [None] * t.num_rows
    for reason, ok in checks:
        for i in _false_indices(ok):
            reasons[i] = reasons[i] or reason
    return reasons
