"""Runs one core code path inside a runtime venv (Lambda python3.13, Glue 5.0 Python 3.11).

Executed by the runtime's interpreter, never imported by pytest: only the standard library,
the venv's pinned packages and the bundled core (``PYTHONPATH``) are importable here, as in
the deployed package. Usage: ``python runner.py <command> '<json args>'``; the last stdout
line is the JSON result.
"""

import importlib.metadata
import json
import os
import sys
import types
import uuid


def versions(args):
    out = {"python": ".".join(str(n) for n in sys.version_info[:3])}
    for name in args.get("distributions", []):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["importable"] = {}
    for module in args.get("modules", []):
        try:
            __import__(module)
            out["importable"][module] = True
        except ImportError:
            out["importable"][module] = False
    return out


def lambda_context(name):
    # The attributes Powertools' inject_lambda_context reads from the Lambda context object.
    return types.SimpleNamespace(function_name=name, function_version="$LATEST", memory_limit_in_mb=512,
                                 invoked_function_arn=f"arn:aws:lambda:eu-west-1:123456789012:function:{name}",
                                 aws_request_id=str(uuid.uuid4()), log_group_name=f"/aws/lambda/{name}",
                                 log_stream_name="runtime-test")


def handler(args):
    """A Lambda handler module of the bundle, with the environment the CDK sets."""
    os.environ.update(args["env"])
    module = __import__(args["module"])
    return module.handler(args.get("event", {}), lambda_context(args["module"]))


def casts(args):
    """The core's raw -> curated conversions alone (no S3): candles and orders from raw JSON."""
    from binance_lake.fold import transform_pending
    from binance_lake.lake import LocalLake

    return transform_pending(LocalLake(args["lake_dir"]), args["tables"], args["symbols"]).summary()


def backfill_spark(args):
    """The Glue Spark backfill (binance_lake.aws.spark) in local mode, executors included."""
    from binance_lake.aws.spark import backfill_spark as run
    from binance_lake.sources.archive import ArchiveConfig

    spark = _spark()
    try:
        cfg = ArchiveConfig(base_url=args["archive_url"], workers=2, backoff_s=0)
        return run(spark, args["lake_uri"], args["symbols"], args["start"], args["end"], cfg,
                   now_ms=args["now_ms"], partitions=2)
    finally:
        spark.stop()


def verify_spark(args):
    """The Glue rebuild-and-verify job (binance_lake.aws.spark.verify_spark) in local mode."""
    import dataclasses

    from binance_lake.aws.spark import verify_spark as run
    from binance_lake.verify import VerifyOptions

    spark = _spark()
    try:
        report = run(spark, args["lake_uri"], args["symbols"], args["interval"], args["dates"],
                     VerifyOptions(run_id=args["run_id"]), partitions=2)
    finally:
        spark.stop()
    return {"partitions": [dataclasses.asdict(p) for p in report.partitions], "summary": report.summary()}


def _spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors: this venv's Python and packages
    return (SparkSession.builder.master("local[2]").appName("runtime-test")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
            .getOrCreate())


def archive_file(args):
    """One archive file through binance_lake.jobs.backfill_file (what each Spark task runs)."""
    from binance_lake.jobs.backfill import backfill_file
    from binance_lake.lake import open_lake
    from binance_lake.sources.archive import ArchiveConfig, ArchiveFile, PlannedFile

    cfg = ArchiveConfig(base_url=args["archive_url"], workers=1, backoff_s=0)
    f = ArchiveFile(args["symbol"], "1m", args["period"])
    r = backfill_file(open_lake(args["lake_uri"]), PlannedFile(f, args["published"], True), cfg)
    return {"status": r.status, "rows": r.rows, "reason": r.reason}


COMMANDS = {f.__name__: f for f in (versions, handler, casts, backfill_spark, verify_spark, archive_file)}

if __name__ == "__main__":
    result = COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result, default=str))
