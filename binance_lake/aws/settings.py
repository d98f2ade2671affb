"""Settings of the Lambdas, from the environment the CDK sets, and the log correlation id.

Pure Python (no pyarrow, no boto3): every handler imports it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from binance_lake.errors import BadInputError
from binance_lake.schema import TABLES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractSettings:
    """What the CDK puts in the extractors' environment."""

    lake_uri: str
    symbols: List[str]
    interval: str
    base_url: str
    secret_arn: Optional[str] = None
    # Every configured candle interval (INTERVALS="1m,5m"); ``interval`` is the first one.
    intervals: Optional[List[str]] = None

    def candle_intervals(self) -> List[str]:
        return list(self.intervals) if self.intervals else [self.interval]

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> ExtractSettings:
        env = os.environ if env is None else env

        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise BadInputError(f"environment variable {name} is not set (the CDK stack sets it)")
            return value

        symbols = [s.strip() for s in need("SYMBOLS").split(",") if s.strip()]
        intervals = env_intervals(env)
        return cls(lake_uri=need("LAKE_URI"), symbols=symbols, interval=intervals[0],
                   base_url=need("BINANCE_BASE_URL"), secret_arn=env.get("BINANCE_SECRET_ARN") or None,
                   intervals=intervals)


def env_intervals(env: Mapping[str, str]) -> List[str]:
    """``INTERVALS`` (comma-separated) or the older single ``INTERVAL``; default ``1m``."""
    raw = env.get("INTERVALS") or env.get("INTERVAL") or "1m"
    return [i.strip() for i in raw.split(",") if i.strip()] or ["1m"]


def correlation_id(event: Any, fallback: str) -> str:
    """The execution id the state machine passes (``execution_id``), else ``fallback``."""
    if isinstance(event, dict):
        for key in ("execution_id", "correlation_id"):
            if isinstance(event.get(key), str) and event[key]:
                return event[key]
    return fallback



@dataclass(frozen=True)
class TransformSettings:
    """What the CDK puts in the transform Lambda's environment."""

    lake_uri: str
    symbols: List[str]
    tables: List[str]
    intervals: List[str]

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> TransformSettings:
        env = os.environ if env is None else env
        missing = [n for n in ("LAKE_URI", "SYMBOLS") if not env.get(n, "").strip()]
        if missing:
            raise BadInputError(f"environment variable {missing[0]} is not set (the CDK stack sets it)")
        tables = csv_list(env.get("TABLES") or ",".join(TABLES))
        unknown = sorted(set(tables) - set(TABLES))
        if unknown:
            raise BadInputError(f"TABLES: unknown table(s) {unknown}; use any of {', '.join(TABLES)}")
        return cls(lake_uri=env["LAKE_URI"].strip(), symbols=csv_list(env["SYMBOLS"]), tables=tables,
                   intervals=env_intervals(env))


def csv_list(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
