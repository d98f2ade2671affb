"""Deployment settings, read from CDK context (cdk.json, or ``-c key=value``).

Every account, region, symbol list and schedule comes from here, so nothing
environment-specific is hard-coded in the constructs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from constructs import Node

from binance_lake.errors import BadInputError
from binance_lake.times import check_interval

PREFIX = "binance-lake:"
SOURCE_TYPES = ("github", "codecommit")


@dataclass(frozen=True)
class StageSettings:
    """One deployment target (Beta or Prod) and how disposable its data is."""

    name: str
    account: str
    region: str
    # Beta may be torn down with its data; Prod keeps buckets, key and secret.
    retain_data: bool


@dataclass(frozen=True)
class LakeSettings:
    """What the data stacks need, shared by every stage."""

    symbols: Tuple[str, ...]
    # Candle intervals to extract and curate ("1m", or "1m,5m"); the first is the primary one
    # (freshness metric). Athena's projection enumerates exactly these.
    intervals: Tuple[str, ...]
    binance_base_url: str
    schedule_minutes: int
    freshness_threshold_minutes: int
    alarm_email: Optional[str]


@dataclass(frozen=True)
class PipelineSettings:
    account: str
    region: str
    source_type: str
    github_repository: str
    github_connection_arn: str
    codecommit_repository: str
    branch: str


@dataclass(frozen=True)
class AppSettings:
    pipeline: PipelineSettings
    lake: LakeSettings
    beta: StageSettings
    prod: StageSettings


def _get(node: Node, key: str) -> Any:
    value = node.try_get_context(PREFIX + key)
    if value is None:
        raise ValueError(f"missing CDK context {PREFIX + key!r} (set it in cdk.json or pass -c {PREFIX + key}=...)")
    return value


def _symbols(raw: Any) -> Tuple[str, ...]:
    # `-c` always passes strings, cdk.json may hold a list: accept both.
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    symbols = tuple(s.strip().upper() for s in items if s.strip())
    if not symbols:
        raise ValueError(f"context {PREFIX}symbols is empty")
    return symbols


def _intervals(node: Node) -> Tuple[str, ...]:
    """``binance-lake:intervals`` ("1m" or "1m,5m" or a list); the older ``interval`` still works."""
    raw = node.try_get_context(PREFIX + "intervals")
    if raw is None:
        raw = _get(node, "interval")  # backward compatibility: one interval
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    intervals = tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    if not intervals:
        raise ValueError(f"context {PREFIX}intervals is empty; set it to e.g. \"1m\" or \"1m,5m\"")
    for interval in intervals:  # a typo fails the synth, not the first tick
        try:
            check_interval(interval)
        except BadInputError as exc:
            raise ValueError(f"context {PREFIX}intervals: {exc}") from None
    return intervals


def _stage(node: Node, name: str, retain_data: bool) -> StageSettings:
    key = name.lower()
    return StageSettings(name, str(_get(node, f"{key}-account")), str(_get(node, f"{key}-region")), retain_data)


def load_settings(node: Node) -> AppSettings:
    source_type = str(_get(node, "source-type")).lower()
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"context {PREFIX}source-type must be one of {SOURCE_TYPES}, got {source_type!r}")
    pipeline = PipelineSettings(
        account=str(_get(node, "pipeline-account")),
        region=str(_get(node, "pipeline-region")),
        source_type=source_type,
        github_repository=str(_get(node, "github-repository")),
        github_connection_arn=str(_get(node, "github-connection-arn")),
        codecommit_repository=str(_get(node, "codecommit-repository")),
        branch=str(_get(node, "branch")),
    )
    lake = LakeSettings(
        symbols=_symbols(_get(node, "symbols")),
        intervals=_intervals(node),
        binance_base_url=str(_get(node, "binance-base-url")),
        schedule_minutes=int(_get(node, "schedule-minutes")),
        freshness_threshold_minutes=int(_get(node, "freshness-threshold-minutes")),
        alarm_email=str(node.try_get_context(PREFIX + "alarm-email") or "") or None,
    )
    return AppSettings(pipeline, lake, _stage(node, "Beta", retain_data=False), _stage(node, "Prod", retain_data=True))
