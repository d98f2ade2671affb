"""The deployment contract: one typed settings object per deployed component.

The CDK builds each object and ``render()``s it into the component's environment (Lambdas) or
default arguments (Glue jobs); the component ``parse()``s the same names at run time. Every
name is declared once, on its field (``setting("NAME")``), so what is written and what is read
cannot drift apart (tests/cdk/test_settings_contract.py compares them on the synthesized
templates), and a new setting is one line. A missing or empty value is an error naming it,
never a default.

Pure Python (no pyarrow, no boto3): every handler and Glue job imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar

from binance_lake.errors import BadInputError
from binance_lake.schema import TABLES
from binance_lake.times import check_interval
from binance_lake.urls import check_no_credentials

log = logging.getLogger(__name__)

S = TypeVar("S", bound="ComponentSettings")


def csv_list(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True)
class Codec:
    """How one setting travels as a string."""

    render: Callable[[Any], str]
    parse: Callable[[str], Any]


TEXT = Codec(str, str.strip)
LIST = Codec(lambda items: ",".join(items), csv_list)


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadInputError(f"not a whole number: {value!r}") from None


NUMBER = Codec(str, _whole_number)


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise BadInputError(f"not true or false: {value!r}")
    return value.lower() == "true"


FLAG = Codec(lambda on: "true" if on else "false", _flag)  # rendered explicitly: "false" is a value, not absence


def setting(name: str, codec: Codec = TEXT) -> Any:
    """A field carried as ``name`` (an environment variable, or a Glue argument without ``--``)."""
    return field(metadata={"setting": name, "codec": codec})


@dataclass(frozen=True)
class ComponentSettings:
    """Base of the per-component settings: ``render`` (CDK side) and ``parse`` (run time)."""

    PREFIX: ClassVar[str] = ""  # "--" for Glue job arguments
    SOURCE: ClassVar[str] = "environment variable"

    @classmethod
    def _fields(cls) -> List[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "setting" in f.metadata]

    @classmethod
    def names(cls) -> List[str]:
        """Every name this component reads, as rendered (``LAKE_URI`` or ``--lake_uri``)."""
        return [cls.PREFIX + f.metadata["setting"] for f in cls._fields()]

    def render(self) -> Dict[str, str]:
        return {self.PREFIX + f.metadata["setting"]: f.metadata["codec"].render(getattr(self, f.name))
                for f in self._fields()}

    @classmethod
    def parse(cls: Type[S], values: Mapping[str, str]) -> S:
        """From names as rendered or, for Glue, as ``parse_glue_args`` returns them (no ``--``)."""
        kwargs: Dict[str, Any] = {}
        for f in cls._fields():
            name = f.metadata["setting"]
            raw = values.get(cls.PREFIX + name, values.get(name, "")).strip()
            try:
                value = f.metadata["codec"].parse(raw) if raw else None
            except BadInputError as exc:
                raise BadInputError(f"{cls.SOURCE} {cls.PREFIX}{name}: {exc}") from None
            if value in (None, "", []):
                raise BadInputError(f"{cls.SOURCE} {cls.PREFIX}{name} is not set (the CDK stack sets it; "
                                    "a missing value is never defaulted)")
            kwargs[f.name] = value
        return cls(**kwargs)

    def __post_init__(self) -> None:
        unknown = sorted(set(getattr(self, "tables", ())) - set(TABLES))
        if unknown:
            raise BadInputError(f"{self.PREFIX}{'tables' if self.PREFIX else 'TABLES'}: unknown table(s) "
                                f"{unknown}; use {', '.join(TABLES)}")
        for interval in getattr(self, "intervals", ()):  # the 16 Binance intervals, case-sensitive
            try:
                check_interval(interval)
            except BadInputError as exc:
                raise BadInputError(f"{self.PREFIX}{'intervals' if self.PREFIX else 'INTERVALS'}: {exc}") from None


# ---------------------------------------------------------------------- Lambdas (environment)


@dataclass(frozen=True)
class LambdaSettings(ComponentSettings):
    # Read by aws-lambda-powertools' Logger (lambdas/lambda_logging.py), parsed here so that a
    # function deployed without them fails loudly instead of logging under a default name.
    service: str = setting("POWERTOOLS_SERVICE_NAME")
    log_level: str = setting("LOG_LEVEL")


@dataclass(frozen=True)
class ExtractSettings(LambdaSettings):
    """The candles extractor."""

    lake_uri: str = setting("LAKE_URI")
    symbols: List[str] = setting("SYMBOLS", LIST)
    # Every configured candle interval (INTERVALS="1m,5m"); the first is the primary one.
    intervals: List[str] = setting("INTERVALS", LIST)
    base_url: str = setting("BINANCE_BASE_URL")

    @property
    def interval(self) -> str:
        return self.intervals[0]

    def candle_intervals(self) -> List[str]:
        return list(self.intervals)

    @classmethod
    def from_env(cls: Type[S], env: Optional[Mapping[str, str]] = None) -> S:
        return cls.parse(os.environ if env is None else env)


@dataclass(frozen=True)
class OrdersSettings(ExtractSettings):
    """The orders extractor: the candles extractor's settings and its API key secret."""

    secret_arn: str = setting("BINANCE_SECRET_ARN")


