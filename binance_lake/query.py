"""DuckDB over the curated zone: the ``candles`` and ``orders`` views, status and gaps.

A local lake is read in place by DuckDB (``read_parquet`` with Hive partitions). An S3
lake is read through the lake interface into Arrow and registered, so no DuckDB
extension has to be downloaded.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from binance_lake import layout
from binance_lake.errors import BadInputError, LakeError, StorageError
from binance_lake.lake import Lake
from binance_lake.runs import read_last_run
from binance_lake.schema import CANDLES, OPEN_ORDER_STATUSES, ORDERS, TABLES, TRADES, Table, sql_in_list
from binance_lake.sources.coverage import exchange_gaps, merge_ranges, raw_coverage
from binance_lake.times import INTERVAL_MS, count_candles, interval_anchor, interval_ms, is_fixed, ms_to_iso, next_open


def _glob(table: Table) -> str:
    return layout.curated_glob(table)


class LakeConnection:
    """A DuckDB connection whose errors say what went wrong in lake terms.

    A curated file that DuckDB cannot read (a torn copy from another tool, a disk error) is
    reported with the way to rebuild it from raw; a bad SQL statement as bad input.
    """

    def __init__(self, con: Any):
        self.duckdb = con

    def execute(self, sql: str, params: Optional[List[Any]] = None) -> Any:
        import duckdb

        try:
            return self.duckdb.execute(sql, params) if params is not None else self.duckdb.execute(sql)
        except duckdb.Error as exc:
            raise lake_query_error(exc) from None


def lake_query_error(exc: Exception) -> LakeError:
    first = str(exc).splitlines()[0]
    if "parquet" in first.lower() and ("File '" in first or "file" in first.lower()):
        return StorageError(
            f"a curated file cannot be read: {first[:300]}; rebuild it from raw (REST windows and "
            "stored archive zips) with `binance-lake transform --rebuild --symbol <SYMBOL>`")
    return BadInputError(f"query failed: {first[:300]}")


def connect(lake: Lake) -> LakeConnection:
    """A connection with views ``candles`` and ``orders`` (partition columns included)."""
    import duckdb

    con = LakeConnection(duckdb.connect())
    con.execute("SET TimeZone='UTC'")
    for table in TABLES.values():
        _register(con, lake, table)
    from binance_lake.positions import register_positions

    register_positions(con)  # over the trades view: see binance_lake.positions
    return con


def glob_literal(path: str) -> str:
    """``path`` as a DuckDB glob that matches only itself.

    DuckDB expands ``*``, ``?`` and ``[...]`` in every path it reads (duckdb.org "Reading
    Multiple Files", glob syntax: ``[abc]`` matches one character given in the brackets), so a
    lake at ``lk?a`` would also read ``lkXa``. A one-character class is the escape: ``[?]``
    matches only ``?``, ``[[]`` only ``[`` (what Python's ``glob.escape`` does too).
    """
    return re.sub(r"([*?\[])", r"[\1]", path)


def _register(con: Any, lake: Lake, table: Table) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from binance_lake.columns import arrow_schema  # pyarrow: only where a view is built

    keys = [k for k in lake.list_keys(layout.partition_prefix(table)) if k.endswith(".parquet")]
    root = lake.local_path("")
    if keys and root is not None:
        pattern = layout.child(glob_literal(root), _glob(table)).replace("'", "''")
        hive_types = ", ".join(f"'{p.name}': 'VARCHAR'" for p in table.partition_keys)
        con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet('{pattern}', "
                    f"hive_partitioning=true, hive_types={{{hive_types}}})")
        return
    parts = []
    for key in keys:
        t = pq.read_table(io.BytesIO(lake.read_bytes(key)))
        values = layout.values_of(key)
        for p in table.partition_keys:
            value = values[p.name]
            t = t.append_column(p.name, pa.array([value] * t.num_rows, pa.string()))
        parts.append(t)
    if not parts:
        empty = arrow_schema(table).empty_table()
        for p in table.partition_keys:
            empty = empty.append_column(p.name, pa.array([], pa.string()))
        parts = [empty]
    con.duckdb.register(f"_{table.name}_arrow", pa.concat_tables(parts))
    con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM _{table.name}_arrow")


@dataclass
class SymbolStatus:
    symbol: str
    interval: str
    first_open: Optional[int]
    last_open: Optional[int]
    rows: int
    gaps: List[Tuple[int, int]] = field(default_factory=list)
    exchange_gaps: List[Tuple[int, int]] = field(default_factory=list)
    last_run: Optional[Dict[str, Any]] = None

    old_layout: int = 0  # day partitions of a month-grain interval (layout.is_old_layout)

    @property
    def missing_minutes(self) -> int:
        """Missing candles (named for the 1m lake it began as)."""
        return sum(count_candles(s, e, self.interval) for s, e in self.gaps)

    def as_dict(self) -> Dict[str, Any]:
        iso = lambda ms: ms_to_iso(ms) if ms is not None else None  # noqa: E731
        return {"symbol": self.symbol, "interval": self.interval, "first_candle": iso(self.first_open),
                "last_candle": iso(self.last_open), "rows": self.rows,
                "gaps": [[ms_to_iso(s), ms_to_iso(e)] for s, e in self.gaps],
                "missing_candles": self.missing_minutes,
                "exchange_gaps": [[ms_to_iso(s), ms_to_iso(e)] for s, e in self.exchange_gaps],
                "last_run": self.last_run,
                **({"old_layout_partitions": self.old_layout, "action": old_layout_action(self.symbol, self.interval)}
                   if self.old_layout else {})}


def old_layout_action(symbol: str, interval: str) -> str:
    return (f"{symbol} {interval} still has day partitions from before {interval} candles got month "
            f"partitions: run `binance-lake transform --rebuild --symbol {symbol}` to move them")


def candle_symbols(lake: Lake) -> List[Tuple[str, str]]:
    """(interval, symbol) pairs present in curated, REST raw or stored archive files."""
    found = set()
    for prefix in (layout.partition_prefix(CANDLES), layout.raw_prefix(CANDLES), layout.ARCHIVE):
        for interval_dir in lake.list_children(prefix):
            for symbol_dir in lake.list_children(layout.child(prefix, interval_dir)):
                found.add((layout.value_of(interval_dir), layout.value_of(symbol_dir)))
    return sorted(found)


def candle_gaps(con: Any, symbol: str, interval: str, exchange: List[Tuple[int, int]],
                bounds: Optional[Tuple[int, int]] = None
                ) -> Tuple[List[Tuple[int, int]], int, Optional[int], Optional[int]]:
    """Missing open-time ranges, minus exchange gaps: holes between curated candles, plus the
    head and tail of ``bounds`` (the range raw files cover) that curated lacks."""
    first, last, rows = con.execute(
        "SELECT epoch_ms(min(candle_open_time)), epoch_ms(max(candle_open_time)), count(*) FROM candles "
        "WHERE symbol = ? AND interval = ?", [symbol, interval]).fetchone()
    if is_fixed(interval):
        step = interval_ms(interval)
        holes = con.execute(
            "SELECT prev + ?, t FROM (SELECT epoch_ms(candle_open_time) AS t, "
            "lag(epoch_ms(candle_open_time)) OVER (ORDER BY candle_open_time) AS prev FROM candles "
            "WHERE symbol = ? AND interval = ?) WHERE t - prev > ? ORDER BY t",
            [step, symbol, interval, step]).fetchall()
    else:  # 1M: the next candle opens a calendar month later (28 to 31 days)
        holes = con.execute(
            "SELECT epoch_ms(expect), epoch_ms(t) FROM (SELECT candle_open_time AS t, "
            "lag(candle_open_time) OVER (ORDER BY candle_open_time) + INTERVAL 1 MONTH AS expect FROM candles "
            "WHERE symbol = ? AND interval = ?) WHERE t > expect ORDER BY t", [symbol, interval]).fetchall()
    missing = [(int(s), int(e)) for s, e in holes]
    if bounds is not None:
        lo, hi = bounds
        if first is None:
            missing = [bounds] if lo < hi else []
        else:
            after = next_open(int(last), interval)
            missing = ([(lo, int(first))] if lo < first else []) + missing + (
                [(after, hi)] if after < hi else [])
    return subtract_ranges(missing, exchange), rows, first, last


def subtract_ranges(ranges: List[Tuple[int, int]], minus: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    out = []
    cut = merge_ranges(minus)
    for s, e in ranges:
        pieces = [(s, e)]
        for cs, ce in cut:
            pieces = [p for a, b in pieces for p in ((a, min(b, cs)), (max(a, ce), b)) if p[0] < p[1]]
        out.extend(pieces)
    return out


def status(lake: Lake, con: Optional[Any] = None) -> List[SymbolStatus]:
    con = con or connect(lake)
    out = []
    for interval, symbol in candle_symbols(lake):
        exch = exchange_gaps(lake, symbol, interval)
        gaps, rows, first, last = candle_gaps(con, symbol, interval, exch, raw_coverage(lake, symbol, interval))
        last_run = read_last_run(lake, layout.run_table(CANDLES, interval), symbol)
        old = 0
        if layout.grain(interval) == layout.MONTH:  # only month-grain intervals can have the old layout
            held = layout.curated_candle_periods(lake.list_keys(layout.partition_prefix(
                CANDLES, interval=interval, symbol=symbol)))
            old = sum(1 for v in held if layout.is_old_layout(interval, v))
        out.append(SymbolStatus(symbol, interval, first, last, rows, gaps, exch, last_run, old))
    return out


def orders_status(con: Any) -> List[Dict[str, Any]]:
    sym, key = ORDERS.symbol_column, ORDERS.key_in_symbol
    rows = con.execute(f"SELECT {sym}, count(*), max({key}), sum(CASE WHEN status IN "
                       f"{sql_in_list(OPEN_ORDER_STATUSES)} THEN 1 ELSE 0 END), "
                       f"max(update_time) FROM {ORDERS.name} GROUP BY {sym} ORDER BY {sym}").fetchall()
    return [{"symbol": s, "orders": n, "max_order_id": m, "open_orders": int(o or 0),
             "last_update": u.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if u else None}
            for s, n, m, o, u in rows]


def trades_status(con: Any) -> List[Dict[str, Any]]:
    """Per symbol: trades, highest trade id, last trade time."""
    sym, key = TRADES.symbol_column, TRADES.key_in_symbol
    rows = con.execute(f"SELECT {sym}, count(*), max({key}), max({TRADES.time_column}) FROM {TRADES.name} "
                       f"GROUP BY {sym} ORDER BY {sym}").fetchall()
    return [{"symbol": s, "trades": n, "max_trade_id": m,
             "last_trade": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if t else None}
            for s, n, m, t in rows]


def add_time_range(where: List[str], params: List[Any], column: str, start: Optional[int],
                   end: Optional[int]) -> None:
    """Append ``column`` in ``[start, end)`` (epoch ms; either bound optional) to a WHERE list and
    its parameters: the one way every reader filters by time."""
    for bound, op in ((start, ">="), (end, "<")):
        if bound is not None:
            where.append(f"epoch_ms({column}) {op} ?")
            params.append(bound)


# -- resampling 1m candles ---------------------------------------------------------------------

# Every interval from 1m up (times.INTERVALS); buckets are UTC and anchored as Binance's
# (times.interval_anchor: weekly candles open on Monday, the rest count from the epoch; 1M on the 1st).
RESAMPLE_MS: Dict[str, int] = {**{k: v for k, v in INTERVAL_MS.items() if v >= 60_000}, "1M": 0}
# Binance's rule for an interval's candle from its 1m candles: open of the first minute, highest
# high, lowest low, close of the last minute, sums of volumes and trades (the emulator's agg_row).
_RESAMPLE_SELECT = """
    arg_min(open_price, t) AS open_price, max(high_price) AS high_price, min(low_price) AS low_price,
    arg_max(close_price, t) AS close_price, sum(base_volume) AS base_volume, sum(quote_volume) AS quote_volume,
    sum(taker_buy_base_volume) AS taker_buy_base_volume, sum(taker_buy_quote_volume) AS taker_buy_quote_volume,
    CAST(sum(number_of_trades) AS BIGINT) AS number_of_trades"""


def _bucket_sql(interval: str) -> Tuple[str, str]:
    """DuckDB expressions (open ms, close ms) of the bucket holding 1m open time ``t`` (ms)."""
    if interval == "1M":
        month = "date_trunc('month', candle_open_time)"
        return f"epoch_ms({month})", f"epoch_ms({month} + INTERVAL 1 MONTH) - 1"
    step = RESAMPLE_MS[interval]
    anchor = interval_anchor(interval)
    open_ms = f"((t - {anchor}) // {step}) * {step} + {anchor}"
    return open_ms, f"{open_ms} + {step - 1}"


def resample_candles(con: LakeConnection, symbol: str, interval: str, start: Optional[int] = None,
                     end: Optional[int] = None) -> Any:
    """``symbol``'s 1m candles with open time in ``[start, end)`` folded into ``interval`` candles
    (a pyarrow.Table, decimals exact, sorted by open time). ``candles_1m`` counts the minutes each
    holds: a bucket the range cuts, or with missing minutes, has fewer than the interval's."""
    if interval not in RESAMPLE_MS:
        raise BadInputError(f"cannot resample 1m candles to {interval!r}; use one of {', '.join(RESAMPLE_MS)}")
    open_sql, close_sql = _bucket_sql(interval)
    where: List[str] = ["interval = '1m'", "symbol = ?"]
    params: List[Any] = [symbol]
    add_time_range(where, params, "candle_open_time", start, end)
    sql = f"""
        WITH m AS (SELECT *, epoch_ms(candle_open_time) AS t FROM candles WHERE {' AND '.join(where)}),
        b AS (SELECT *, {open_sql} AS bucket_open, {close_sql} AS bucket_close FROM m)
        SELECT any_value(trading_pair) AS trading_pair, {_RESAMPLE_SELECT},
               make_timestamp(bucket_open * 1000) AS candle_open_time,
               make_timestamp(any_value(bucket_close) * 1000) AS candle_close_time,
               count(*) AS candles_1m
        FROM b GROUP BY bucket_open ORDER BY bucket_open"""
    import duckdb
    import pyarrow as pa

    try:  # a relation streams into Arrow (duckdb.org/docs/2.0/guides/python/export_arrow)
        tbl = con.duckdb.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise lake_query_error(exc) from None
    ms = pa.timestamp("ms", tz="UTC")
    for name in ("candle_open_time", "candle_close_time"):
        i = tbl.schema.get_field_index(name)
        tbl = tbl.set_column(i, pa.field(name, ms, nullable=False), tbl[name].cast(pa.timestamp("ms")).cast(ms))
    return tbl
