"""Structured JSON logs for the extractor Lambdas (aws-lambda-powertools).

One Powertools logger per function; the core's stdlib loggers (``binance_lake.*``)
are routed to the same JSON handler so that every line carries the correlation id
of the Step Functions execution that invoked the function.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools import Logger

from binance_lake.aws import settings


def make_logger() -> Logger:
    logger = Logger()  # service and level from POWERTOOLS_SERVICE_NAME / LOG_LEVEL (set by the CDK)
    core = logging.getLogger("binance_lake")
    core.handlers = [logger.registered_handler]
    core.setLevel(logger.log_level)
    core.propagate = False  # the runtime's root handler would print every line a second time, as text
    return logger


def correlate(logger: Logger, event: Any, context: Any) -> None:
    logger.set_correlation_id(settings.correlation_id(event, getattr(context, "aws_request_id", "local")))
