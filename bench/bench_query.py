"""Benchmark 4: DuckDB over a lake of the full history size (~4.5 M 1m candles).

The lake is generated straight from Arrow with the core's schema (bench/genlake.py), one
partition per day, like the transform writes it. Queried through ``binance_lake.query.connect``
(the views the CLI uses): daily OHLCV for a year, and the last 24 hours, each with and
without a ``date`` partition filter, plus the same through ``binance-lake query`` in a fresh
process (start-up + view creation + query). Goal: under 0.5 s each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cli_command, goal, machine, run_timed, secs, table, write_result
from bench.genlake import write_days
from binance_lake.lake import LocalLake
from binance_lake.times import MS_PER_DAY, ms_to_date, ms_to_iso, parse_time

SYMBOL = "BTCUSDT"
END = parse_time("2026-01-01")  # exclusive: the lake's last day is 2025-12-31
GOAL_S = 0.5
FULL_DAYS = 3125  # 4.5 M candles: 2017-08 .. 2025-12, BTCUSDT's history


def queries(end_ms: int) -> Dict[str, str]:
    year_start, day_ago = ms_to_date(end_ms - 365 * MS_PER_DAY), ms_to_iso(end_ms - MS_PER_DAY)
    last_dates = f"'{ms_to_date(end_ms - 2 * MS_PER_DAY)}'"
    daily = ("SELECT date, arg_min(open_price, candle_open_time) AS open, max(high_price) AS high, "
             "min(low_price) AS low, arg_max(close_price, candle_open_time) AS close, "
             "sum(base_volume) AS base_volume, sum(quote_volume) AS quote_volume, "
             "sum(number_of_trades) AS trades FROM candles WHERE symbol = 'BTCUSDT' AND interval = '1m' "
             "{filter} GROUP BY date ORDER BY date")
    last = ("SELECT candle_open_time, open_price, high_price, low_price, close_price, base_volume FROM candles "
            f"WHERE symbol = 'BTCUSDT' AND interval = '1m' AND candle_open_time >= TIMESTAMPTZ '{day_ago}' "
            "{filter} ORDER BY candle_open_time")
    return {
        "daily OHLCV, 1 year (date filter)": daily.format(filter=f"AND date >= '{year_start}'"),
        "daily OHLCV, 1 year (time filter only)": daily.format(
            filter=f"AND candle_open_time >= TIMESTAMPTZ '{ms_to_iso(end_ms - 365 * MS_PER_DAY)}'"),
        "last 24 h (date filter)": last.format(filter=f"AND date >= {last_dates}"),
        "last 24 h (time filter only)": last.format(filter=""),
    }


def timed(fn: Callable[[], Any], n: int) -> Dict[str, float]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"first_s": first, "median_s": statistics.median(runs)}


def build_lake(path: str, days: int) -> Dict[str, float]:
    t0 = time.perf_counter()
    rows = write_days(LocalLake(path), SYMBOL, END - days * MS_PER_DAY, days)
    return {"rows": rows, "days": days, "generate_s": time.perf_counter() - t0}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="same lake size (it is what is measured), fewer repeats")
    ap.add_argument("--days", type=int, default=FULL_DAYS)
    ap.add_argument("--lake", help="reuse this generated lake directory (default: a fresh temporary one)")
    args = ap.parse_args(argv)
    n = 3 if args.quick else 7
    path = args.lake or tempfile.mkdtemp(prefix="bench-query-")
    built = build_lake(path, args.days) if not (Path(path) / "curated").exists() else {"reused": True}
    from binance_lake.query import connect

    lake = LocalLake(path)
    t0 = time.perf_counter()
    con = connect(lake)
    connect_s = time.perf_counter() - t0
    rows_total = con.execute("SELECT count(*) FROM candles").fetchone()[0]
    results: Dict[str, Any] = {}
    table_rows = []
    for name, sql in queries(END).items():
        r = timed(lambda sql=sql: con.execute(sql).fetchall(), n)
        r["rows"] = len(con.execute(sql).fetchall())
        results[name] = r
        table_rows.append([name, r["rows"], secs(r["first_s"]), secs(r["median_s"]), goal(r["median_s"] < GOAL_S)])
    cli_s, _ = run_timed([*cli_command(), "query", "--lake", path, "--format", "csv",
                          queries(END)["daily OHLCV, 1 year (date filter)"]])
    md = "\n".join([
        f"## 4. Query: DuckDB over {rows_total:,} candles ({args.days} daily partitions)", "",
        f"`binance_lake.query.connect` (views over `read_parquet` with Hive partitions); view creation "
        f"(lists the lake) {secs(connect_s)}. Median of {n} runs after a first (cold) run; {machine()}.", "",
        table(["query", "rows", "first run", "median", "goal < 500 ms"], table_rows), "",
        f"End to end, `binance-lake query` (fresh process: start-up, views, daily OHLCV of a year): {secs(cli_s)}.",
        "Partition pruning: filtering on `date` lets DuckDB skip whole files; a filter on the timestamp only "
        "still reads every file's footer and uses row-group statistics.",
    ])
    write_result("query", md, {"rows": rows_total, "connect_s": connect_s, "cli_s": cli_s, "build": built,
                               "queries": results})
    print(md)
    if not args.lake:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
