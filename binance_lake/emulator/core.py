"""The Emulator: state (symbols, candles, orders, weight, faults) and request handling.

Request handling is a plain method, ``Emulator.handle(method, target, headers, body)``,
that returns a Reply; server.py only moves bytes. That keeps the contract testable
without sockets and keeps the HTTP layer small.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlsplit

from . import archive as A
from . import candles as C
from .archive import ARCHIVE_PREFIX
from .faults import ERROR_KINDS, HTTP_KINDS, Fault, FaultQueue
from .orders import TIME_FIELDS, OrderBook, generated_fields, load_orders_json
from .trades import TradeLedger

MS_PER_MINUTE = C.MS_PER_MINUTE
BTCUSDT_LISTED_MS = 1_502_942_400_000  # 2017-08-17 04:00 UTC, first BTCUSDT kline on binance.com
BTCUSD_LISTED_MS = 1_568_937_600_000  # 2019-09-20 00:00 UTC, Binance.US launch
DAY_MS = 86_400_000
ARCHIVE_AFTER_MS = 90 * DAY_MS  # errors.md -2026 ORDER_ARCHIVED: "over 90 days ago"
# exchangeInfo symbol status values (enums.md "Symbol status (status)").
SYMBOL_STATUSES = frozenset({"TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY"})
# Statuses archived when nothing executed (errors.md -2026; CHANGELOG 2025-08-12 added EXPIRED_IN_MATCH).
ARCHIVED_STATUSES = frozenset({"CANCELED", "EXPIRED", "EXPIRED_IN_MATCH"})
# What api.binance.com answers from a restricted location (HTTP 451): not in the official docs;
# the body as users captured it (github.com/ccxt/ccxt/issues/16044, jptsantossilva/BEC#22).
GEO_BLOCK_MSG = ("Service unavailable from a restricted location according to 'b. Eligibility' in "
                 "https://www.binance.com/en/terms. Please contact customer service if you believe you "
                 "received this message in error.")
WAF_HTML = (b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"><HTML><HEAD><TITLE>ERROR: "
            b"The request could not be satisfied</TITLE></HEAD><BODY><H1>403 ERROR</H1><H2>The request could "
            b"not be satisfied.</H2>Request blocked.</BODY></HTML>")
_LONG_RANGE = "'^[0-9]{1,20}$'"
# exchangeInfo's own pattern for symbol names (its -1100 message for `symbols`), minus the
# punctuation no spot symbol uses.
_SYMBOL_RE = re.compile(r"[A-Z0-9]{2,20}")
_API_KEY_RE = re.compile(r"^[\x21-\x7e]{1,256}$")


def hmac_signature(secret: str, payload: str) -> str:
    """hex(HMAC_SHA256(secret, payload)), as Binance signs HMAC requests."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg


@dataclass
class RequestRecord:
    method: str
    path: str
    params: dict[str, str]
    status: int  # 0 when the connection was reset without a response
    weight: int
    used_weight_after: int
    time_s: float
    fault: Optional[str] = None
    # Whether the request carried X-MBX-APIKEY (never the key itself): tests check that the key
    # travels only on signed endpoints.
    api_key_sent: bool = False


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    action: Optional[str] = None  # "reset" | "incomplete" (the server acts on it)
    delay_s: float = 0.0


@dataclass
class _Ctx:
    """One request as the endpoint handlers see it."""

    params: dict[str, str]
    query: str
    body: str
    headers: dict[str, str]
    now_ms: int
    micros: bool


def _err_body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}, separators=(",", ":")).encode()


def _illegal(name: str) -> ApiError:
    return ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is {_LONG_RANGE}.")


def _required(p: dict[str, str], name: str) -> str:
    v = p.get(name)
    if not v:
        raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return v


def _long(p: dict[str, str], name: str) -> Optional[int]:
    v = p.get(name)
    if v is None:
        return None
    if v == "":
        raise ApiError(400, -1105, f"Parameter '{name}' was empty.")
    if not v.isdigit() or len(v) > 20:
        raise _illegal(name)
    return int(v)


def _time_ms(p: dict[str, str], name: str, round_up: bool) -> Optional[int]:
    """A time parameter in ms or µs (>= 1e15 means µs, as Binance detects it)."""
    v = _long(p, name)
    if v is None or v < 10**15:
        return v
    return -(-v // 1000) if round_up else v // 1000


def _limit(p: dict[str, str], default: int = 500, maximum: int = 1000) -> int:
    v = _long(p, "limit")
    if v is None:
        return default
    if v < 1 or v > maximum:
        raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return v


def _tz_offset_ms(p: dict[str, str]) -> int:
    raw = p.get("timeZone")
    if raw is None or raw in ("0", "+0", "-0"):
        return 0
    m = re.fullmatch(r"([+-]?)(\d{1,2})(?::(\d{2}))?", raw)
    bad = ApiError(400, -1130, "Data sent for parameter 'timeZone' is not valid.")
    if not m:
        raise bad
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    minutes = -minutes if m.group(1) == "-" else minutes
    if not -720 <= minutes <= 840:
        raise bad
    return minutes * MS_PER_MINUTE


def _strip_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and part.split("=", 1)[0] != "signature")


