"""Glue 5.0 Spark jobs over history: the archive backfill and the rebuild-and-verify of a range.

Backfill: many symbols and months at once.
The driver plans (one tiny ``.CHECKSUM`` request per candidate file, as on one machine)
and hands one row per archive file to ``mapInArrow``. Each task runs
:func:`binance_lake.jobs.backfill.backfill_file` -- the very code of the single-machine
backfill: verify against the published sha256, store the zip, then the one writer
(:func:`binance_lake.fold.fold_archive_file`, under the symbol's lease) merges each UTC day
into ``curated/candles/...``, then the sidecar. So the output is the same layout,
byte-for-byte the same rows except lineage time, and a transform tick may run meanwhile.

Why Spark only as the executor, not its DataFrame writer: the curated layout is one
``part-0.parquet`` per (symbol, date) written whole and atomically, with the core
schema; Spark's writer would produce ``part-<uuid>`` files and its own types. Files
never share a day partition (monthly and daily files of a month are exclusive); tasks of
one symbol still take turns on its lease, as every curated writer does.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Sequence

import pyarrow as pa

from binance_lake.aws.metrics import publish_verify
from binance_lake.aws.settings import BackfillSettings, VerifySettings
from binance_lake.jobs.backfill import EARLIEST_ARCHIVE_MS, backfill_file, utc_now_ms
from binance_lake.lake import open_lake
from binance_lake.sources.archive import ArchiveConfig, ArchiveFile, PlannedFile, plan_files
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
            r = backfill_file(lake, PlannedFile(f, task["published"], bool(task["first"])), cfg)
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


def glue_main(argv: Sequence[str], spark: Any = None) -> int:
    """The deployed :class:`BackfillSettings` (``--lake_uri --symbols --intervals --archive_url``)
    plus the per-run ``[--start 2017-08] [--end 2026-11]``; every configured interval is backfilled."""
    import json

    from binance_lake.times import optional_time

    settings, args = BackfillSettings.from_args(argv)
    month = {k: (args[k] + "-01" if len(args.get(k) or "") == 7 else args.get(k)) for k in ("start", "end")}
    start, end = optional_time(month["start"], "--start"), optional_time(month["end"], "--end")
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("binance-lake-backfill").getOrCreate()
    cfg = ArchiveConfig(base_url=settings.archive_url)
    results = [r for interval in settings.intervals
               for r in backfill_spark(spark, settings.lake_uri, settings.symbols, start, end, cfg, interval)]
    failed = [r for r in results if r["status"] == "failed"]
    print(json.dumps({"files": len(results), "rows": sum(r["rows"] for r in results), "failed": failed}))
    return 1 if failed else 0


# -- rebuild-and-verify of a range ------------------------------------------------------------
# One row per (table, symbol, interval, date) partition; each task runs
# binance_lake.verify.verify_partition -- the very function the CLI runs -- under the same
# per-symbol lake lock as the transform, and returns its report as JSON. The driver plans
# (listing only), assembles the report exactly as the single-machine run does, stores it
# and publishes the metric.

VERIFY_TASK_SCHEMA = pa.schema([("table", pa.string()), ("symbol", pa.string()), ("interval", pa.string()),
                                ("date", pa.string()), ("context", pa.string())])
VERIFY_RESULT_SCHEMA = pa.schema([("report", pa.string())])


def verify_batches(batches: Iterator[pa.RecordBatch], lake_uri: str, opts: Any) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: one partition per input row, its PartitionReport as JSON out."""
    import dataclasses
    import json

    from binance_lake.verify import PartitionRef, verify_partition

    lake = open_lake(lake_uri)
    for batch in batches:
        out = []
        for task in batch.to_pylist():
            ref = PartitionRef(task["table"], task["symbol"], task["interval"], task["date"])
            report = verify_partition(lake, ref, opts, json.loads(task["context"]) if task["context"] else None)
            out.append({"report": json.dumps(dataclasses.asdict(report), default=str)})
        yield pa.RecordBatch.from_pylist(out, schema=VERIFY_RESULT_SCHEMA)


