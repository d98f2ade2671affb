"""CSV export with the user's required report headers, derived from the schema.

Prices and quantities print exactly as Binance sent them (decimal128 keeps the 8
decimals); times print as ISO-8601 UTC.
"""

from __future__ import annotations

import contextlib
import csv
import sys
from decimal import Decimal
from typing import Any, Iterator, Optional, TextIO

from binance_lake.errors import BadInputError
from binance_lake.lake import Lake
from binance_lake.schema import TABLES

_TIME_FILTER = {"candles": "candle_open_time", "orders": "order_time"}
_ORDER_BY = {"candles": "candle_open_time", "orders": "order_id"}
_SYMBOL_COLUMN = {"candles": "trading_pair", "orders": "symbol"}


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
               end: Optional[int] = None) -> int:
    from binance_lake.query import connect

    table = TABLES[table_name]
    columns = table.report_columns()
    where, params = [f"{_SYMBOL_COLUMN[table_name]} = ?"], [symbol]
    for bound, op in ((start, ">="), (end, "<")):
        if bound is not None:
            where.append(f"epoch_ms({_TIME_FILTER[table_name]}) {op} ?")
            params.append(bound)
    sql = (f"SELECT {', '.join(c for c, _ in columns)} FROM {table_name} WHERE {' AND '.join(where)} "
           f"ORDER BY {_ORDER_BY[table_name]}")
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
