"""Candles extractor Lambda: closed 1m candles of every configured symbol -> raw/klines.

Thin on purpose: configuration comes from the environment the CDK sets, the work
is ``binance_lake.aws.extract_lambda.extract_candles`` (``jobs.extract.extract_candles``,
no transform: the transform Lambda curates). The returned summary is what the
state machine sees; an exception fails the task so that Step Functions retries it.
"""

from __future__ import annotations

from typing import Any, Dict

from lambda_logging import correlate, make_logger

from binance_lake.aws import extract_lambda, settings

logger = make_logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    correlate(logger, event, context)
    summary = extract_lambda.extract_candles(settings.ExtractSettings.from_env())
    logger.info("candles extracted", extra={"rows": summary["rows"], "raw_files": summary["raw_files"],
                                            "weight_used": summary["weight_used"]})
    return summary