def verify_spark(spark: Any, lake_uri: str, symbols: Sequence[str], interval: str, dates: Sequence[str],
                 opts: Any, tables: Sequence[str] = ("candles", "orders"), partitions: Optional[int] = None,
                 write: bool = True) -> Any:
    """:func:`binance_lake.verify.verify` with the partitions spread over the executors."""
    import json

    from binance_lake.reconcile import check_symbols
    from binance_lake.verify import PartitionReport, contexts, finish, plan, start_report

    lake = open_lake(lake_uri)
    report = start_report(lake, symbols, interval, dates, opts)  # fixes opts.run_id before shipping opts
    refs = plan(symbols, interval, dates, tables)
    ctx = contexts(lake, refs)
    if refs:
        tasks = [(r.table, r.symbol, r.interval, r.date, json.dumps(ctx.get((r.symbol, r.interval))))
                 for r in refs]
        n = partitions or min(len(refs), max(1, spark.sparkContext.defaultParallelism))
        df = spark.createDataFrame(tasks, _spark_schema(VERIFY_TASK_SCHEMA)).repartition(n)
        body = functools.partial(verify_batches, lake_uri=lake_uri, opts=opts)
        rows = df.mapInArrow(body, _spark_schema(VERIFY_RESULT_SCHEMA)).collect()
        found = [PartitionReport(**json.loads(r["report"])) for r in rows]
        order = {(r.table, r.symbol, r.interval, r.date): i for i, r in enumerate(refs)}
        report.partitions = sorted(found, key=lambda p: order[(p.table, p.symbol, p.interval, p.date)])
    # Final orders against their trades, on the driver (one symbol's orders and trades at a time).
    report.order_trade_mismatches = [m.as_dict() for m in check_symbols(lake, symbols)]
    return finish(lake, report, write)


# -- REST against the published archive (report only) ------------------------------------------
# One row per (symbol, interval, date); each task runs binance_lake.verify.against_archive -- the
# very comparison of `verify --against-archive` -- which reads the day's REST raw pages and the
# lake's curated partition and downloads the day's zip + .CHECKSUM from the archive (sha256
# checked). Nothing is written by the tasks; the driver stores the one report.

ARCHIVE_TASK_SCHEMA = pa.schema([("symbol", pa.string()), ("interval", pa.string()), ("date", pa.string())])
ARCHIVE_RESULT_SCHEMA = pa.schema([("check", pa.string())])


