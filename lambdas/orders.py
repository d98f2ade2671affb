"""Orders extractor Lambda: new and still-open account orders -> raw/orders.

The API key comes from Secrets Manager (``BINANCE_SECRET_ARN``), cached across warm
invocations and never logged. While the secret holds the empty placeholder the
CDK creates, the run is skipped with one warning line and succeeds.
"""

from __future__ import annotations

from typing import Any, Dict

from lambda_logging import correlate, make_logger

from binance_lake.aws import extract_lambda, settings

logger = make_logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    correlate(logger, event, context)
    summary = extract_lambda.extract_orders(settings.OrdersSettings.from_env())
    logger.info("orders extracted", extra={"rows": summary["rows"], "skipped": summary.get("skipped")})
    return summary
