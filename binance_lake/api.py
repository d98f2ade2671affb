"""The Python API: read a lake (local directory or ``s3://bucket/prefix``) from a notebook.

    import binance_lake
    lake = binance_lake.open_lake("./lake")
    tbl = lake.candles("BTCUSDT", "1m", start="2024-03-01", end="2024-03-02")  # pyarrow.Table, exact
    df = lake.candles("BTCUSDT", floats=True).to_pandas()   # float64 columns (or polars.from_arrow)
    hourly = lake.ohlcv("BTCUSDT", "1h", "2024-03-01", "2024-03-02")  # resampled from 1m in DuckDB
    lake.sql("SELECT date, max(high_price) FROM candles GROUP BY date")

A thin facade over the core (``schema``, ``lake``, ``times``, ``query``): the names here are the
stable surface, whatever the modules behind them become. Importing this module is cheap:
pyarrow and DuckDB are imported inside the functions that need them, because the extractor
Lambdas import the package and carry neither.

Reads prune by partition: ``candles``/``orders`` list the ``date=`` partitions of one symbol
(a UTC day, or a UTC month for candles from 1h up: ``binance_lake.layout.grain``) and open only
the ones the range touches, so a one-day read of a year-long 1m lake reads one file. Values
come back exactly as stored: prices and quantities ``decimal128(38, 8)``, times
``timestamp[ms, tz=UTC]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from binance_lake import layout
from binance_lake.errors import BadInputError, StorageError
from binance_lake.lake import Lake
from binance_lake.lake import open_lake as _open_storage
from binance_lake.schema import CANDLES, ORDERS, TRADES, Table
from binance_lake.times import interval_ms, ms_to_iso, parse_time

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

TimeLike = Union[str, datetime, date, None]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def open_lake(uri: str = "./lake", *, s3_client: Optional[object] = None) -> LakeReader:
    """A read handle on the lake at ``uri``: a directory, or ``s3://bucket[/prefix]``.

    S3 uses boto3's default credential chain (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``/
    ``AWS_SECRET_ACCESS_KEY``, a role), as the CLI's ``--lake s3://..`` does; ``s3_client``
    overrides it (e.g. a client for a custom endpoint).
    """
    if not isinstance(uri, (str, os.PathLike)):
        raise BadInputError(f"open_lake() takes a directory or an s3:// URI, not {type(uri).__name__}")
    uri = os.fspath(uri)
    if not uri.startswith("s3://") and "://" not in uri and not os.path.isdir(uri):
        raise BadInputError(
            f"lake directory {uri!r} does not exist; pass the directory the CLI's --lake wrote "
            "(default ./lake), or create one with `binance-lake sync candles --symbol BTCUSDT`")
    return LakeReader(uri, _open_storage(uri, s3_client))


@dataclass(frozen=True)
class LakeReader:
    """Read-only access to one lake. Every call reads the lake as it is now (no cache)."""

    uri: str
    storage: Lake = field(repr=False)

    # -- what is there --------------------------------------------------------------------

    def symbols(self, table: str = "candles") -> List[str]:
        """Symbols with curated rows in ``table`` (``candles`` or ``orders``)."""
        if table == "candles":
            return sorted({s for _, s in self._candle_sets()})
        if table in ("orders", "trades"):
            prefix = layout.partition_prefix(ORDERS if table == "orders" else TRADES)
            return sorted(_value(d) for d in self.storage.list_children(prefix))
        raise BadInputError(f"unknown table {table!r}; use candles, orders or trades")

    def intervals(self, symbol: Optional[str] = None) -> List[str]:
        """Candle intervals in the lake (for one symbol if given)."""
        sym = symbol.upper() if symbol else None
        return sorted({i for i, s in self._candle_sets() if sym is None or s == sym})

    def status(self) -> Dict[str, List[Dict[str, Any]]]:
        """What ``binance-lake status --json`` prints: per symbol first/last candle, rows, gaps,
        exchange gaps and last run; per symbol orders, open orders and last update; per symbol
        trades and the final orders that disagree with them."""
        from binance_lake.query import connect, orders_status, status
        from binance_lake.reconcile import trades_status

        con = connect(self.storage)
        return {"candles": [s.as_dict() for s in status(self.storage, con)], "orders": orders_status(con),
                "trades": trades_status(self.storage, con)}

    # -- typed reads ----------------------------------------------------------------------

    def candles(self, symbol: str, interval: str = "1m", start: TimeLike = None,
                end: TimeLike = None, floats: bool = False) -> pa.Table:
        """Candles of ``symbol`` whose open time is in ``[start, end)``, sorted by open time.

        ``start``/``end``: ``datetime`` (naive means UTC), ``date`` (midnight UTC) or an ISO-8601
        string (``2024-03-01``, ``2024-03-01T12:00:00Z``); ``None`` leaves that side open.
        Columns are those of ``binance_lake.schema.CANDLES`` (decimals exact, times ms UTC;
        ``floats=True``: float64 instead of decimals).
        """
        interval_ms(interval)  # an interval Binance does not have: the error lists the valid ones
        sym = symbol.upper()
        if (interval, sym) not in self._candle_sets():
            raise BadInputError(self._missing("candles", f"{sym} {interval}",
                                              [f"{s} {i}" for i, s in self._candle_sets()]))
        lo, hi = _range(start, end)
        prefix = _days_parent(CANDLES, interval=interval, symbol=sym)
        return _maybe_floats(self._read(CANDLES, prefix, CANDLES.time_column, lo, hi), floats)

    def ohlcv(self, symbol: str, interval: str = "1h", start: TimeLike = None, end: TimeLike = None,
              floats: bool = False) -> pa.Table:
        """``symbol``'s 1m candles with open time in ``[start, end)`` resampled to ``interval``
        (3m .. 1d, 3d, 1w from Monday, 1M by calendar month) in DuckDB, by Binance's rule: open of
        the first minute, highest high, lowest low, close of the last minute, sums of the volumes
        and trades. The columns of ``candles`` without lineage, plus ``candles_1m``: the minutes in
        each bucket (fewer than the interval's where the lake or the exchange has a gap, or the
        range cuts the bucket). Decimals stay exact unless ``floats=True``."""
        from binance_lake.query import connect, resample_candles

        sym = symbol.upper()
        if ("1m", sym) not in self._candle_sets():
            raise BadInputError(self._missing("candles", f"{sym} 1m",
                                              [f"{s} {i}" for i, s in self._candle_sets()]))
        lo, hi = _range(start, end)
        return _maybe_floats(resample_candles(connect(self.storage), sym, interval, lo, hi), floats)

    def orders(self, symbol: str, start: TimeLike = None, end: TimeLike = None,
               status: Union[str, Sequence[str], None] = None, floats: bool = False) -> pa.Table:
        """Orders of ``symbol`` created (``order_time``) in ``[start, end)``, sorted by creation
        time then order id; ``status`` keeps only orders in that status (a name or a list)."""
        sym = symbol.upper()
        known = self.symbols("orders")
        if sym not in known:
            raise BadInputError(self._missing("orders", sym, known))
        lo, hi = _range(start, end)
        prefix = _days_parent(ORDERS, symbol=sym)
        tbl = _maybe_floats(self._read(ORDERS, prefix, ORDERS.time_column, lo, hi,
                                       extra_sort=ORDERS.key_in_symbol), floats)
        if status is None:
            return tbl
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = [status] if isinstance(status, str) else list(status)
        return tbl.filter(pc.is_in(tbl["status"], value_set=pa.array([s.upper() for s in wanted], pa.string())))

    def trades(self, symbol: str, start: TimeLike = None, end: TimeLike = None,
               order_id: Optional[int] = None, floats: bool = False) -> pa.Table:
        """The account's fills of ``symbol`` with ``trade_time`` in ``[start, end)``, sorted by time
        then trade id; ``order_id`` keeps the fills of one order. Columns: ``schema.TRADES``."""
        sym = symbol.upper()
        known = self.symbols("trades")
        if sym not in known:
            raise BadInputError(self._missing("trades", sym, known))
        lo, hi = _range(start, end)
        tbl = _maybe_floats(self._read(TRADES, _days_parent(TRADES, symbol=sym), TRADES.time_column, lo, hi,
                                       extra_sort=TRADES.key_in_symbol), floats)
        if order_id is None:
            return tbl
        import pyarrow.compute as pc

        return tbl.filter(pc.equal(tbl["order_id"], int(order_id)))

    # -- SQL --------------------------------------------------------------------------------

    def sql(self, query: str, params: Optional[Iterable[Any]] = None) -> pa.Table:
        """Run ``query`` in DuckDB over the views ``candles`` and ``orders`` (the CLI ``query``
        views: every column plus the partition columns ``interval``, ``symbol``, ``date``).
        ``?`` placeholders take ``params``. Returns a pyarrow.Table (DuckDB's Arrow types:
        decimals stay ``decimal128(38, 8)``, timestamps become ``timestamp[us, tz=UTC]``).

        On S3 each call downloads the curated objects (no DuckDB extension needed); for many
        queries keep one connection from :meth:`duckdb`.
        """
        import duckdb

        from binance_lake.query import lake_query_error

        con = self.duckdb()
        try:
            # Relation API: to_arrow_table() on a relation streams; on an execute() result it copies
            # and warns (duckdb.org/docs/2.0/guides/python/export_arrow, "Export to Apache Arrow").
            return con.sql(query, params=list(params) if params is not None else None).to_arrow_table()
        except duckdb.Error as exc:
            raise lake_query_error(exc) from None

    def duckdb(self) -> Any:
        """A DuckDB connection with the views ``candles`` and ``orders`` (session time zone UTC),
        the same the CLI ``query`` command uses; yours to keep and query many times."""
        from binance_lake.query import connect

        return connect(self.storage).duckdb

    # -- internals -------------------------------------------------------------------------

    def _candle_sets(self) -> List[Tuple[str, str]]:
        """(interval, symbol) pairs with curated candles."""
        root = layout.partition_prefix(CANDLES)
        return sorted((_value(i), _value(s)) for i in self.storage.list_children(root)
                      for s in self.storage.list_children(layout.child(root, i)))

    def _missing(self, table: str, what: str, present: Sequence[str]) -> str:
        held = ", ".join(present) if present else "nothing yet"
        return (f"no curated {table} for {what} in lake {self.uri}; it holds: {held}. Sync it first, "
                f"e.g. `binance-lake sync {table} --symbol {what.split()[0]} --lake {self.uri}`")

    def _read(self, table: Table, prefix: str, time_col: str, lo: Optional[int], hi: Optional[int],
              extra_sort: Optional[str] = None) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        days = [d for d in self.storage.list_children(prefix) if layout.period_in(_value(d), lo, hi)]
        parts = [self._read_part(layout.child(layout.child(prefix, d), name)) for d in days
                 for name in self.storage.list_children(layout.child(prefix, d)) if name.endswith(".parquet")]
        from binance_lake.columns import arrow_schema

        schema = arrow_schema(table)
        tbl = pa.concat_tables(parts) if parts else schema.empty_table()
        ms = pc.cast(tbl[time_col], pa.int64())
        mask = None
        for bound, cmp in ((lo, pc.greater_equal), (hi, pc.less)):
            if bound is not None:
                cond = cmp(ms, pa.scalar(bound, pa.int64()))
                mask = cond if mask is None else pc.and_(mask, cond)
        if mask is not None:
            tbl = tbl.filter(mask)
        keys = [(time_col, "ascending")] + ([(extra_sort, "ascending")] if extra_sort else [])
        return tbl.sort_by(keys)

    def _read_part(self, key: str) -> pa.Table:
        import io

        import pyarrow.parquet as pq

        local = self.storage.local_path(key)
        try:
            return pq.read_table(local if local is not None else io.BytesIO(self.storage.read_bytes(key)))
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
            symbol = layout.values_of(key).get("symbol", "<SYMBOL>")
            raise StorageError(
                f"a curated file cannot be read: {key} ({type(exc).__name__}); rebuild it from raw with "
                f"`binance-lake transform --rebuild --symbol {symbol}`") from None


def _maybe_floats(tbl: pa.Table, floats: bool) -> pa.Table:
    """Decimal columns as float64 when asked: what pandas and polars compute with (a Decimal column
    becomes Python objects in pandas). Exactness is the default; this is the analyst's choice."""
    if not floats:
        return tbl
    import pyarrow as pa

    for i, f in enumerate(tbl.schema):
        if pa.types.is_decimal(f.type):
            # Through the decimal text: Arrow's decimal -> double cast is not correctly rounded
            # (25427.35 became 25427.350000000002); its text parser is, so each value is the
            # float nearest the exact decimal, as float(Decimal) gives.
            col = tbl.column(i).cast(pa.string()).cast(pa.float64())
            tbl = tbl.set_column(i, pa.field(f.name, pa.float64(), f.nullable), col)
    return tbl


