"""The archive backfill on Spark (Glue Spark job): many symbols and months at once.

The driver plans (one tiny ``.CHECKSUM`` request per candidate file, as on one machine)
and hands one row per archive file to ``mapInArrow``. Each task runs
:func:`binance_lake.archive.process_file` -- the very code of the single-machine
backfill: verify against the published sha256, store the zip, ``candles_from_arrow``,
merge each UTC day into ``curated/candles/...`` through the lake, write the sidecar.
So the output is the same layout, byte-for-byte the same rows except lineage time.

Why Spark only as the executor, not its DataFrame writer: the curated layout is one
``part-0.parquet`` per (symbol, date) written whole and atomically, with the core
schema; Spark's writer would produce ``part-<uuid>`` files and its own types. Files
never share a day partition (monthly and daily files of a month are exclusive), so
tasks never write the same key.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pyarrow as pa

from binance_lake.archive import (
    EARLIEST_ARCHIVE_MS,
    ArchiveConfig,
    ArchiveFile,
    PlannedFile,
    plan_files,
    process_file,
    utc_now_ms,
)
from binance_lake.lake import open_lake
from binance_lake.times import day_start

TASK_SCHEMA = pa.schema([("symbol", pa.string()), ("interval", pa.string()), ("period", pa.string()),
                         ("published", pa.string()), ("first", pa.bool_())])
RESULT_SCHEMA = pa.schema([("symbol", pa.string()), ("file", pa.string()), ("status", pa.string()),
                           ("rows", pa.int64()), ("rejected", pa.int64()), ("downloaded", pa.bool_()),
                           ("exchange_gaps", pa.int64()), ("reason", pa.string())])


def plan(symbols: Sequence[str], start: Optional[int], end: Optional[int], cfg: ArchiveConfig,
         interval: str = "1m", now_ms: Optional[int] = None) -> List[PlannedFile]:
    now_ms = utc_now_ms() if now_ms is None else now_ms
    start = EARLIEST_ARCHIVE_MS if start is None else start
    end = day_start(now_ms) if end is None else end
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        return [p for s in symbols for p in plan_files(s, interval, start, end, now_ms, cfg, pool)
                if p.published is not None]


def process_batches(batches: Iterator[pa.RecordBatch], lake_uri: str, cfg: ArchiveConfig
                    ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: runs on the executors, one archive file per input row."""
    lake = open_lake(lake_uri)
    for batch in batches:
        out: List[Dict[str, Any]] = []
        for task in batch.to_pylist():
            f = ArchiveFile(task["symbol"], task["interval"], task["period"])
            r = process_file(lake, PlannedFile(f, task["published"], bool(task["first"])), cfg)
            out.append({"symbol": f.symbol, "file": r.file, "status": r.status, "rows": r.rows,
                        "rejected": r.rejected, "downloaded": r.downloaded,
                        "exchange_gaps": len(r.exchange_gaps), "reason": r.reason})
        yield pa.RecordBatch.from_pylist(out, schema=RESULT_SCHEMA)


def backfill_spark(spark: Any, lake_uri: str, symbols: Sequence[str], start: Optional[int], end: Optional[int],
                   cfg: ArchiveConfig, interval: str = "1m", now_ms: Optional[int] = None,
                   partitions: Optional[int] = None) -> List[Dict[str, Any]]:
    """Plan on the driver, process every file on the executors; per-file results."""
    planned = plan(symbols, start, end, cfg, interval, now_ms)
    if not planned:
        return []
    tasks = [(p.file.symbol, p.file.interval, p.file.period, p.published, p.first) for p in planned]
    n = partitions or min(len(planned), max(1, spark.sparkContext.defaultParallelism))
    # One file per row and round-robin partitions, so each task gets whole files.
    df = spark.createDataFrame(tasks, _spark_schema(TASK_SCHEMA)).repartition(n)
    body = functools.partial(process_batches, lake_uri=lake_uri, cfg=cfg)
    return [r.asDict() for r in df.mapInArrow(body, _spark_schema(RESULT_SCHEMA)).collect()]


def _spark_schema(schema: pa.Schema) -> str:
    names = {pa.string(): "string", pa.int64(): "bigint", pa.bool_(): "boolean"}
    return ", ".join(f"{f.name} {names[f.type]}" for f in schema)


def glue_main(argv: Sequence[str]) -> int:
    """``--lake_uri s3://.. --symbols BTCUSDT,ETHUSDT [--start 2017-08] [--end 2026-11] [--archive_url URL]``."""
    import json

    from pyspark.sql import SparkSession

    from binance_lake.cloud import csv_list, parse_glue_args
    from binance_lake.times import optional_time

    args = parse_glue_args(argv, ["lake_uri", "symbols"], {"archive_url": ArchiveConfig.base_url})
    month = {k: (args[k] + "-01" if len(args.get(k) or "") == 7 else args.get(k)) for k in ("start", "end")}
    spark = SparkSession.builder.appName("binance-lake-backfill").getOrCreate()
    results = backfill_spark(spark, args["lake_uri"], csv_list(args["symbols"]),
                             optional_time(month["start"], "--start"), optional_time(month["end"], "--end"),
                             ArchiveConfig(base_url=args["archive_url"]))
    failed = [r for r in results if r["status"] == "failed"]
    print(json.dumps({"files": len(results), "rows": sum(r["rows"] for r in results), "failed": failed}))
    return 1 if failed else 0
