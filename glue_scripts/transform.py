"""Glue Python shell job (Python 3.9): pending raw files -> curated Parquet partitions.

Glue runs ``python3 transform.py --lake_uri s3://... --symbols BTCUSDT
--tables candles,orders --interval 1m`` (the job's default arguments, from the CDK)
plus its own ``--JOB_RUN_ID`` etc. The core wheel arrives via ``--extra-py-files``.
The transform knows what to process from ``raw/_pending/`` markers (no crawler,
no job bookmarks), then publishes ``BinanceLake/MinutesSinceLastClosedCandle``.

Local rehearsal against any lake: ``python glue_scripts/transform.py --lake_uri
s3://bucket --symbols BTCUSDT --tables candles,orders`` (see docs/cloud.md).
"""

import sys

from binance_lake.cloud import glue_main

if __name__ == "__main__":
    sys.exit(glue_main(sys.argv[1:]))
