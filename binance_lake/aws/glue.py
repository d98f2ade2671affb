"""Glue support: job arguments and JSON logging for the scripts in ``glue_scripts/``.

No pyarrow and no pyspark at import time (``settings.GlueSettings.from_args`` uses ``parse_glue_args``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Mapping, Optional, Sequence

from binance_lake.errors import BadInputError


def parse_glue_args(argv: Sequence[str], required: Sequence[str], defaults: Optional[Mapping[str, str]] = None
                    ) -> Dict[str, str]:
    """Glue passes ``--KEY value`` pairs (plus its own, e.g. ``--JOB_RUN_ID``); like
    ``awsglue.utils.getResolvedOptions`` but available outside Glue and tolerant of
    ``--KEY=value`` and valueless flags."""
    args: Dict[str, str] = dict(defaults or {})
    items = list(argv)
    i = 0
    while i < len(items):
        token = items[i]
        i += 1
        if not token.startswith("--"):
            continue
        name, eq, value = token[2:].partition("=")
        if not eq:
            has_value = i < len(items) and not items[i].startswith("--")
            value = items[i] if has_value else ""
            i += 1 if has_value else 0
        args[name] = value
    missing = [name for name in required if not args.get(name)]
    if missing:
        raise BadInputError(f"missing job argument(s) {', '.join('--' + m for m in missing)}")
    return args


class JsonFormatter(logging.Formatter):
    """One JSON object per line with a correlation id (Glue has no Powertools)."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self, correlation_id: str, service: str = "binance-lake") -> None:
        super().__init__()
        self.correlation_id, self.service = correlation_id, service

    def format(self, record: logging.LogRecord) -> str:
        body: Dict[str, Any] = {"level": record.levelname, "timestamp": round(record.created, 3),
                                "service": self.service, "logger": record.name,
                                "correlation_id": self.correlation_id, "message": record.getMessage()}
        body.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def json_logging(correlation_id: str, level: str = "INFO") -> logging.Handler:
    """Route the root logger (core + job) to stdout as JSON lines."""
    import sys

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(correlation_id))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3"):  # credential/endpoint chatter at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