class Emulator:
    """A contract-faithful Binance spot REST emulator (see docs/emulator.md)."""

    def __init__(self, now_ms: Optional[int] = 1709424030000, weight_limit: int = 6000,
                 weight_window_s: int = 60, latency_s: float = 0.0, seed: int = 0,
                 ban_s: int = 120, row_cache: bool = False, any_symbol: bool = False) -> None:
        self._fixed_now = now_ms
        # any_symbol: a well-formed symbol nobody added (``ETHUSDT``) is listed on first use, from the
        # deterministic generator; off by default so that tests keep Binance's -1121 for unknown names.
        self.any_symbol = any_symbol
        self._archive_cache: dict[tuple[str, str, str], Optional[bytes]] = {}
        self.row_cache = row_cache  # memoise generated 1m rows (see candles.Series.cache)
        self.weight_limit = weight_limit
        self.weight_window_s = int(weight_window_s)
        self.latency_s = latency_s
        self.seed = seed
        self.ban_s = ban_s
        self._lock = threading.RLock()
        self._symbols: dict[str, C.Series] = {}
        self._books: dict[str, OrderBook] = {}
        self._keys: dict[str, str] = {}
        self._no_read_keys: set[str] = set()  # keys without "Enable Reading": signed reads answer -2015
        self._ledgers: dict[str, TradeLedger] = {}
        self._faults = FaultQueue()
        self.requests: list[RequestRecord] = []
        self.stats: dict[str, int] = {"requests": 0, "429": 0, "418": 0, "faults": 0, "bans": 0}
        self._window = -1
        self._used = 0
        self._penalty_until = 0.0  # real time until which a 429's Retry-After runs
        self._ban_until = 0.0
        self._server: Any = None
        self._status: dict[str, str] = {}
        self._late: list[tuple[str, int, int, int]] = []  # (symbol, start, end, served from): late minutes
        # Switchable real-Binance behaviours (docs/emulator.md, "Real-Binance states"):
        self.geo_blocked = False  # every request answers HTTP 451
        self.archive_orders = False  # final, unexecuted orders older than 90 days answer -2026
        self.add_symbol("BTCUSDT", listed_at_ms=BTCUSDT_LISTED_MS, base="BTC", quote="USDT")
        self.add_symbol("BTCUSD", listed_at_ms=BTCUSD_LISTED_MS, base="BTC", quote="USD")

    # ------------------------------------------------------------------ clock
    def now_ms(self) -> int:
        return int(time.time() * 1000) if self._fixed_now is None else self._fixed_now

    def set_now(self, ms: int) -> None:
        if self._fixed_now is None:
            raise RuntimeError("the data clock follows real time (now_ms=None); it cannot be set")
        self._fixed_now = int(ms)

    def advance(self, ms: int) -> None:
        self.set_now(self.now_ms() + int(ms))

    # ------------------------------------------------------------------ symbols and candles
    def add_symbol(self, symbol: str, listed_at_ms: int = BTCUSDT_LISTED_MS, base: Optional[str] = None,
                   quote: Optional[str] = None) -> None:
        if base is None or quote is None:
            for q in ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH", "BNB", "EUR"):
                if symbol.endswith(q) and len(symbol) > len(q):
                    base, quote = base or symbol[: -len(q)], quote or q
                    break
            else:
                raise ValueError(f"cannot split {symbol!r} into base and quote; pass base= and quote=")
        spec = C.SymbolSpec.make(symbol, base, quote, int(listed_at_ms), self.seed)
        with self._lock:
            self._symbols[symbol] = C.Series(spec, {}, [], {} if self.row_cache else None)
            self._books.setdefault(symbol, OrderBook(symbol))

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def set_symbol_status(self, symbol: str, status: str, since_ms: Optional[int] = None) -> None:
        """exchangeInfo's status for `symbol`; with since_ms, no candles from then on (a symbol
        that is not TRADING prints no klines)."""
        if status not in SYMBOL_STATUSES:
            raise ValueError(f"unknown symbol status {status!r}; known: {sorted(SYMBOL_STATUSES)}")
        with self._lock:
            self._series(symbol)
            self._status[symbol] = status
            if since_ms is not None:
                self.add_exchange_gap(symbol, int(since_ms), 2**62)

    def symbol_status(self, symbol: str) -> str:
        return self._status.get(symbol, "TRADING")

    def _series(self, symbol: str) -> C.Series:
        if not self.knows(symbol):
            raise KeyError(f"unknown symbol {symbol!r}; add it with add_symbol() (the emulator has "
                           f"{', '.join(self._symbols)})")
        return self._symbols[symbol]

    def knows(self, symbol: str) -> bool:
        """Whether ``symbol`` is listed; with ``any_symbol`` a well-formed name (upper-case letters and
        digits ending in a quote asset, e.g. ``ETHUSDT``) is listed now, generated like the others."""
        if symbol in self._symbols:
            return True
        if not self.any_symbol or not _SYMBOL_RE.fullmatch(symbol):
            return False
        try:
            self.add_symbol(symbol)
        except ValueError:  # no known quote asset at its end: Binance would not list it either
            return False
        return True

    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> list[list]:
        """Ground truth: every row /klines would serve with open time in [start, end)."""
        if interval not in C.INTERVALS_MS:
            raise ValueError(f"interval {interval!r} is not a Binance interval")
        series, now = self._series(symbol), self.now_ms()
        self._publish_due(now)
        out: list[list] = []
        start = start_ms
        while True:
            page = C.select_klines(series, interval, now, start, end_ms - 1, 1000)
            out.extend(page)
            if len(page) < 1000:
                return out
            start = page[-1][0] + 1

    def add_exchange_gap(self, symbol: str, start_ms: int, end_ms: int, until_ms: Optional[int] = None) -> None:
        """No candles in [start, end). With ``until_ms``, only while the data clock is before it:
        Binance publishes the minutes late (maintenance backfill), and they are served once
        ``now_ms() >= until_ms``."""
        with self._lock:
            s = self._series(symbol)
            s.gaps.append((int(start_ms), int(end_ms)))
            s.gaps.sort()
            if until_ms is not None:
                self._late.append((symbol, int(start_ms), int(end_ms), int(until_ms)))

    def fill_exchange_gap(self, symbol: str, start_ms: int, end_ms: int) -> None:
        """Late data: the minutes of [start, end) that were an exchange gap are served from now on."""
        with self._lock:
            self._series(symbol).remove_gap(int(start_ms), int(end_ms))

    def _publish_due(self, now_ms: int) -> None:
        """Serve the late minutes whose ``until_ms`` the data clock has reached."""
        with self._lock:
            due = [g for g in self._late if g[3] <= now_ms]
            for symbol, start, end, _ in due:
                self.fill_exchange_gap(symbol, start, end)
            self._late = [g for g in self._late if g[3] > now_ms]

    def set_kline_override(self, symbol: str, open_ms: int, row: list) -> None:
        """Pin the exact 1m row served at open_ms (ms row; µs is derived when asked)."""
        if open_ms % MS_PER_MINUTE or int(row[0]) != open_ms:
            raise ValueError("override rows must be minute-aligned and row[0] must equal open_ms")
        with self._lock:
            self._series(symbol).overrides[int(open_ms)] = list(row)

    def load_csv_fixture(self, symbol: str, path: str | Path) -> int:
        """Serve the real rows of a 6-column CSV (open_time,open,high,low,close,volume) for
        `symbol`; the other kline fields are derived (see candles.fixture_row)."""
        rows = C.load_csv_rows(symbol, path)
        for row in rows:
            self.set_kline_override(symbol, row[0], row)
        return len(rows)

    @classmethod
    def from_fixture_day(cls, symbol: str, path: str | Path, **kw: Any) -> Emulator:
        """An emulator whose clock sits just after the fixture's last candle closed."""
        emu = cls(**kw) if "now_ms" in kw else cls(now_ms=0, **kw)
        if symbol not in emu._symbols:
            emu.add_symbol(symbol)
        rows = C.load_csv_rows(symbol, path)
        for row in rows:
            emu.set_kline_override(symbol, row[0], row)
        if "now_ms" not in kw and rows:
            emu.set_now(rows[-1][6] + 1)
        return emu

    # ------------------------------------------------------------------ orders
    def add_api_key(self, api_key: str, api_secret: str, can_read: bool = True) -> None:
        """``can_read=False``: a key created without "Enable Reading" (USER_DATA reads answer -2015)."""
        with self._lock:
            self._keys[api_key] = api_secret
            (self._no_read_keys.discard if can_read else self._no_read_keys.add)(api_key)

    def _book(self, symbol: str) -> OrderBook:
        self._series(symbol)
        return self._books[symbol]

    def add_order(self, symbol: str, **fields: Any) -> dict:
        with self._lock:
            order = self._book(symbol).add(self.now_ms(), fields)
            self._fill(symbol, order)
            return order

    def _ledger(self, symbol: str) -> TradeLedger:
        if symbol not in self._ledgers:
            self._ledgers[symbol] = TradeLedger(symbol, self._series(symbol).spec.quote)
        return self._ledgers[symbol]

    def _fill(self, symbol: str, order: dict) -> None:
        """The fills an order's executedQty growth implies (see emulator/trades.py)."""
        spec = self._series(symbol).spec
        self._ledger(symbol).catch_up(
            [order], lambda t: C._price_ticks(spec, t // MS_PER_MINUTE) * spec.tick_units, spec.step_units)

    def trades(self, symbol: str) -> list[dict]:
        """Every trade of the symbol, as myTrades serves them (ascending id)."""
        with self._lock:
            return copy.deepcopy(self._ledger(symbol).trades)

    def load_orders_fixture(self, path: str | Path, symbol: Optional[str] = None) -> list[dict]:
        """Add orders from a JSON array such as the ccxt capture (string ints coerced)."""
        out = []
        for o in load_orders_json(path):
            sym = symbol or o["symbol"]
            if sym not in self._symbols:
                self.add_symbol(sym)
            out.append(self.add_order(sym, **{k: v for k, v in o.items() if k != "symbol"}))
        return out

    def generate_orders(self, symbol: str, count: int, start_ms: int, end_ms: int,
                        seed: int = 0) -> list[dict]:
        """`count` deterministic orders with creation times spread over [start, end),
        ascending ids in time order; mixed statuses, types and sides."""
        rng = random.Random(f"{symbol}|{seed}|{start_ms}|{end_ms}|{count}")
        spec = self._series(symbol).spec
        times = sorted(rng.randrange(start_ms, end_ms) for _ in range(count))
        out = []
        with self._lock:
            for t in times:
                price = C._price_ticks(spec, t // MS_PER_MINUTE) * spec.tick_units
                f = generated_fields(rng, t, price, spec.step_units, spec.tick_units)
                f["updateTime"] = min(f["updateTime"], max(t, self.now_ms()))
                out.append(self.add_order(symbol, **f))
        return out

    def update_order(self, symbol: str, order_id: int, **changes: Any) -> dict:
        with self._lock:
            order = self._book(symbol).update(self.now_ms(), int(order_id), changes)
            self._fill(symbol, order)
            return order

    def forget_order(self, symbol: str, order_id: int) -> None:
        """Binance no longer knows the order: /order answers -2013 and allOrders omits it."""
        with self._lock:
            del self._book(symbol).orders[int(order_id)]

    def orders(self, symbol: str) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._book(symbol).sorted())

    # ------------------------------------------------------------------ faults and weight
    def inject(self, fault: Fault) -> Fault:
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def fault_storm(self, seed: int, rate: float, kinds: list[str], paths: Optional[list[str]] = None,
                    times: Optional[int] = None, **kw: Any) -> Fault:
        return self.inject(Fault.random(seed, rate, kinds, path=paths, times=times, **kw))

    @property
    def interval_letter(self) -> tuple[str, int, str]:
        """(rateLimits interval, intervalNum, header suffix) for the weight window."""
        if self.weight_window_s == 60:
            return "MINUTE", 1, "1M"
        return "SECOND", self.weight_window_s, f"{self.weight_window_s}S"

    def _roll(self, real: float) -> None:
        w = int(real // self.weight_window_s)
        if w != self._window:
            self._window, self._used = w, 0

    def used_weight(self) -> int:
        with self._lock:
            self._roll(time.time())
            return self._used

    def reset_limits(self) -> None:
        """Forget used weight, 429 penalties and bans (test helper)."""
        with self._lock:
            self._used, self._penalty_until, self._ban_until = 0, 0.0, 0.0

    # ------------------------------------------------------------------ serving
    def serve(self, port: int = 0, host: str = "127.0.0.1"):
        from .server import serve
        return serve(self, port, host)

    def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        from .server import EmulatorServer
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = EmulatorServer(self, host, port)
        return self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # ------------------------------------------------------------------ request handling
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Reply:
        """Answer one HTTP request. Headers keys must be lower-case."""
        parts = urlsplit(target)
        path, query = parts.path, parts.query
        if path.startswith(ARCHIVE_PREFIX) and method in ("GET", "HEAD"):
            return self._archive_reply(path)
        body_s = body.decode("utf-8", "replace")
        pairs = parse_qsl(query, keep_blank_values=True) + parse_qsl(body_s, keep_blank_values=True)
        params = dict(pairs)
        route = _ROUTES.get(path) if method in ("GET", "HEAD") else None
        weight = route[0] if route else 1
        if path == "/api/v3/openOrders" and "symbol" not in params:
            weight = 80  # rest-api.md "Current open orders": 80 when the symbol is omitted
        if path == "/api/v3/myTrades" and "orderId" in params:
            weight = 5  # rest-api.md "Account trade list": 20, or 5 with orderId
        with self._lock:
            real = time.time()
            self._roll(real)
            reply: Optional[Reply]
            if self.geo_blocked:
                reply, fault_kind = Reply(451, _err_body(0, GEO_BLOCK_MSG)), None
            else:
                reply, fault_kind = self._gate(real, weight)
            if reply is None:
                fault, fault_kind = self._faults.pick(path)
                reply = self._faulted(fault, fault_kind, real) if fault and fault_kind else None
                if reply is None:
                    reply = self._dispatch(route, path, pairs, params, query, body_s, headers)
                    reply = self._mangle(reply, fault, fault_kind)
            if reply.status == 429:
                self.stats["429"] += 1
            elif reply.status == 418:
                self.stats["418"] += 1
            self.stats["requests"] += 1
            self.stats["faults"] += fault_kind is not None
            _, _, suffix = self.interval_letter
            reply.headers += [(f"X-MBX-USED-WEIGHT-{suffix}", str(self._used)),
                              ("x-mbx-used-weight", str(self._used))]
            shown = {k: v for k, v in params.items()}
            self.requests.append(RequestRecord(method, path, shown,
                                               0 if reply.action == "reset" else reply.status,
                                               weight, self._used, real, fault_kind,
                                               api_key_sent="x-mbx-apikey" in headers))
        return reply

    def _gate(self, real: float, weight: int) -> tuple[Optional[Reply], Optional[str]]:
        """Bans, 429 penalties and the weight budget, before any endpoint work."""
        if real < self._ban_until:
            return self._ban_reply(real), None
        if real < self._penalty_until:
            # kept sending during a 429's Retry-After: Binance escalates to an IP ban
            self._ban_until = real + self.ban_s
            self.stats["bans"] += 1
            return self._ban_reply(real), None
        self._used += weight
        if self._used > self.weight_limit:
            window_end = (self._window + 1) * self.weight_window_s
            return self._too_many(real, max(1, math.ceil(window_end - real))), None
        return None, None

    def _too_many(self, real: float, retry_after: int) -> Reply:
        self._penalty_until = max(self._penalty_until, real + retry_after)
        interval, num, _ = self.interval_letter
        msg = (f"Too much request weight used; current limit is {self.weight_limit} request weight per "
               f"{num} {interval}. Please use WebSocket Streams for live updates to avoid polling the API.")
        return Reply(429, _err_body(-1003, msg), [("Retry-After", str(retry_after))])

    def _ban_reply(self, real: float) -> Reply:
        until_ms = int(self._ban_until * 1000)
        msg = (f"Way too much request weight used; IP banned until {until_ms}. "
               "Please use WebSocket Streams for live updates to avoid bans.")
        retry = max(1, math.ceil(self._ban_until - real))
        return Reply(418, _err_body(-1003, msg), [("Retry-After", str(retry))])

    def _faulted(self, fault: Fault, kind: str, real: float) -> Optional[Reply]:
        """Replies that replace the endpoint's answer; None for faults that alter it."""
        if kind in ("429", "-1003"):
            return self._too_many(real, fault.retry_after_s)
        if kind == "418":
            self._ban_until = max(self._ban_until, real + fault.retry_after_s)
            self.stats["bans"] += 1
            return self._ban_reply(real)
        if kind == "403":
            return Reply(403, WAF_HTML, [("Content-Type", "text/html")])
        if kind in HTTP_KINDS:
            text = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable",
                    "504": "Gateway Time-out"}[kind]
            html = f"<html><head><title>{kind} {text}</title></head><body><h1>{text}</h1></body></html>"
            return Reply(int(kind), html.encode(), [("Content-Type", "text/html")])
        if kind in ERROR_KINDS:
            status, msg = ERROR_KINDS[kind]
            return Reply(fault.status or status, _err_body(int(kind), msg))
        if kind == "reset":
            return Reply(0, b"", action="reset")
        if kind == "malformed":
            return Reply(200, b"<html><body>upstream returned garbage</body></html>",
                         [("Content-Type", "text/html")])
        return None

    def _mangle(self, reply: Reply, fault: Optional[Fault], kind: Optional[str]) -> Reply:
        """Faults that damage a valid answer: timeout, truncated, incomplete, shuffle, duplicate."""
        if fault is None or kind is None:
            return reply
        if kind == "timeout":
            reply.delay_s = fault.delay_s
        elif kind == "truncated":
            reply.body = reply.body[: max(1, len(reply.body) // 2)]
        elif kind == "incomplete":
            reply.action = "incomplete"
        elif kind in ("shuffle", "duplicate") and reply.status == 200:
            data = json.loads(reply.body)
            if isinstance(data, list) and data:
                rng = random.Random(fault.seed * 1_000_003 + fault.fired)
                if kind == "shuffle":
                    original = list(data)
                    while len(data) > 1 and data == original:
                        rng.shuffle(data)
                else:
                    picks = sorted(rng.sample(range(len(data)), max(1, len(data) // 10)), reverse=True)
                    for i in picks:
                        data.insert(i + 1, copy.deepcopy(data[i]))
                reply.body = json.dumps(data, separators=(",", ":")).encode()
        return reply

    def _dispatch(self, route: Optional[tuple[int, Callable, frozenset]], path: str, pairs: list, params: dict,
                  query: str, body: str, headers: dict[str, str]) -> Reply:
        try:
            if route is None:
                raise ApiError(404, -1000, f"Unknown endpoint {path}.")
            if len(pairs) != len(params):
                raise ApiError(400, -1101, "Duplicate values for a parameter detected.")
            unread = [k for k in params if k not in route[2]]
            if unread and "signature" in params:
                # errors.md -1104 UNREAD_PARAMETERS, on the signed (USER_DATA) endpoints; the public
                # market-data ones ignore unknown parameters (tests/test_emulator.py keeps that contract)
                raise ApiError(400, -1104, f"Not all sent parameters were read; read '{len(params) - len(unread)}' "
                               f"parameter(s) but was sent '{len(params)}'.")
            unit = headers.get("x-mbx-time-unit")
            if unit is not None and unit.lower() not in ("microsecond", "millisecond"):
                raise ApiError(400, -1100, "Invalid time unit; expected MILLISECOND or MICROSECOND.")
            ctx = _Ctx(params, query, body, headers, self.now_ms(),
                       unit is not None and unit.lower() == "microsecond")
            data = route[1](self, ctx)
            return Reply(200, json.dumps(data, separators=(",", ":")).encode())
        except ApiError as e:
            return Reply(e.status, _err_body(e.code, e.msg))

    # ------------------------------------------------------------------ the public archive
    def archive_file(self, symbol: str, interval: str, period: str) -> Optional[bytes]:
        """The zip data.binance.vision would publish for ``period`` (``2024-01`` or ``2024-01-05``),
        built from the same ground truth /klines serves; None if it is not published (yet)."""
        key = (symbol, interval, period)
        with self._lock:
            if key not in self._archive_cache:
                if len(self._archive_cache) >= 8:  # a month of 1m is ~1.5 MB: keep a few
                    self._archive_cache.pop(next(iter(self._archive_cache)))
                self._archive_cache[key] = A.build_file(self, symbol, interval, period)
            return self._archive_cache[key]

    def _archive_reply(self, path: str) -> Reply:
        """GET data/spot/{monthly,daily}/klines/<SYM>/<interval>/<SYM>-<interval>-<period>.zip[.CHECKSUM].
        Outside the API: no weight, no faults, as data.binance.vision is a separate host (S3)."""
        parsed = A.parse_path(path)
        body = None
        if parsed is not None and self.knows(parsed.symbol):
            body = self.archive_file(parsed.symbol, parsed.interval, parsed.period)
        with self._lock:
            self.requests.append(RequestRecord("GET", path, {}, 200 if body is not None else 404, 0,
                                               self._used, time.time()))
        if body is None:
            # What S3 answers for a missing key of a public bucket (data.binance.vision is S3).
            return Reply(404, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>"
                         b"<Message>The specified key does not exist.</Message></Error>",
                         [("Content-Type", "application/xml")])
        if parsed is not None and parsed.checksum:
            return Reply(200, A.checksum_line(body, parsed.zip_name).encode(), [("Content-Type", "text/plain")])
        return Reply(200, body, [("Content-Type", "application/zip")])

    # ------------------------------------------------------------------ endpoints
    def _ep_ping(self, ctx: _Ctx) -> Any:
        return {}

    def _ep_time(self, ctx: _Ctx) -> Any:
        return {"serverTime": ctx.now_ms * 1000 if ctx.micros else ctx.now_ms}

    def _ep_exchange_info(self, ctx: _Ctx) -> Any:
        p = ctx.params
        if "symbol" in p and "symbols" in p:
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        names = list(self._symbols)
        if "symbol" in p:
            names = [p["symbol"]]
        elif "symbols" in p:
            try:
                names = json.loads(p["symbols"])
                assert isinstance(names, list) and all(isinstance(n, str) for n in names)
            except (ValueError, AssertionError):
                raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'; legal range is "
                               "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
        for n in names:
            if not self.knows(n):
                raise ApiError(400, -1121, "Invalid symbol.")
        interval, num, _ = self.interval_letter
        return {
            "timezone": "UTC",
            "serverTime": ctx.now_ms * 1000 if ctx.micros else ctx.now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": interval, "intervalNum": num,
                 "limit": self.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(self._symbols[n].spec, self.symbol_status(n)) for n in names],
        }

    def _ep_klines(self, ctx: _Ctx) -> Any:
        p = ctx.params
        symbol, interval = _required(p, "symbol"), _required(p, "interval")
        if not self.knows(symbol):
            raise ApiError(400, -1121, "Invalid symbol.")
        if interval not in C.INTERVALS_MS:
            raise ApiError(400, -1120, "Invalid interval.")
        limit = _limit(p)
        start, end = _time_ms(p, "startTime", True), _time_ms(p, "endTime", False)
        self._publish_due(ctx.now_ms)
        rows = C.select_klines(self._symbols[symbol], interval, ctx.now_ms, start, end, limit,
                               _tz_offset_ms(p))
        if ctx.micros:
            for r in rows:  # the close is the last µs before the next open (months vary)
                r[0] *= 1000
                r[6] = (r[6] + 1) * 1000 - 1
        return rows

    def _check_signed(self, ctx: _Ctx) -> None:
        """API key, timestamp/recvWindow and HMAC signature, in that order."""
        key = ctx.headers.get("x-mbx-apikey", "")
        if not _API_KEY_RE.match(key):
            raise ApiError(401, -2014, "API-key format invalid.")
        secret = self._keys.get(key)
        if secret is None or key in self._no_read_keys:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        p = ctx.params
        signature = _required(p, "signature")
        ts = _long(p, "timestamp")
        if ts is None:
            raise ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        ts_ms = ts / 1000 if ts >= 10**15 else ts
        recv = Decimal(5000)
        if "recvWindow" in p:
            try:
                recv = Decimal(p["recvWindow"])
            except InvalidOperation:
                raise ApiError(400, -1100, "Illegal characters found in parameter 'recvWindow'; "
                               "legal range is '^[0-9]{1,20}(\\.[0-9]{1,3})?$'.") from None
            exponent = recv.as_tuple().exponent  # 'n'/'N'/'F' for NaN and Infinity
            if not isinstance(exponent, int) or recv > 60000 or recv < 0 or -exponent > 3:
                raise ApiError(400, -1131, "recvWindow must be less than 60000")
        if ts_ms >= ctx.now_ms + 1000:
            raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if ctx.now_ms - Decimal(str(ts_ms)) > recv:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        payload = _strip_signature(ctx.query) + _strip_signature(ctx.body)
        if not hmac.compare_digest(signature.lower(), hmac_signature(secret, payload)):
            raise ApiError(400, -1022, "Signature for this request is not valid.")

    def _ep_all_orders(self, ctx: _Ctx) -> Any:
        self._check_signed(ctx)
        p = ctx.params
        symbol = _required(p, "symbol")
        if not self.knows(symbol):
            raise ApiError(400, -1121, "Invalid symbol.")
        order_id = _long(p, "orderId")
        start, end = _time_ms(p, "startTime", True), _time_ms(p, "endTime", False)
        limit = _limit(p)
        if start is not None and end is not None:
            if end - start > DAY_MS:
                raise ApiError(400, -1127, "More than 24 hours between startTime and endTime.")
            if start > end:
                raise ApiError(400, -1023, "Start time is greater than end time.")
        # one-sided windows are capped at 24 h too (conservative; see docs/emulator.md)
        if start is not None and end is None:
            end = start + DAY_MS
        elif end is not None and start is None:
            start = end - DAY_MS
        rows = [o for o in self._books[symbol].sorted() if not self._archived(o, ctx.now_ms)]
        if order_id is not None:
            rows = [o for o in rows if o["orderId"] >= order_id]
        if start is not None and end is not None:  # both or neither, after the capping above
            rows = [o for o in rows if start <= o["time"] <= end]
        # oldest first from orderId / startTime; else the most recent (up to endTime), ascending
        rows = rows[:limit] if order_id is not None or "startTime" in p else rows[-limit:]
        return _served_orders(rows, ctx)

    def _ep_my_trades(self, ctx: _Ctx) -> Any:
        """GET /api/v3/myTrades: the account's fills of one symbol (binance-spot-api-docs rest-api.md
        "Account trade list (USER_DATA)"): only the documented parameter combinations, a window of
        at most 24 h, ``fromId`` paging; archived orders (-2026) executed nothing, so have no trades."""
        symbol = self._signed_symbol(ctx)
        p = ctx.params
        given = frozenset(k for k in ("orderId", "startTime", "endTime", "fromId") if k in p)
        if given not in _MY_TRADES_COMBOS:
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        order_id, from_id = _long(p, "orderId"), _long(p, "fromId")
        start, end = _time_ms(p, "startTime", True), _time_ms(p, "endTime", False)
        limit = _limit(p)
        if start is not None and end is not None:
            if end - start > DAY_MS:
                raise ApiError(400, -1127, "More than 24 hours between startTime and endTime.")
            if start > end:
                raise ApiError(400, -1023, "Start time is greater than end time.")
        # one-sided windows are capped at 24 h, as for allOrders (see docs/emulator.md)
        if start is not None and end is None:
            end = start + DAY_MS
        elif end is not None and start is None:
            start = end - DAY_MS
        rows = self._ledger(symbol).select(order_id, from_id, start, end, limit)
        if ctx.micros:
            for t in rows:
                t["time"] *= 1000
        return rows

    def _signed_symbol(self, ctx: _Ctx) -> str:
        self._check_signed(ctx)
        symbol = _required(ctx.params, "symbol")
        if not self.knows(symbol):
            raise ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def _archived(self, order: dict, now_ms: int) -> bool:
        """errors.md -2026: canceled or expired with no executed qty over 90 days ago."""
        return (self.archive_orders and order["status"] in ARCHIVED_STATUSES
                and Decimal(order.get("executedQty", "0")) == 0
                and int(order.get("updateTime", order["time"])) < now_ms - ARCHIVE_AFTER_MS)

    def _ep_open_orders(self, ctx: _Ctx) -> Any:
        """GET /api/v3/openOrders: orders still on the book; weight 6 with a symbol, 80 without
        (then every symbol's, as rest-api.md "Current open orders" documents)."""
        if "symbol" in ctx.params:
            symbols = [self._signed_symbol(ctx)]
        else:
            self._check_signed(ctx)
            symbols = list(self._books)
        return _served_orders([o for s in symbols for o in self._books[s].sorted()
                               if o["status"] in OPEN_STATUSES], ctx)

    def _ep_order(self, ctx: _Ctx) -> Any:
        """GET /api/v3/order: one order by orderId or origClientOrderId (weight 4); unknown -> -2013,
        archived -> -2026."""
        symbol = self._signed_symbol(ctx)
        order_id = _long(ctx.params, "orderId")
        client_id = ctx.params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        for o in self._books[symbol].sorted():
            # rest-api.md "Query order (USER_DATA)": with both, orderId is searched first and the
            # origClientOrderId is then checked against that order; both must match.
            if ((order_id is None or o["orderId"] == order_id)
                    and (not client_id or o["clientOrderId"] == client_id)):
                if self._archived(o, ctx.now_ms):
                    raise ApiError(400, -2026, "Order was canceled or expired with no executed qty over 90 days "
                                   "ago and has been archived.")
                return _served_orders([o], ctx)[0]
        raise ApiError(400, -2013, "Order does not exist.")


# Binance's non-final order statuses: these are what /openOrders lists.
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})


def _served_orders(rows: list, ctx: _Ctx) -> list:
    """Copies of stored orders as served: times in µs when the client asked for them."""
    rows = copy.deepcopy(rows)
    if ctx.micros:
        for o in rows:
            for k in TIME_FIELDS:
                if isinstance(o.get(k), int) and o[k] > 0:
                    o[k] *= 1000
    return rows


def _symbol_info(spec: C.SymbolSpec, status: str = "TRADING") -> dict:
    tick, step = C.dec8(spec.tick_units), C.dec8(spec.step_units)
    return {
        "symbol": spec.symbol, "status": status, "baseAsset": spec.base, "baseAssetPrecision": 8,
        "quoteAsset": spec.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                       "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


_SIGNED = frozenset({"timestamp", "recvWindow", "signature"})
# myTrades' supported optional-parameter combinations (rest-api.md "Account trade list"); others: -1128.
_MY_TRADES_COMBOS = frozenset(frozenset(c) for c in (
    (), ("orderId",), ("startTime",), ("endTime",), ("fromId",), ("startTime", "endTime"), ("orderId", "fromId")))
# (weight, handler, parameters read): anything else is answered -1104 as Binance does.
_ROUTES: dict[str, tuple[int, Callable[[Emulator, _Ctx], Any], frozenset]] = {
    "/api/v3/ping": (1, Emulator._ep_ping, frozenset()),
    "/api/v3/time": (1, Emulator._ep_time, frozenset()),
    "/api/v3/exchangeInfo": (20, Emulator._ep_exchange_info,
                             frozenset({"symbol", "symbols", "permissions", "showPermissionSets"})),
    "/api/v3/klines": (2, Emulator._ep_klines,
                       frozenset({"symbol", "interval", "startTime", "endTime", "limit", "timeZone"})),
    "/api/v3/allOrders": (20, Emulator._ep_all_orders,
                          _SIGNED | {"symbol", "orderId", "startTime", "endTime", "limit"}),
    "/api/v3/openOrders": (6, Emulator._ep_open_orders, _SIGNED | {"symbol"}),
    "/api/v3/order": (4, Emulator._ep_order, _SIGNED | {"symbol", "orderId", "origClientOrderId"}),
    "/api/v3/myTrades": (20, Emulator._ep_my_trades,
                         _SIGNED | {"symbol", "orderId", "startTime", "endTime", "fromId", "limit"}),
}
