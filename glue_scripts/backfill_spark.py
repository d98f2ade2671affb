"""Glue Spark job: full-history backfill from data.binance.vision for many symbols.

Glue runs ``backfill_spark.py --lake_uri s3://... --symbols BTCUSDT,ETHUSDT --intervals 1m,5m
--archive_url https://data.binance.vision [--start 2017-08] [--end 2026-11]`` (the deployed ones are
``binance_lake.aws.settings.BackfillSettings``, rendered by the CDK) plus its own ``--JOB_RUN_ID``
etc.; the core wheel arrives via ``--extra-py-files``. All logic is in
``binance_lake.aws.spark`` (tested in local mode); the REST tail after the archive
is left to the regular candle sync, whose watermark sees the archive's coverage.
"""

import sys

from binance_lake.aws.spark import glue_main

if __name__ == "__main__":
    sys.exit(glue_main(sys.argv[1:]))