@dataclass(frozen=True)
class TransformSettings(LambdaSettings):
    """The transform Lambda."""

    lake_uri: str = setting("LAKE_URI")
    symbols: List[str] = setting("SYMBOLS", LIST)
    tables: List[str] = setting("TABLES", LIST)
    intervals: List[str] = setting("INTERVALS", LIST)

    @classmethod
    def from_env(cls: Type[S], env: Optional[Mapping[str, str]] = None) -> S:
        return cls.parse(os.environ if env is None else env)


# ---------------------------------------------------------------------- Glue jobs (default arguments)


@dataclass(frozen=True)
class GlueSettings(ComponentSettings):
    PREFIX: ClassVar[str] = "--"
    SOURCE: ClassVar[str] = "job argument"

    @classmethod
    def from_args(cls: Type[S], argv: Sequence[str]) -> Tuple[S, Dict[str, str]]:
        """The deployed settings and every argument (for per-run options such as ``--start``)."""
        from binance_lake.aws.glue import parse_glue_args

        args = parse_glue_args(argv, [])
        return cls.parse(args), args


@dataclass(frozen=True)
class BackfillSettings(GlueSettings):
    """The Glue archive backfill (every configured interval is backfilled)."""

    lake_uri: str = setting("lake_uri")
    symbols: List[str] = setting("symbols", LIST)
    intervals: List[str] = setting("intervals", LIST)
    archive_url: str = setting("archive_url")


@dataclass(frozen=True)
class VerifySettings(GlueSettings):
    """The Glue rebuild-and-verify (every configured interval and table)."""

    lake_uri: str = setting("lake_uri")
    symbols: List[str] = setting("symbols", LIST)
    intervals: List[str] = setting("intervals", LIST)
    tables: List[str] = setting("tables", LIST)
    days_back: int = setting("days_back", NUMBER)
    # REST against the published daily archive files (binance_lake.verify.against_archive): on or off,
    # where the archive lives, and how many days behind the verified range the checked days lie
    # (the publication horizon: a day's file appears hours to days after it closes; docs/reliability.md).
    against_archive: bool = setting("against_archive", FLAG)
    archive_url: str = setting("archive_url")
    archive_lag_days: int = setting("archive_lag_days", NUMBER)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.archive_lag_days < 0:
            raise BadInputError(f"job argument --archive_lag_days must be 0 or more, got {self.archive_lag_days}")
        check_no_credentials(self.archive_url, "job argument --archive_url")


def correlation_id(event: Any, fallback: str) -> str:
    """The execution id the state machine passes (``execution_id``), else ``fallback``."""
    if isinstance(event, dict):
        for key in ("execution_id", "correlation_id"):
            if isinstance(event.get(key), str) and event[key]:
                return event[key]
    return fallback
