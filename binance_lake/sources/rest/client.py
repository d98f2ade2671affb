"""Binance REST access: python-binance underneath, wrapped for a data pipeline.

What the wrapper adds to python-binance:

* pacing by the exchange's own accounting: every response's ``X-MBX-USED-WEIGHT-*``
  header feeds a shared :class:`WeightBudget`, and a request waits for the next
  window rather than provoke a 429 (a 429 ignored escalates to a 418 IP ban);
* ``Retry-After`` honoured on 429 (all threads pause), a clear stop on 418;
* HTTP 403 (a WAF rule, HTML body; rest-api.md "HTTP Return Codes": "This can indicate a
  rate limit violation or a security block") treated like a 429 without Retry-After: every
  thread pauses for an exponential backoff with jitter, and only a 403 that persists for
  ``max_attempts`` stops the run (exit 4);
* HTTP 451 (restricted location) stops at once with the ways out (Binance.US, the archive);
* retries with exponential backoff and full jitter on 5xx, timeouts, dropped
  connections and malformed bodies (for reads, a 5xx means "unknown", never "empty");
* server-time sync for signed requests, and one resync on -1021 before giving up;
* Binance error codes turned into errors that say what to do.

One python-binance ``Client`` per thread (a requests session is not thread-safe);
the budget is shared, so bounded concurrency stays under the IP's weight limit.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from binance_lake.errors import (
    BadApiKeyError,
    BadInputError,
    BadIntervalError,
    BinanceError,
    BinanceUnavailableError,
    ClockSkewError,
    GeoBlockedError,
    IpBannedError,
    LakeError,
    MissingCredentialsError,
    SignatureError,
    UnknownSymbolError,
)
from binance_lake.sources.rest import pbsync
from binance_lake.times import to_ms
from binance_lake.urls import check_no_credentials, shown

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.binance.com"
KLINES_WEIGHT = 2
ALL_ORDERS_WEIGHT = 20
OPEN_ORDERS_WEIGHT = 6  # with a symbol
# Without a symbol: every symbol's open orders for 80 (rest-api.md, "Current open orders
# (USER_DATA)": "6 for a single symbol; 80 when the symbol parameter is omitted"), so one
# call is cheaper than per-symbol calls beyond 13 symbols (14 x 6 = 84).
OPEN_ORDERS_ALL_WEIGHT = 80
ORDER_WEIGHT = 4
# GET /api/v3/myTrades: 20, or 5 with orderId (binance-spot-api-docs rest-api.md "Account trade list
# (USER_DATA)"; CHANGELOG: "weight ... with orderId" lowered to 5).
MY_TRADES_WEIGHT = 20
MY_TRADES_ORDER_WEIGHT = 5
EXCHANGE_INFO_WEIGHT = 20
TIME_WEIGHT = 1
# How long a server-time reading may be reused instead of a new /api/v3/time (see server_time).
SERVER_TIME_REUSE_S = 2.0
UNREACHABLE_ATTEMPTS = 3

_RETRYABLE_CODES = {-1000, -1001, -1003, -1007, -1008}
_WEIGHT_HEADER = re.compile(r"^x-mbx-used-weight-(\d+)([smhd])$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class ClientConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: Optional[str] = field(default=None, repr=False)
    api_secret: Optional[str] = field(default=None, repr=False)
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    recv_window_ms: int = 5000
    # Share of the weight limit the client allows itself; the rest is headroom for
    # other programs on the same IP and for the header lagging a concurrent request.
    weight_safety: float = 0.9
    # "MICROSECOND" asks Binance for µs timestamps (X-MBX-TIME-UNIT, rest-api.md "General API
    # Information"); the client converts every time it reads back to ms (times.to_ms).
    time_unit: Optional[str] = None

    def __post_init__(self) -> None:
        check_base_url(self.base_url)

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_key and self.api_secret)


class WeightBudget:
    """Thread-safe request-weight accounting for one IP, aligned to Binance's windows.

    ``acquire`` reserves weight before a request and sleeps to the next window when the
    reservation would cross ``limit * safety``; ``observe`` takes the server's count
    (it knows about other processes on the same IP) whenever a response arrives.
    """

    def __init__(self, limit: int = 6000, window_s: float = 60.0, safety: float = 0.9,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.limit, self.window_s, self.safety = limit, window_s, safety
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0
        self._paused_until = 0.0
        self.max_used_seen = 0
        self.waited_s = 0.0

    def configure(self, limit: int, window_s: float) -> None:
        with self._lock:
            self.limit, self.window_s = limit, window_s

    def _roll(self, now: float) -> None:
        window = int(now // self.window_s)
        if window != self._window:
            self._window, self._used = window, 0

    def acquire(self, cost: int) -> None:
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0:
                    self._roll(now)
                    if self._used + cost <= self.limit * self.safety or self._used == 0:
                        self._used += cost
                        return
                    # Small margin: the server's window may start a little after ours.
                    wait = (self._window + 1) * self.window_s - now + 0.25
            self.waited_s += wait
            self._sleep(wait)

    def observe(self, used: int, window_s: Optional[float] = None) -> None:
        with self._lock:
            if window_s and window_s != self.window_s:
                self.window_s = window_s
            self._roll(self._clock())
            self._used = max(self._used, used)
            self.max_used_seen = max(self.max_used_seen, used)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


def parse_used_weight(headers: Dict[str, str]) -> Optional[tuple]:
    """(used weight, window seconds) from ``X-MBX-USED-WEIGHT-<n><unit>``, or None."""
    for name, value in headers.items():
        match = _WEIGHT_HEADER.match(name)
        if match and str(value).isdigit():
            return int(value), int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    return None


@dataclass
class CallStats:
    requests: int = 0
    weight_used: int = 0  # highest X-MBX-USED-WEIGHT seen (the IP's window total)
    retries: int = 0
    throttled: int = 0  # 429s and WAF 403s received
    waf_blocked: int = 0  # 403s from the WAF


class BinanceClient:
    """The pipeline's view of Binance: server time, symbol info, klines and allOrders."""

    def __init__(self, config: ClientConfig, budget: Optional[WeightBudget] = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.base_url = check_base_url(config.base_url).rstrip("/")
        self.budget = budget or WeightBudget(safety=config.weight_safety)
        self.stats = CallStats()
        self._sleep = sleep
        self._local = threading.local()
        self._offset_ms = 0
        self._clock_synced = False
        self._reached = False  # has any reply come back? if not, fail fast on connection errors
        self._stats_lock = threading.Lock()
        self._symbol_info: Dict[str, Dict[str, Any]] = {}  # exchangeInfo entries of this run
        self._server_reading: Optional[tuple] = None  # (server ms, time.monotonic() at receipt)

    # -- python-binance plumbing -------------------------------------------------

    def _client(self, signed: bool = False) -> Any:
        """This thread's python-binance client: the signing one carries the API key, the public
        one none. python-binance puts ``X-MBX-APIKEY`` on its session, i.e. on every request
        (base_client.py ``_get_headers``), but Binance needs the key only on endpoints whose
        security type is not NONE (binance-api.md section 4, rest-api.md "Endpoint security
        type"); a key sent with public klines travels for nothing, over plain http if the base
        URL says so.
        """
        attr = "signed_client" if signed else "client"
        client = getattr(self._local, attr, None)
        if client is None:
            Client = pbsync.client_class()  # deferred, and without python-binance's async half

            key, secret = (self.config.api_key, self.config.api_secret) if signed else (None, None)
            client = Client(key, secret, ping=False, time_unit=self.config.time_unit)
            client.API_URL = self.base_url + "/api"
            client.REQUEST_TIMEOUT = self.config.timeout_s
            client.REQUEST_RECVWINDOW = self.config.recv_window_ms
            client.timestamp_offset = self._offset_ms
            setattr(self._local, attr, client)
        return client

    def _drop_clients(self) -> None:
        self._local.client = self._local.signed_client = None

    def _call(self, what: str, cost: int, fn: Callable[[Any], Any], signed: bool = False) -> Any:
        """Run one python-binance call with pacing, retries and error translation."""
        BinanceAPIException, BinanceRequestException = pbsync.exception_classes()
        from requests import exceptions as rex

        resynced = False
        for attempt in range(1, self.config.max_attempts + 1):
            client = self._client(signed)
            if signed:
                client.timestamp_offset = self._offset_ms
            self.budget.acquire(cost)
            with self._stats_lock:
                self.stats.requests += 1
            try:
                result = fn(client)
                self._reached = True
                self._observe(client)
                return result
            except BinanceAPIException as exc:
                self._reached = True
                self._observe(client)
                if exc.code == -1021 and signed and not resynced:
                    resynced = True
                    self.sync_clock()
                    continue
                delay = self._retry_delay(what, exc, attempt)
            except (rex.InvalidHeader, UnicodeEncodeError):
                # requests refuses a header value with a newline or a character HTTP cannot carry:
                # a configuration error that no retry fixes (the value is not repeated: it is the key).
                raise BadInputError(
                    f"{what}: a request header is invalid; BINANCE_API_KEY (or BINANCE_TIME_UNIT) holds a "
                    "space, newline or non-ASCII character: set it to the key exactly as Binance shows it"
                ) from None
            except (BinanceRequestException, ValueError) as exc:
                delay = self._backoff(attempt, f"{what}: malformed reply from Binance ({_short(exc)})")
            except (rex.Timeout, rex.ConnectionError, rex.ChunkedEncodingError) as exc:
                self._drop_clients()  # a broken connection poisons the session's pool
                if not self._reached and attempt >= UNREACHABLE_ATTEMPTS:
                    raise BinanceUnavailableError(
                        f"cannot reach Binance at {self.base_url} ({type(exc).__name__}); check --base-url "
                        "(or BINANCE_BASE_URL) and this machine's network, or try --emulator for an offline demo"
                    ) from None
                delay = self._backoff(attempt, f"{what}: {type(exc).__name__} talking to {self.base_url}")
            except rex.RequestException as exc:
                raise BinanceUnavailableError(
                    f"{what}: request to {self.base_url} failed: {type(exc).__name__}") from None
            if attempt == self.config.max_attempts:
                break  # no sleep after the last attempt
            with self._stats_lock:
                self.stats.retries += 1
            self._sleep(delay)
        raise BinanceUnavailableError(
            f"{what}: Binance at {self.base_url} still failing after {self.config.max_attempts} attempts; "
            "the exchange or the network is unavailable, try again later (nothing was written for this range)")

    def _observe(self, client: Any) -> None:
        response = getattr(client, "response", None)
        if response is None:
            return
        parsed = parse_used_weight(response.headers)
        if parsed:
            used, window_s = parsed
            self.budget.observe(used, window_s)
            with self._stats_lock:
                self.stats.weight_used = max(self.stats.weight_used, used)

    def _retry_delay(self, what: str, exc: Any, attempt: int) -> float:
        status, code = exc.status_code, exc.code
        if status == 404:
            # No Binance endpoint we call answers 404 (rest-api.md "HTTP Return Codes" lists 4XX for
            # malformed requests, 403, 409, 418, 429): the base URL points at a wrong path or at
            # something that is not Binance. Retrying cannot fix it.
            raise BadInputError(
                f"{what}: {self.base_url} answered HTTP 404 (no such endpoint): the base URL must be the API "
                "root, e.g. https://api.binance.com or https://api.binance.us, without '/api' or another path; "
                "fix --base-url (or BINANCE_BASE_URL)") from None
        if status == 418:
            raise IpBannedError(
                f"{what}: Binance banned this IP (HTTP 418) for {_retry_after(exc) or 'an unknown number of'} "
                "seconds after too many requests; wait until then before running again", code, status) from None
        if status == 451:
            raise GeoBlockedError(geo_block_message(what, self.base_url), code, status) from None
        if status == 403:
            return self._waf_pause(what, attempt)
        if status == 429:
            wait = _retry_after(exc) or 60.0
            self.budget.pause(wait)
            with self._stats_lock:
                self.stats.throttled += 1
            log.warning("%s: rate limited (429), pausing %.1fs as Retry-After asks", what, wait)
            return 0.0  # acquire() waits for the pause
        if status >= 500 or code in _RETRYABLE_CODES:
            return self._backoff(attempt, f"{what}: HTTP {status} code {code} from Binance (outcome unknown)")
        raise translate_error(what, exc, self.base_url) from None

    def _waf_pause(self, what: str, attempt: int) -> float:
        """A WAF 403: pause every thread (like a 429, but without a Retry-After to honour)."""
        with self._stats_lock:
            self.stats.throttled += 1
            self.stats.waf_blocked += 1
        if attempt >= self.config.max_attempts:
            raise BinanceUnavailableError(
                f"{what}: Binance's firewall (WAF) kept refusing requests from this IP (HTTP 403) after "
                f"{self.config.max_attempts} attempts with backoff; wait a few minutes (or use fewer --workers) "
                "and run again; what was stored so far is kept", 0, 403) from None
        wait = self._backoff(attempt, f"{what}: HTTP 403 from Binance's firewall (WAF)")
        self.budget.pause(wait)
        return 0.0  # acquire() waits for the shared pause

    def _backoff(self, attempt: int, reason: str) -> float:
        if attempt >= self.config.max_attempts:
            log.warning("%s; attempt %d/%d, giving up", reason, attempt, self.config.max_attempts)
            return 0.0
        delay = random.uniform(0, min(self.config.backoff_cap_s, self.config.backoff_base_s * 2 ** (attempt - 1)))
        log.warning("%s; attempt %d/%d, retrying in %.2fs", reason, attempt, self.config.max_attempts, delay)
        return delay

    # -- endpoints -----------------------------------------------------------------

    def server_time(self) -> int:
        """Binance's clock in ms (also in µs mode: the pipeline works in ms throughout).

        A reading this client got less than ``SERVER_TIME_REUSE_S`` ago (every exchangeInfo
        response carries ``serverTime``, binance-api.md section 5) is returned as is instead of
        asking ``/api/v3/time`` again. It is never extrapolated: a server time read earlier is
        a time that had already passed, so every use (closed-candle cut-off, the end of an
        order range) stays on the safe side, at most a couple of seconds behind.
        """
        if self._server_reading is not None:
            server_ms, at = self._server_reading
            if time.monotonic() - at <= SERVER_TIME_REUSE_S:
                return server_ms
        return self._fetch_server_time()[0]

    def _fetch_server_time(self) -> tuple:
        """(server ms, local seconds before the request, after the reply) from /api/v3/time."""
        before = time.time()
        reply = self._call("GET /api/v3/time", TIME_WEIGHT, lambda c: c.get_server_time())
        after = time.time()
        server = to_ms(reply["serverTime"])
        self._note_server_time(server)
        return server, before, after

    def _note_server_time(self, server_ms: int) -> None:
        """Keep a reading for :meth:`server_time`. The signing offset is not taken from it:
        signed calls measure it with :meth:`sync_clock` (one /api/v3/time per client)."""
        self._server_reading = (server_ms, time.monotonic())

    def _set_offset(self, server_ms: int, before: float, after: float) -> None:
        self._offset_ms = int(server_ms - (before + after) / 2 * 1000)
        self._clock_synced = True

    def sync_clock(self) -> int:
        """Measure local-vs-server offset (ms) for signed requests; returns server time.

        Always asks /api/v3/time (after a -1021 the offset must be measured afresh).
        """
        server, before, after = self._fetch_server_time()
        self._set_offset(server, before, after)
        return server

    def _exchange_info(self, what: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """One exchangeInfo call; its serverTime and rate limits are kept by the client."""
        info = self._call(what, EXCHANGE_INFO_WEIGHT, lambda c: c._get("exchangeInfo", data=params))
        if isinstance(info.get("serverTime"), int):
            self._note_server_time(to_ms(info["serverTime"]))
        self._adopt_rate_limits(info.get("rateLimits", []))
        return info

    def symbol_info(self, symbol: str) -> Dict[str, Any]:
        """exchangeInfo for one symbol; also adopts the advertised REQUEST_WEIGHT limit.

        Served from this client's cache when :meth:`prefetch_symbol_info` (or an earlier call)
        already fetched it: exchangeInfo weighs 20 whatever it returns (binance-api.md,
        rest-api.md "Exchange information": weight 20), so a run over many symbols should ask
        once. The cache lives as long as the client, i.e. one run: a status change between
        runs is seen by the next run.
        """
        cached = self._symbol_info.get(symbol)
        if cached is not None:
            return cached
        # python-binance's get_symbol_info() downloads every symbol; ask for one.
        info = self._exchange_info(f"GET /api/v3/exchangeInfo {symbol}", {"symbol": symbol})
        for entry in info.get("symbols", []):
            if entry.get("symbol") == symbol:
                self._symbol_info[symbol] = entry
                return entry
        raise UnknownSymbolError(unknown_symbol_message(symbol, self.base_url), -1121)

    def prefetch_symbol_info(self, symbols: Sequence[str]) -> int:
        """One exchangeInfo call (``symbols=[...]``, weight 20) for every symbol of a run.

        Afterwards :meth:`symbol_info` answers those symbols without a request. Returns how
        many symbols were cached. If Binance rejects the list (one unknown symbol fails the
        whole call with -1121), nothing is cached and each symbol falls back to its own call,
        so only the unknown one fails, with its clear error.
        """
        wanted = sorted({s for s in symbols if s not in self._symbol_info})
        if len(wanted) < 2:
            return 0  # one symbol: its own call on first use costs the same
        # Compact JSON: Binance's pattern for `symbols` allows no spaces (-1100 otherwise).
        listed = json.dumps(wanted, separators=(",", ":"))
        try:
            info = self._exchange_info(f"GET /api/v3/exchangeInfo ({len(wanted)} symbols)", {"symbols": listed})
        except BinanceError as exc:
            # A bad list (-1121 unknown symbol, -1100 illegal characters): per-symbol calls
            # single out the culprit. Anything else (ban, geo-block, outage) would fail those too.
            if exc.code not in (-1121, -1100):
                raise
            log.warning("exchangeInfo for %d symbols failed (%s); asking per symbol", len(wanted), _short(exc))
            return 0
        for entry in info.get("symbols", []):
            if entry.get("symbol") in wanted:
                self._symbol_info[entry["symbol"]] = entry
        return sum(1 for s in wanted if s in self._symbol_info)

    def exchange_symbols(self) -> List[Dict[str, Any]]:
        """Every symbol of the exchange (one exchangeInfo call without parameters, weight 20:
        binance-api.md, rest-api.md "Exchange information"); also cached for :meth:`symbol_info`,
        so a ``--quote`` run costs no further exchangeInfo calls."""
        info = self._exchange_info("GET /api/v3/exchangeInfo (all symbols)", {})
        entries = [e for e in info.get("symbols", []) if isinstance(e, dict) and e.get("symbol")]
        for entry in entries:
            self._symbol_info[entry["symbol"]] = entry
        return entries

    def _adopt_rate_limits(self, limits: List[Dict[str, Any]]) -> None:
        for limit in limits:
            if limit.get("rateLimitType") == "REQUEST_WEIGHT":
                unit = str(limit.get("interval", "MINUTE"))[0].lower()
                window_s = int(limit.get("intervalNum", 1)) * _UNIT_SECONDS.get(unit, 60)
                self.budget.configure(int(limit["limit"]), window_s)
                return

    def klines(self, symbol: str, interval: str, start: Optional[int], end_inclusive: Optional[int] = None,
               limit: int = 1000) -> List[list]:
        """start None (and no end): the most recent candles."""
        return self.klines_reply(symbol, interval, start, end_inclusive, limit)[0]

    def klines_reply(self, symbol: str, interval: str, start: Optional[int], end_inclusive: Optional[int] = None,
                     limit: int = 1000) -> Tuple[List[list], bytes]:
        """:meth:`klines` and the reply's body as received: python-binance decodes it once
        (``_handle_response``) and keeps the ``requests`` response on the client (``self.response``,
        client.py ``_request``), whose ``content`` is those bytes. The raw zone stores slices of
        them instead of encoding the decoded rows again (issue 21: REST CPU per page)."""
        params: Dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start is not None:
            params["startTime"] = start
        if end_inclusive is not None:
            params["endTime"] = end_inclusive
        return self._call(f"GET /api/v3/klines {symbol} {interval}", KLINES_WEIGHT,
                          lambda c: (c.get_klines(**params), c.response.content))

    def _require_credentials(self) -> None:
        if not self.config.has_credentials:
            raise MissingCredentialsError(
                "sync orders needs a Binance API key: set BINANCE_API_KEY and BINANCE_API_SECRET "
                "(a read-only key is enough)")
        check_credential(self.config.api_key or "", "BINANCE_API_KEY")
        check_credential(self.config.api_secret or "", "BINANCE_API_SECRET")
        if not self._clock_synced:
            self.sync_clock()

    def all_orders(self, symbol: str, order_id: Optional[int] = None, start: Optional[int] = None,
                   end_inclusive: Optional[int] = None, limit: int = 1000) -> List[Dict[str, Any]]:
        self._require_credentials()
        params: Dict[str, Any] = {"symbol": symbol, "limit": limit}
        for name, value in (("orderId", order_id), ("startTime", start), ("endTime", end_inclusive)):
            if value is not None:
                params[name] = value
        return self._call(f"GET /api/v3/allOrders {symbol}", ALL_ORDERS_WEIGHT,
                          lambda c: c.get_all_orders(**params), signed=True)

    def open_orders(self, symbol: str) -> List[Dict[str, Any]]:
        self._require_credentials()
        return self._call(f"GET /api/v3/openOrders {symbol}", OPEN_ORDERS_WEIGHT,
                          lambda c: c.get_open_orders(symbol=symbol), signed=True)

    def open_orders_all(self) -> List[Dict[str, Any]]:
        """Open orders of every symbol in one call (weight 80, see OPEN_ORDERS_ALL_WEIGHT)."""
        self._require_credentials()
        return self._call("GET /api/v3/openOrders (all symbols)", OPEN_ORDERS_ALL_WEIGHT,
                          lambda c: c.get_open_orders(), signed=True)

    def order(self, symbol: str, order_id: int) -> Dict[str, Any]:
        self._require_credentials()
        return self._call(f"GET /api/v3/order {symbol} {order_id}", ORDER_WEIGHT,
                          lambda c: c.get_order(symbol=symbol, orderId=order_id), signed=True)

    def my_trades(self, symbol: str, order_id: Optional[int] = None, from_id: Optional[int] = None,
                  start: Optional[int] = None, end_inclusive: Optional[int] = None,
                  limit: int = 1000) -> List[Dict[str, Any]]:
        """The account's fills of one symbol (weight 20, or 5 with ``order_id``)."""
        self._require_credentials()
        params: Dict[str, Any] = {"symbol": symbol, "limit": limit}
        for name, value in (("orderId", order_id), ("fromId", from_id), ("startTime", start),
                            ("endTime", end_inclusive)):
            if value is not None:
                params[name] = value
        cost = MY_TRADES_ORDER_WEIGHT if order_id is not None else MY_TRADES_WEIGHT
        return self._call(f"GET /api/v3/myTrades {symbol}", cost, lambda c: c.get_my_trades(**params), signed=True)


def _retry_after(exc: Any) -> Optional[float]:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    return str(exc)[:80]


def geo_block_message(what: str, base_url: str) -> str:
    return (f"{what}: Binance at {base_url} refuses requests from this location (HTTP 451, restricted "
            "location); ways out: Binance.US users run with --base-url https://api.binance.us (or "
            "BINANCE_BASE_URL), and candle history is available from the public archive with "
            "`binance-lake backfill --symbol SYMBOL` (data.binance.vision, no REST needed)")


def unknown_symbol_message(symbol: str, base_url: str) -> str:
    hint = " (on binance.us the USD pair is BTCUSD)" if "binance.us" in base_url else ""
    return (f"unknown symbol {symbol!r}: Binance at {base_url} does not list it (-1121){hint}; "
            "check the spelling, e.g. BTCUSDT")


def translate_error(what: str, exc: Any, base_url: str) -> LakeError:
    code, status, msg = exc.code, exc.status_code, str(getattr(exc, "message", ""))[:200]
    if code == -1121:
        symbol = what.split()[2] if len(what.split()) > 2 else "?"
        return UnknownSymbolError(unknown_symbol_message(symbol, base_url), code, status)
    if code == -1120:
        return BadIntervalError(f"{what}: invalid interval (-1120); use one of 1s 1m 3m 5m 15m 30m 1h ...",
                                code, status)
    if code in (-2014, -2015):
        return BadApiKeyError(
            f"{what}: Binance rejected the API key ({code}: {msg}); check BINANCE_API_KEY, that the key "
            "allows reading, and that this IP is on the key's allow list", code, status)
    if code == -1022:
        return SignatureError(
            f"{what}: Binance rejected the request signature (-1022); BINANCE_API_SECRET does not match "
            "BINANCE_API_KEY", code, status)
    if code == -1021:
        return ClockSkewError(
            f"{what}: request timestamp outside recvWindow even after syncing with server time (-1021); "
            "fix this machine's clock (NTP) or raise --recv-window (max 60000)", code, status)
    if code == -1127:
        return BadInputError(f"{what}: more than 24 hours between startTime and endTime (-1127)")
    return BinanceError(f"{what}: Binance error {code} (HTTP {status}): {msg}", code, status)


def config_from_env(base_url: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> ClientConfig:
    import os

    env = dict(os.environ) if env is None else env
    url = check_base_url(base_url or env.get("BINANCE_BASE_URL") or DEFAULT_BASE_URL)
    return ClientConfig(base_url=url, api_key=env.get("BINANCE_API_KEY") or None,
                        api_secret=env.get("BINANCE_API_SECRET") or None,
                        time_unit=parse_time_unit(env.get("BINANCE_TIME_UNIT")))


def check_base_url(url: str, flag: str = "--base-url (or BINANCE_BASE_URL)") -> str:
    """The URL itself if it is an http(s) URL safe to store and print (see binance_lake.urls)."""
    parts = check_no_credentials(url, flag)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"{flag}{shown(url)} is not an http(s) URL, e.g. https://api.binance.us")
    return url


_CREDENTIAL = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: Binance keys are alphanumeric


def check_credential(value: str, name: str) -> None:
    """Refuse a key or secret with whitespace or control characters (a newline pasted with it):
    requests would refuse the header and each retry would fail the same way. The value is never
    part of the message."""
    if not _CREDENTIAL.fullmatch(value):
        bad = next((i for i, ch in enumerate(value) if not _CREDENTIAL.fullmatch(ch)), 0)
        raise BadInputError(f"{name} holds a space, newline or non-ASCII character (at position {bad + 1} of "
                            f"{len(value)}); set it to the value exactly as Binance shows it")


TIME_UNITS = ("MILLISECOND", "MICROSECOND")


def parse_time_unit(value: Optional[str]) -> Optional[str]:
    """--time-unit / BINANCE_TIME_UNIT: ms (default) or µs timestamps from Binance."""
    if value is None or value == "":
        return None
    unit = value.strip().upper()
    unit = {"MS": "MILLISECOND", "US": "MICROSECOND", "µS": "MICROSECOND"}.get(unit, unit)
    if unit not in TIME_UNITS:
        raise BadInputError(f"time unit {value!r} is not known; use MILLISECOND or MICROSECOND")
    return None if unit == "MILLISECOND" else unit
