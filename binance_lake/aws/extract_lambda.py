"""The extractor Lambdas' support: the API key from Secrets Manager (cached) and the
per-symbol extract loops around :mod:`binance_lake.jobs.extract`.

The handlers ``lambdas/candles.py`` and ``lambdas/orders.py`` (orders, then their trades) stay a few lines long; this
is tested without AWS. No pyarrow anywhere in its imports (import-linter enforces it): the
extractors' bundle has none.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from binance_lake import layout
from binance_lake.aws.settings import ExtractSettings, OrdersSettings
from binance_lake.errors import BadInputError, BinanceError, LakeError
from binance_lake.jobs.extract import extract_candles as extract_candle_pages
from binance_lake.jobs.extract import extract_orders as extract_order_pages
from binance_lake.jobs.extract import extract_trades as extract_trade_pages
from binance_lake.jobs.extract import record_tick
from binance_lake.lake import Lake, open_lake
from binance_lake.runs import read_tick_runs
from binance_lake.schema import CANDLES, ORDERS, TRADES
from binance_lake.sources.rest.client import BinanceClient, CallStats, ClientConfig
from binance_lake.sources.rest.orders import OrdersLedger, known_orders, orders_ledger, prefetch_open_orders
from binance_lake.sources.rest.trades import TradesLedger

log = logging.getLogger(__name__)

SECRET_TTL_S = 300.0  # a rotated key is picked up within 5 minutes by a warm Lambda
# Tests shorten the client's backoff here; production uses ClientConfig's defaults.
CLIENT_TUNING: Dict[str, Any] = {}

Credentials = Tuple[str, str]


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


def run_client(settings: ExtractSettings, credentials: Optional[Credentials] = None) -> BinanceClient:
    """One client for every symbol of an invocation: one weight budget, one clock offset, and
    one exchangeInfo call for all symbols (weight 20, not 20 per symbol: 4,000 of a 100-symbol
    tick's 6,488 weight before). A failed prefetch is not fatal: each symbol then asks on its
    own and fails, if it must, with its own clear error."""
    client = make_client(settings, credentials)
    try:
        client.prefetch_symbol_info(settings.symbols)
    except BinanceError as exc:
        log.warning("exchangeInfo for all symbols failed; each symbol asks on its own",
                    extra={"error": type(exc).__name__, "reason": str(exc)})
    return client


def _symbol_stats(client: BinanceClient) -> BinanceClient:
    """The shared client with its counters reset, so each symbol's summary counts its own calls."""
    client.stats = CallStats()
    return client


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

    client = run_client(settings)
    hints = {interval: previous_tick_hints(lake, interval) for interval in intervals}

    def work(item: str) -> Dict[str, Any]:
        symbol, _, interval = item.partition("/")
        interval = interval or intervals[0]
        return extract_candle_pages(_symbol_stats(client), lake, symbol, interval, record=False,
                                    hint=hints[interval].get(symbol))

    run = _per_symbol(ExtractRun(CANDLES.name), items, work)
    for interval in intervals:  # one run record per interval a tick, not one per symbol (issue 14 lever 5)
        record_tick(lake, layout.run_table(CANDLES, interval), {
            item.partition("/")[0]: s for item, s in run.symbols.items()
            if (item.partition("/")[2] or intervals[0]) == interval}, {
            item.partition("/")[0]: e for item, e in run.errors.items()
            if (item.partition("/")[2] or intervals[0]) == interval})
    run.raise_if_failed()
    return run.summary()


def previous_tick_hints(lake: Lake, interval: str) -> Dict[str, str]:
    """symbol -> newest raw key, from the previous tick's run record (one GET for all symbols).

    Issue 21: the watermark of each symbol is then confirmed with one HEAD instead of two LISTs
    (sources.rest.candles.lake_watermark). A missing or unreadable record only means no hints:
    every symbol falls back to the listing.
    """
    record = read_tick_runs(lake, layout.run_table(CANDLES, interval))
    return {symbol: str(s["newest_raw_key"]) for symbol, s in record.items()
            if isinstance(s, dict) and isinstance(s.get("newest_raw_key"), str)}


def extract_orders(settings: OrdersSettings, lake: Optional[Lake] = None, secrets_client: Any = None
                   ) -> Dict[str, Any]:
    credentials = read_api_key(settings.secret_arn, secrets_client)
    if credentials is None:
        log.warning("orders skipped: the Binance API key secret is not filled in yet; put "
                    "{\"api_key\": ..., \"api_secret\": ...} into it with put-secret-value",
                    extra={"secret_arn": settings.secret_arn})
        return {"table": "orders", "skipped": "secret not filled in", "rows": 0, "symbols": {}, "errors": {}}
    lake = lake or open_lake(settings.lake_uri)
    ledger = orders_ledger(lake)  # one listing per prefix for every symbol (issue 14 lever 2)
    client = run_client(settings, credentials)
    on_book = _prefetch_open_orders(settings, client, lake, ledger)
    run = _per_symbol(ExtractRun(ORDERS.name), settings.symbols, lambda symbol: extract_order_pages(
        _symbol_stats(client), lake, symbol, open_orders=on_book, record=False, ledger=ledger))
    record_tick(lake, layout.run_table(ORDERS), run.symbols, run.errors)  # one run record a tick (issue 14 lever 5)
    trades = extract_trades(settings, client, lake, [s for s in settings.symbols if s not in run.errors])
    run.raise_if_failed()
    trades.raise_if_failed()
    return {**run.summary(), "trades": trades.summary()}


def extract_trades(settings: ExtractSettings, client: BinanceClient, lake: Lake, symbols: Sequence[str]
                   ) -> ExtractRun:
    """The fills of the orders this tick stored that executed something (same client, same weight
    budget): no call for a symbol where nothing filled, weight 5 per filled order up to 3, else one
    fromId page (binance_lake.sources.rest.trades). A symbol whose orders failed is left to the next
    tick: its fills are found then from the orders that tick stores."""
    ledger = TradesLedger(lake)  # the cursors of every symbol: one read and one listing, if any symbol asks
    run = _per_symbol(ExtractRun(TRADES.name), symbols, lambda symbol: extract_trade_pages(
        _symbol_stats(client), lake, symbol, record=False, only_changed=True, ledger=ledger))
    record_tick(lake, layout.run_table(TRADES), run.symbols, run.errors)
    return run


def _prefetch_open_orders(settings: ExtractSettings, client: BinanceClient, lake: Lake,
                          ledger: Optional[OrdersLedger] = None) -> Optional[List[Dict[str, Any]]]:
    """Every symbol's open orders in one weight-80 call when more than 13 symbols would each
    ask /openOrders (weight 6); None keeps the per-symbol calls.

    Only symbols with stored open orders ask the book (``OrdersRun.incremental``), so only
    they count: a first run, with nothing stored open, spends nothing here. A failed call
    falls back to per-symbol calls, so one symbol's trouble still fails only that symbol.
    """
    asking = [s for s in settings.symbols if known_orders(lake, s, ledger)[1]]
    try:
        return prefetch_open_orders(client, asking)
    except BinanceError as exc:
        log.warning("all-symbols openOrders failed; asking per symbol",
                    extra={"error": type(exc).__name__, "reason": str(exc)})
        return None