def _days_parent(table: Table, **values: str) -> str:
    """The key prefix holding the ``date=`` partitions of one symbol (layout from the schema)."""
    return layout.partition_prefix(table, **values)


def _value(partition_dir: str) -> str:
    return layout.value_of(partition_dir)


def _range(start: TimeLike, end: TimeLike) -> Tuple[Optional[int], Optional[int]]:
    lo, hi = to_epoch_ms(start, "start"), to_epoch_ms(end, "end")
    if lo is not None and hi is not None and hi <= lo:
        raise BadInputError(f"end {ms_to_iso(hi)} is not after start {ms_to_iso(lo)}; "
                            "end is exclusive, so give an end later than start")
    return lo, hi


def to_epoch_ms(value: TimeLike, what: str = "time") -> Optional[int]:
    """``datetime`` (naive = UTC), ``date`` (midnight UTC) or ISO-8601 string -> epoch ms."""
    if value is None:
        return None
    if isinstance(value, datetime):  # before date: a datetime is a date too (pandas.Timestamp is a datetime)
        dt = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return (dt - _EPOCH) // _MS
    if isinstance(value, date):
        return (datetime(value.year, value.month, value.day, tzinfo=timezone.utc) - _EPOCH) // _MS
    if isinstance(value, str):
        return parse_time(value, what)
    raise BadInputError(f"bad {what} {value!r} ({type(value).__name__}): use a datetime, a date or an "
                        "ISO-8601 string such as 2024-03-01T00:00:00Z")


__all__ = ["LakeReader", "open_lake", "to_epoch_ms"]