def archive_check_batches(batches: Iterator[pa.RecordBatch], lake_uri: str, cfg: ArchiveConfig
                          ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: one day's REST candles against its daily archive file per input row."""
    import dataclasses
    import json

    from binance_lake.verify import against_archive

    lake = open_lake(lake_uri)
    for batch in batches:
        out = [{"check": json.dumps(dataclasses.asdict(
            against_archive(lake, t["symbol"], t["interval"], t["date"], cfg)))} for t in batch.to_pylist()]
        yield pa.RecordBatch.from_pylist(out, schema=ARCHIVE_RESULT_SCHEMA)


def archive_check_spark(spark: Any, lake_uri: str, symbols: Sequence[str], intervals: Sequence[str],
                        dates: Sequence[str], cfg: ArchiveConfig, run_id: str = "",
                        partitions: Optional[int] = None) -> Any:
    """Every (symbol, interval, day) compared on the executors; the report stored by the driver
    (:class:`binance_lake.verify.ArchiveRun`). Report only: curated and raw are left as they are."""
    import json

    from binance_lake.verify import ArchiveCheck, finish_archive, start_archive_run

    lake = open_lake(lake_uri)
    run = start_archive_run(lake, dates, run_id)
    tasks = [(s, i, d) for s in symbols for i in intervals for d in dates]
    if tasks:
        n = partitions or min(len(tasks), max(1, spark.sparkContext.defaultParallelism))
        df = spark.createDataFrame(tasks, _spark_schema(ARCHIVE_TASK_SCHEMA)).repartition(n)
        body = functools.partial(archive_check_batches, lake_uri=lake_uri, cfg=cfg)
        found = [ArchiveCheck(**json.loads(r["check"]))
                 for r in df.mapInArrow(body, _spark_schema(ARCHIVE_RESULT_SCHEMA)).collect()]
        run.checks = sorted(found, key=lambda c: (c.symbol, c.interval, c.date))
    return finish_archive(lake, run)


def verify_glue_main(argv: Sequence[str], cloudwatch: Any = None, spark: Any = None,
                     now_ms: Optional[int] = None) -> int:
    """The deployed :class:`VerifySettings` (``--lake_uri --symbols --intervals --tables --days_back
    --against_archive --archive_url --archive_lag_days``) plus the per-run ``[--start D --end D]``
    (dates UTC, ``--end`` exclusive); non-zero when a mismatch was left unrepaired.

    One report per configured interval: the first covers every configured table, the others
    only candles (orders have no interval: verifying them once is enough). The published counts
    are the sums over the reports, so the alarm sees a mismatch of any interval. With
    ``--against_archive true`` the days ``--archive_lag_days`` before the verified ones (with
    ``--start``: the same days) are compared with the archive, report only; days left unsettled
    join the unrepaired count.
    """
    import json

    from binance_lake.verify import VerifyOptions, date_range, exit_code
    from binance_lake.verify import now_ms as clock

    settings, args = VerifySettings.from_args(argv)
    dates = date_range(clock() if now_ms is None else now_ms, settings.days_back, args.get("start") or None,
                       args.get("end") or None)
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("binance-lake-verify").getOrCreate()
    run_id = args.get("JOB_RUN_ID", "")
    failed, totals = False, {k: 0 for k in _VERIFY_COUNTS}
    for n, interval in enumerate(settings.intervals):
        tables = settings.tables if n == 0 else [t for t in settings.tables if t == "candles"]
        if not tables:
            continue
        opts = VerifyOptions(run_id=f"{run_id}-{interval}" if run_id and len(settings.intervals) > 1 else run_id)
        report = verify_spark(spark, settings.lake_uri, settings.symbols, interval, dates, opts, tables)
        summary = report.summary()
        totals = {k: totals[k] + summary[k] for k in _VERIFY_COUNTS}
        failed = failed or bool(exit_code(report))
        print(json.dumps({"interval": interval, "report_key": report.report_key, **summary}))
        print(report.line())
    if settings.against_archive:
        unsettled = _against_archive(spark, settings, args, run_id, clock() if now_ms is None else now_ms)
        # Counted as unrepaired partitions (one day of one symbol and interval is one candle
        # partition), so the one VerifyUnrepaired alarm reaches a person (docs/operations.md #8).
        totals["unrepaired"] += unsettled
        failed = failed or bool(unsettled)
    publish_verify(totals, cloudwatch)
    return 1 if failed else 0


def _against_archive(spark: Any, settings: VerifySettings, args: Dict[str, str], run_id: str, now_ms: int) -> int:
    """The archive comparison of the run's days shifted back by ``archive_lag_days``; its unsettled count."""
    import json

    from binance_lake.verify import archive_dates

    dates = archive_dates(now_ms, settings.days_back, settings.archive_lag_days, args.get("start") or None,
                          args.get("end") or None)
    run = archive_check_spark(spark, settings.lake_uri, settings.symbols, settings.intervals, dates,
                              ArchiveConfig(base_url=settings.archive_url), run_id)
    print(json.dumps({"against_archive": run.report_key, **run.summary()}))
    print(run.line())
    return int(run.summary()["unsettled"])


_VERIFY_COUNTS = ("repaired", "mismatch", "raw_missing", "unrepaired", "with_gaps")
