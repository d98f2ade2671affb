"""CSV export with the user's required report headers, derived from the schema; and candles
in freqtrade's parquet layout (``export_freqtrade``).

Prices and quantities print exactly as Binance sent them (decimal128 keeps the 8
decimals); times print as ISO-8601 UTC.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from decimal import Decimal
from typing import Any, Callable, Iterator, List, Optional, TextIO, Tuple

from binance_lake.errors import BadInputError
from binance_lake.lake import Lake
from binance_lake.schema import CANDLES, TABLES
from binance_lake.times import interval_ms


def _iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"  # 0.00000000, never 0E-8: as Binance prints it
    if hasattr(value, "strftime"):
        return _iso(value)
    return str(value)


@contextlib.contextmanager
def _output(path: str, wrote_rows: Callable[[], bool]) -> Iterator[TextIO]:
    """Where the CSV goes. A file is written beside ``path`` and moved over it only if
    ``wrote_rows()`` says rows went in: an export of nothing never replaces an earlier file."""
    if path == "-":
        yield sys.stdout
        return
    tmp = path + ".tmp"
    try:
        fh = open(tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BadInputError(f"cannot write --output {path}: {exc.strerror}") from None
    try:
        with fh:
            yield fh
        if wrote_rows():
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_csv(lake: Lake, table_name: str, symbol: str, output: str, start: Optional[int] = None,
               end: Optional[int] = None, interval: Optional[str] = None) -> int:
    """One symbol's rows with the report headers. Candles are one interval per CSV: ``interval``,
    or the only one the lake holds for the symbol (several and none named: a clear error)."""
    from binance_lake.query import add_time_range, candle_symbols, connect

    table = TABLES[table_name]
    columns = table.report_columns()
    where: List[str] = [f"{table.symbol_column} = ?"]
    params: List[Any] = [symbol]
    if table is CANDLES:
        if interval:
            interval_ms(interval)  # an unsupported interval is a clear error, not an empty CSV
        where.append("interval = ?")
        params.append(interval or _only_interval(sorted({i for i, s in candle_symbols(lake) if s == symbol}),
                                                 symbol))
    add_time_range(where, params, table.time_column, start, end)
    sql = (f"SELECT {', '.join(c for c, _ in columns)} FROM {table_name} WHERE {' AND '.join(where)} "
           f"ORDER BY {table.time_column if table is CANDLES else table.key_in_symbol}")
    cur = connect(lake).execute(sql, params)
    n = 0
    with _output(output, lambda: n > 0) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([h for _, h in columns])
        while True:
            batch = cur.fetchmany(10_000)
            if not batch:
                break
            writer.writerows([cell_text(v) for v in row] for row in batch)
            n += len(batch)
    return n


def _only_interval(intervals: List[str], symbol: str) -> str:
    if len(intervals) > 1:
        raise BadInputError(f"the lake holds {symbol} candles of several intervals ({', '.join(intervals)}); "
                            "name one with --interval (one CSV per interval)")
    return intervals[0] if intervals else "1m"


# -- freqtrade's parquet layout ----------------------------------------------------------------

# freqtrade (github.com/freqtrade/freqtrade @ c9ae5e1e): constants.DEFAULT_DATAFRAME_COLUMNS;
# data/history/datahandlers/parquetdatahandler.py reads ``<datadir>/<pair>-<tf>.parquet``, renames
# the columns to these, casts the prices and volume to float and ``date`` with
# ``to_datetime(..., unit="ms", utc=True)``; its own files hold ``date`` as a UTC timestamp.
FREQTRADE_COLUMNS = ["date", "open", "high", "low", "close", "volume"]
# Quote assets tried, longest first, to turn BTCUSDT into freqtrade's pair BTC/USDT.
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL",
                "JPY", "GBP", "AUD", "DAI")


def freqtrade_pair(symbol: str, pair: Optional[str] = None) -> str:
    """``BTCUSDT`` -> ``BTC/USDT`` (``pair`` when given, checked as BASE/QUOTE)."""
    if pair:
        base, sep, quote = pair.upper().partition("/")
        if not sep or not base or not quote or base + quote != symbol:
            raise BadInputError(f"--pair {pair!r} is not {symbol} as BASE/QUOTE, e.g. BTC/USDT for BTCUSDT")
        return f"{base}/{quote}"
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    raise BadInputError(f"cannot tell the base and quote assets of {symbol}; give them with --pair BASE/QUOTE")


def freqtrade_file_name(pair: str, interval: str) -> str:
    """freqtrade's file name: misc.pair_to_filename (``/`` and `` .@$+:`` become ``_``) and
    IDataHandler.timeframe_to_file (``1M`` -> ``1Mo``)."""
    for ch in "/ .@$+:":
        pair = pair.replace(ch, "_")
    return f"{pair}-{interval.replace('M', 'Mo')}.parquet"


def export_freqtrade(lake: Lake, symbol: str, interval: str, out_dir: str, start: Optional[int] = None,
                     end: Optional[int] = None, pair: Optional[str] = None) -> Tuple[str, int]:
    """One symbol's candles of ``interval`` as freqtrade's parquet data handler reads them; the
    interval's stored candles, else the 1m candles resampled (query.resample_candles). Returns
    (path, rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from binance_lake.query import candle_symbols, connect, resample_candles

    name = freqtrade_file_name(freqtrade_pair(symbol, pair), interval)
    held = {i for i, s in candle_symbols(lake) if s == symbol}
    if interval not in held and "1m" not in held:
        raise BadInputError(f"the lake holds no {interval} or 1m candles of {symbol} (it has: "
                            f"{', '.join(sorted(held)) or 'none'}); sync them first")
    con = connect(lake)
    if interval in held:
        tbl = _stored_candles(con, symbol, interval, start, end)
    else:
        tbl = resample_candles(con, symbol, interval, start, end)
    out = pa.table({"date": tbl["candle_open_time"].cast(pa.timestamp("ms", tz="UTC")),
                    **{short: _float(tbl[col]) for short, col in (
                        ("open", "open_price"), ("high", "high_price"), ("low", "low_price"),
                        ("close", "close_price"), ("volume", "base_volume"))}})
    path = os.path.join(out_dir, name)
    if not out.num_rows:
        return path, 0  # nothing to write: an earlier file of this pair and timeframe stays as it was
    try:
        os.makedirs(out_dir, exist_ok=True)
        tmp = path + ".tmp"
        pq.write_table(out, tmp)
        os.replace(tmp, path)  # a reader (a running freqtrade) never sees half a file
    except OSError as exc:
        raise BadInputError(f"cannot write --output {out_dir}: {exc.strerror or exc}") from None
    return path, out.num_rows


def _stored_candles(con: Any, symbol: str, interval: str, start: Optional[int], end: Optional[int]) -> Any:
    from binance_lake.query import add_time_range

    where: List[str] = ["symbol = ?", "interval = ?"]
    params: List[Any] = [symbol, interval]
    add_time_range(where, params, "candle_open_time", start, end)
    sql = (f"SELECT candle_open_time, open_price, high_price, low_price, close_price, base_volume FROM candles "
           f"WHERE {' AND '.join(where)} ORDER BY candle_open_time")
    import duckdb

    from binance_lake.query import lake_query_error

    try:
        return con.duckdb.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise lake_query_error(exc) from None


def _float(col: Any) -> Any:
    import pyarrow as pa

    return col.cast(pa.string()).cast(pa.float64())  # the float nearest each decimal (see api._maybe_floats)
