"""Transform Lambda: pending raw files -> curated Parquet, then the freshness metric.

Invoked by the state machine after the extractors. Thin on purpose: configuration comes
from the environment the CDK sets (LAKE_URI, SYMBOLS, TABLES, INTERVALS); the work is
``binance_lake.aws.transform_lambda.transform_increment`` (``fold.transform_pending`` under the per-symbol
lease, then ``BinanceLake/MinutesSinceLastClosedCandle``). Its own bundle carries the
pinned pyarrow and boto3 (lambdas/requirements-transform.txt); an exception fails the
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
    logger.info("transform done", extra={"transform": summary["transform"],
                                         "minutes_behind": summary.get("minutes_since_last_closed_candle")})
    return summary
