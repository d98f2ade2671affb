"""CSV export with the user's required report headers, derived from the schema.

Prices and quantities print exactly as Binance sent them (decimal128 keeps the 8
decimals); times print as ISO-8601 UTC.
"""

from __future__ import annotations

import contextlib
import csv
import sys
from decimal import Decimal
from typing import Any, Iterator, List, Optional, TextIO

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
def _output(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        return
    try:
        fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BadInputError(f"cannot write --output {path}: {exc.strerror}") from None
    with fh:
        yield fh


def export_csv(lake: Lake, table_name: str, symbol: str, output: str, start: Optional[int] = None,
               end: Optional[int] = None, interval: Optional[str] = None) -> int:
    """One symbol's rows with the report headers. Candles are one interval per CSV: ``interval``,
    or the only one the lake holds for the symbol (several and none named: a clear error)."""
    from binance_lake.query import candle_symbols, connect

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
    for bound, op in ((start, ">="), (end, "<")):
        if bound is not None:
            where.append(f"epoch_ms({table.time_column}) {op} ?")
            params.append(bound)
    sql = (f"SELECT {', '.join(c for c, _ in columns)} FROM {table_name} WHERE {' AND '.join(where)} "
           f"ORDER BY {table.time_column if table is CANDLES else table.key_in_symbol}")
    cur = connect(lake).execute(sql, params)
    n = 0
    with _output(output) as fh:
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
