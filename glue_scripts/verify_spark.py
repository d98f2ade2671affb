"""Glue Spark job: scheduled rebuild-and-verify of a range of curated partitions.

Glue runs ``verify_spark.py --lake_uri s3://... --symbols BTCUSDT,ETHUSDT --intervals 1m,5m
--tables candles,orders --days_back 1 --against_archive true --archive_url https://data.binance.vision
--archive_lag_days 2 [--start YYYY-MM-DD --end YYYY-MM-DD]`` (the deployed ones are
``binance_lake.aws.settings.VerifySettings``, rendered by the CDK) plus its own ``--JOB_RUN_ID`` etc.;
the core wheel arrives via ``--extra-py-files``. All logic is in
``binance_lake.verify`` (one partition) and ``binance_lake.aws.spark.verify_spark``
(spread over the executors), both tested in local mode. Exits non-zero (the job run
fails) when a mismatch was left unrepaired or a day's REST candles disagree with the archive
(report only, under ``curated/_verify/``); the counts go to CloudWatch ``BinanceLake``.
"""

import sys

from binance_lake.aws.spark import verify_glue_main

if __name__ == "__main__":
    sys.exit(verify_glue_main(sys.argv[1:]))
