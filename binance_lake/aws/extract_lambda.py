"""Cloud glue for the Lambda extractors, the transform Lambda and the Glue jobs.

The handlers in ``lambdas/`` and the scripts in ``glue_scripts/`` stay a few lines
long: configuration, the API key, the extract/transform loops and the freshness
metric live here, where they can be tested without AWS. No pyarrow at import time:
the extractors import this module and their bundle has no pyarrow.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from binance_lake import extract, jobs
from binance_lake.client import BinanceClient, ClientConfig
from binance_lake.errors import BadInputError, BinanceError, LakeError
from binance_lake.lake import Lake, open_lake

log = logging.getLogger(__name__)

METRIC_NAMESPACE = "BinanceLake"
FRESHNESS_METRIC = "MinutesSinceLastClosedCandle"
SECRET_TTL_S = 300.0  # a rotated key is picked up within 5 minutes by a warm Lambda
# Tests shorten the client's backoff here; production uses ClientConfig's defaults.
CLIENT_TUNING: Dict[str, Any] = {}

Credentials = Tuple[str, str]


# -- configuration --------------------------------------------------------------------


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


# -- the API key ----------------------------------------------------------------------


@dataclass
class _SecretCache:
    value: Optional[Credentials] = None
    arn: Optional[str] = None
    expires: float = 0.0


_secret_cache = _SecretCache()


def read_api_key(secret_arn: str, client: Any = None, clock: Callable[[], float] = time.monotonic
                 ) -> Optional[Credentials]:
    """(api_key, api_secret) from Secrets Manager, or None while the secret is not filled in.

    Only a filled secret is cached (for ``SECRET_TTL_S``): the first run after the
    operator fills it must see it, not an empty value cached on an earlier run.
    """
    now = clock()
    if _secret_cache.arn == secret_arn and _secret_cache.value and now < _secret_cache.expires:
        return _secret_cache.value
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    raw = client.get_secret_value(SecretId=secret_arn).get("SecretString") or ""
    value = parse_api_key(raw, secret_arn)
    if value:
        _secret_cache.value, _secret_cache.arn, _secret_cache.expires = value, secret_arn, now + SECRET_TTL_S
    return value


def parse_api_key(raw: str, secret_arn: str) -> Optional[Credentials]:
    # The value is never echoed: an error names the secret and the expected shape only.
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadInputError(f"secret {secret_arn} is not JSON; expected {{\"api_key\": ..., \"api_secret\": ...}}"
                            ) from None
    if not isinstance(body, dict):
        raise BadInputError(f"secret {secret_arn} is not a JSON object with api_key and api_secret")
    key, secret = str(body.get("api_key") or "").strip(), str(body.get("api_secret") or "").strip()
    if not key and not secret:
        return None
    if not key or not secret:
        missing = "api_key" if not key else "api_secret"
        raise BadInputError(f"secret {secret_arn} has no {missing}; fill both api_key and api_secret")
    return key, secret


def clear_secret_cache() -> None:
    global _secret_cache
    _secret_cache = _SecretCache()


# -- extract (Lambda) -----------------------------------------------------------------


def make_client(settings: ExtractSettings, credentials: Optional[Credentials] = None) -> BinanceClient:
    # A fresh client per invocation: its server-time offset and weight view must be current.
    key, secret = credentials if credentials else (None, None)
    config = ClientConfig(base_url=settings.base_url, api_key=key, api_secret=secret)
    for name, value in CLIENT_TUNING.items():
        setattr(config, name, value)
    return BinanceClient(config)


@dataclass
class ExtractRun:
    """Per-symbol summaries; a failed symbol does not stop the others but fails the run."""

    table: str
    symbols: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> Dict[str, Any]:
        done = self.symbols.values()
        return {"table": self.table, "rows": sum(s.get("rows", 0) for s in done),
                "raw_files": sum(s.get("raw_files", 0) for s in done),
                "weight_used": max([s.get("weight_used", 0) for s in done] or [0]),
                "throttled": sum(s.get("throttled", 0) for s in done),
                "retries": sum(s.get("retries", 0) for s in done),
                "exchange_gaps": {k: s["exchange_gaps"] for k, s in self.symbols.items() if s.get("exchange_gaps")},
                "symbols": self.symbols, "errors": self.errors}

    def raise_if_failed(self) -> None:
        if self.errors:
            first = next(iter(self.errors.items()))
            raise ExtractFailed(f"{self.table}: {len(self.errors)} symbol(s) failed; {first[0]}: {first[1]}")


class ExtractFailed(LakeError):
    """Raised after every symbol was tried, so that Step Functions retries the task."""


def _per_symbol(run: ExtractRun, symbols: Sequence[str], work: Callable[[str], Dict[str, Any]]) -> ExtractRun:
    for symbol in symbols:
        try:
            run.symbols[symbol] = work(symbol)
            log.info("extracted", extra={"symbol": symbol, "summary": run.symbols[symbol]})
        except LakeError as exc:
            run.errors[symbol] = str(exc)
            log.error("extract failed", extra={"symbol": symbol, "error": type(exc).__name__, "reason": str(exc)})
    return run


def extract_candles(settings: ExtractSettings, lake: Optional[Lake] = None) -> Dict[str, Any]:
    lake = lake or open_lake(settings.lake_uri)
    intervals = settings.candle_intervals()
    # One run per (symbol, interval); with one interval the summary stays keyed by symbol.
    items = [s if len(intervals) == 1 else f"{s}/{i}" for s in settings.symbols for i in intervals]

    def work(item: str) -> Dict[str, Any]:
        symbol, _, interval = item.partition("/")
        return jobs.sync_candles(make_client(settings), lake, symbol, interval or intervals[0], transform=False)

    run = _per_symbol(ExtractRun("candles"), items, work)
    run.raise_if_failed()
    return run.summary()


def extract_orders(settings: ExtractSettings, lake: Optional[Lake] = None, secrets_client: Any = None
                   ) -> Dict[str, Any]:
    if not settings.secret_arn:
        raise BadInputError("environment variable BINANCE_SECRET_ARN is not set (the CDK stack sets it)")
    credentials = read_api_key(settings.secret_arn, secrets_client)
    if credentials is None:
        log.warning("orders skipped: the Binance API key secret is not filled in yet; put "
                    "{\"api_key\": ..., \"api_secret\": ...} into it with put-secret-value",
                    extra={"secret_arn": settings.secret_arn})
        return {"table": "orders", "skipped": "secret not filled in", "rows": 0, "symbols": {}, "errors": {}}
    lake = lake or open_lake(settings.lake_uri)
    on_book = _prefetch_open_orders(settings, credentials, lake)
    run = _per_symbol(ExtractRun("orders"), settings.symbols, lambda symbol: jobs.sync_orders(
        make_client(settings, credentials), lake, symbol, transform=False, open_orders=on_book))
    run.raise_if_failed()
    return run.summary()


def _prefetch_open_orders(settings: ExtractSettings, credentials: Credentials, lake: Lake
                          ) -> Optional[List[Dict[str, Any]]]:
    """Every symbol's open orders in one weight-80 call when more than 13 symbols would each
    ask /openOrders (weight 6); None keeps the per-symbol calls.

    Only symbols with stored open orders ask the book (``OrdersRun.incremental``), so only
    they count: a first run, with nothing stored open, spends nothing here. A failed call
    falls back to per-symbol calls, so one symbol's trouble still fails only that symbol.
    """
    asking = [s for s in settings.symbols if extract.known_orders(lake, s)[1]]
    try:
        return extract.prefetch_open_orders(make_client(settings, credentials), asking)
    except BinanceError as exc:
        log.warning("all-symbols openOrders failed; asking per symbol",
                    extra={"error": type(exc).__name__, "reason": str(exc)})
        return None


# -- transform (Lambda) and Glue job arguments ------------------------------------------


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
        tables = csv_list(env.get("TABLES") or "candles,orders")
        unknown = sorted(set(tables) - {"candles", "orders"})
        if unknown:
            raise BadInputError(f"TABLES: unknown table(s) {unknown}; use candles and/or orders")
        return cls(lake_uri=env["LAKE_URI"].strip(), symbols=csv_list(env["SYMBOLS"]), tables=tables,
                   intervals=env_intervals(env))


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


def csv_list(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def publish_freshness(lake: Lake, symbols: Sequence[str], interval: str, cloudwatch: Any = None,
                      now_ms: Optional[int] = None) -> Dict[str, float]:
    """Publish ``BinanceLake/MinutesSinceLastClosedCandle`` per symbol from curated data.

    Read from the lake, not from this run's result, so that a stalled extract shows
    as a growing value. A symbol with no curated candle publishes nothing: the alarm
    treats missing data as breaching.
    """
    from binance_lake.transform import last_closed_candle  # pyarrow: Glue side only

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    minutes: Dict[str, float] = {}
    for symbol in symbols:
        close_ms = last_closed_candle(lake, symbol, interval)
        if close_ms is not None:
            minutes[symbol] = round(max(0, now_ms - (close_ms + 1)) / 60000.0, 2)
    if minutes:
        if cloudwatch is None:
            import boto3

            cloudwatch = boto3.client("cloudwatch")
        cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[
            {"MetricName": FRESHNESS_METRIC, "Dimensions": [{"Name": "Symbol", "Value": s}],
             "Timestamp": now_ms / 1000.0, "Value": v, "Unit": "None"} for s, v in minutes.items()])
    return minutes


def transform_increment(settings: TransformSettings, lake: Optional[Lake] = None, cloudwatch: Any = None,
                        now_ms: Optional[int] = None) -> Dict[str, Any]:
    """The scheduled transform (the transform Lambda): pending raw -> curated, then the
    freshness metric of the first (primary) interval."""
    from binance_lake.transform import transform_pending

    lake = lake or open_lake(settings.lake_uri)
    result = transform_pending(lake, settings.tables, settings.symbols)
    summary: Dict[str, Any] = {"transform": result.summary()}
    if "candles" in settings.tables:
        summary["minutes_since_last_closed_candle"] = publish_freshness(
            lake, settings.symbols, settings.intervals[0], cloudwatch, now_ms)
    return summary


def run_transform(argv: Sequence[str], lake: Optional[Lake] = None, cloudwatch: Any = None,
                  now_ms: Optional[int] = None) -> Dict[str, Any]:
    """:func:`transform_increment` from ``--lake_uri --symbols --tables [--interval]`` arguments."""
    args = parse_glue_args(argv, ["lake_uri", "symbols", "tables"], {"interval": "1m"})
    env = {"LAKE_URI": args["lake_uri"], "SYMBOLS": args["symbols"], "TABLES": args["tables"],
           "INTERVALS": args["interval"]}
    try:
        settings = TransformSettings.from_env(env)
    except BadInputError as exc:
        raise BadInputError(str(exc).replace("TABLES:", "--tables:")) from None
    return transform_increment(settings, lake, cloudwatch, now_ms)


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
