"""Transform Lambda: pending raw files -> curated Parquet, then the freshness metric.

Invoked by the state machine after the extractors. Thin on purpose: configuration comes
from the environment the CDK sets (LAKE_URI, SYMBOLS, TABLES, INTERVALS); the work is
``binance_lake.aws.transform_lambda.transform_increment`` (``fold.transform_pending`` under the per-symbol
lease, then ``BinanceLake/StalestCandleMinutesBehind``; each symbol's figure is in the log line).
Its own bundle carries the pinned pyarrow and boto3 (lambdas/requirements-transform.txt); an exception fails the
task so that Step Functions retries it.
"""

from __future__ import annotations

from typing import Any, Dict

from lambda_logging import correlate, make_logger

from binance_lake.aws import settings, transform_lambda

logger = make_logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    correlate(logger, event, context)
    summary = transform_lambda.transform_increment(settings.TransformSettings.from_env())
    # One structured line per tick: ``freshness`` lists every symbol and interval, stalest first
    # (the Logs Insights query in docs/cloud.md unnests it to find which symbol is stale).
    logger.info("transform done", extra={"transform": summary["transform"],
                                         "stalest_minutes_behind": summary.get("stalest_minutes_behind"),
                                         "no_candle": summary.get("no_candle"),
                                         "freshness": summary.get("freshness"),
                                         "freshness_sources": summary.get("freshness_sources")})
    return summary
