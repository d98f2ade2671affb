"""REST trades: the account's fills (GET /api/v3/myTrades) -> immutable raw JSON pages. A pure
source: fetch, check, store pages with their envelope; the fold curates them. No pyarrow here
(it runs in the extract Lambda).

Binance (binance-spot-api-docs rest-api.md "Account trade list (USER_DATA)"): weight 20, or 5
with ``orderId``; ``symbol`` is mandatory; ``fromId`` returns trades with id >= it, oldest first;
``startTime``..``endTime`` at most 24 h; a trade never changes once reported.

How much is asked per symbol:

* first sync (no cursor in the lake): the whole history by ``fromId`` from 0, 1000 per page
  (weight 20 per page); ``--start``: 24 h windows (a full page continues by ``fromId``);
* ``sync trades``: ``fromId`` = cursor + 1, one page of weight 20 when nothing is new;
* ``sync account`` (orders, then trades) and the tick: only the orders whose ``executedQty`` grew
  since the last trades run (read from the orders pages stored since then, against the
  executedQty recorded for orders still open, see :class:`OrdersSeen`). None: no trades call at
  all (weight 0). Up to 3: one
  ``orderId``+``fromId`` call each (weight 5; 3 x 5 = 15 < 20). More: one ``fromId`` paging (20
  per 1000 trades).

The cursor (every trade id up to it is stored) derives from the lake: the trades index the fold
writes plus history pages not yet folded, like the orders cursor. Only ``fromId`` history pages
move it; ``orderId`` and window pages store real trades but prove nothing about other orders.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Optional, Tuple

from binance_lake import layout
from binance_lake.crash import crash_point
from binance_lake.errors import BadInputError, BinanceUnavailableError
from binance_lake.lake import Lake, Version
from binance_lake.schema import OPEN_ORDER_STATUSES, ORDERS, TRADES
from binance_lake.sources.rest.client import MY_TRADES_ORDER_WEIGHT, MY_TRADES_WEIGHT, BinanceClient
from binance_lake.sources.rest.raw import (
    ORDERS_WINDOW_MAX_MS,
    PAGE_LIMIT,
    TRADING,
    ExtractResult,
    Progress,
    envelope,
    read_index_object,
    write_raw,
)
from binance_lake.times import MS_PER_DAY, ms_to_date, ms_to_iso

log = logging.getLogger(__name__)

ENDPOINT = "/api/v3/myTrades"
# Raw trades pages are named like orders pages (layout.order_page_name), <first>-<last> being trade
# ids. Only HISTORY pages (fromId paging up from the cursor) prove no trade below their last id is
# missing.
HISTORY, WINDOW, BY_ORDER = "history", "window", "order"
TRADES_WINDOW_MAX_MS = ORDERS_WINDOW_MAX_MS  # myTrades: at most 24 h between startTime and endTime
ORDERS_SEEN_REFRESH_MS = 60 * 60 * 1000  # see sync_trades: the record is rewritten at least hourly
FILLED_LOOKBACK_MAX_MS = 7 * MS_PER_DAY  # an older mark: page by fromId instead of reading a week of pages


@dataclass
class TradesRequest:
    """What ``sync trades`` fetches: everything new (default) or trades of a time window."""

    start: Optional[int] = None
    end: Optional[int] = None

    def validate(self) -> None:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise BadInputError(f"--start {ms_to_iso(self.start)} is not before --end {ms_to_iso(self.end)}")


def read_trades_index(lake: Lake, symbol: str) -> Dict[str, Any]:
    """{history_through, max_trade_id} of one symbol, written by the fold; empty if absent (then re-paged)."""
    return read_trades_indexes(lake)[0].get(symbol, {})


def read_trades_indexes(lake: Lake) -> Tuple[Dict[str, Dict[str, Any]], Version]:
    """Every symbol's trades cursor and the version of the one object holding them (issue 21)."""
    return read_index_object(lake, layout.trades_index_key(), layout.legacy_index_prefix(TRADES))


def history_page_last_id(raw_key: str) -> Optional[int]:
    page = layout.parse_order_page(raw_key)
    return page[3] if page is not None and page[1] == HISTORY else None


class TradesLedger:
    """The trades index and the pending trades pages of every symbol, read once per extract run
    (one GET and one LIST) instead of once per symbol asked, and only if a symbol asks. Taken
    before that symbol writes any page; a transform folding pages meanwhile only makes the cursor
    lag (those trades are asked again and stay one row each), never lead."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self._indexes: Optional[Dict[str, Dict[str, Any]]] = None
        self._pending: Dict[str, List[str]] = {}

    def entry(self, symbol: str) -> Tuple[Dict[str, Any], List[str]]:
        """(the symbol's index entry, its pending trades markers)."""
        if self._indexes is None:
            self._indexes = read_trades_indexes(self.lake)[0]
            for key in self.lake.list_keys(layout.pending_prefix(TRADES) + "/"):
                symbol_of = layout.values_of(key).get("symbol")
                if symbol_of:
                    self._pending.setdefault(symbol_of, []).append(key)
        return self._indexes.get(symbol, {}), self._pending.get(symbol, [])


def trades_cursor(lake: Lake, symbol: str, ledger: Optional[TradesLedger] = None) -> int:
    """Every trade id up to this is stored (-1: none). Pending history pages count only if their raw
    file exists: a run killed between marker and raw must not move the cursor past trades never stored.
    ``ledger``: one read of the index and one listing for every symbol of a run; None: this symbol's."""
    if ledger is not None:
        index, markers = ledger.entry(symbol)
    else:
        index, markers = read_trades_index(lake, symbol), lake.list_keys(layout.pending_prefix(TRADES, symbol=symbol))
    through = int(index.get("history_through", -1))
    for marker in markers:
        last = history_page_last_id(marker)
        if last is not None and lake.exists(layout.raw_key_of_marker(marker)):
            through = max(through, last)
    return through


# -- which orders can have new fills ---------------------------------------------------------


@dataclass
class OrdersSeen:
    """What the last trades run had seen of the orders: the fetch time of the newest orders page it
    read, and the executedQty of each order then still open with fills (small: open orders only)."""

    fetched_through: int = 0
    executed: Dict[int, str] = field(default_factory=dict)

    def changed(self, newest: Dict[int, Tuple[str, str]]) -> List[int]:
        """Ids whose executedQty grew: > 0 and not what was recorded (a new order, a further fill)."""
        return sorted(oid for oid, (_status, qty) in newest.items()
                      if _dec(qty) > 0 and _dec(self.executed.get(oid, "0")) != _dec(qty))

    def advanced(self, newest: Dict[int, Tuple[str, str]], fetched_through: int) -> OrdersSeen:
        executed = dict(self.executed)
        for oid, (status, qty) in newest.items():
            if status in OPEN_ORDER_STATUSES and _dec(qty) > 0:
                executed[oid] = qty
            else:
                executed.pop(oid, None)  # final (no more fills) or nothing executed yet
        return OrdersSeen(max(self.fetched_through, fetched_through), executed)


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def orders_seen_key(symbol: str) -> str:
    return layout.child(layout.last_run_key(TRADES.name, symbol).rsplit("/", 1)[0], "orders_seen.json")


def read_orders_seen(lake: Lake, symbol: str) -> Optional[OrdersSeen]:
    """None when absent or unreadable: then trades are paged by ``fromId``, which misses nothing."""
    try:
        body = json.loads(lake.read_bytes(orders_seen_key(symbol)))
        return OrdersSeen(int(body["orders_fetched_through"]),
                          {int(k): str(v) for k, v in body.get("executed", {}).items()})
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def write_orders_seen(lake: Lake, symbol: str, seen: OrdersSeen) -> None:
    body = {"orders_fetched_through": seen.fetched_through, "executed": {str(k): v for k, v in seen.executed.items()},
            "written_at": int(time.time() * 1000)}
    lake.write_bytes(orders_seen_key(symbol), json.dumps(body).encode())


def orders_stored_since(lake: Lake, symbol: str, after: int, now_ms: int
                        ) -> Tuple[int, Dict[int, Tuple[str, str]]]:
    """(newest page fetch time, {order id: (status, executedQty)} of the newest copy) over the raw
    orders pages fetched after ``after`` (listing one date partition per day since then)."""
    pages = []
    for day in range(max(after, 0) // MS_PER_DAY, now_ms // MS_PER_DAY + 1):
        for key in lake.list_keys(layout.raw_partition(ORDERS.name, symbol, ms_to_date(day * MS_PER_DAY))):
            page = layout.parse_order_page(key)
            if page is not None and page[0] > after:
                pages.append((page[0], key))
    newest: Dict[int, Tuple[str, str]] = {}
    for _fetched, key in sorted(pages):  # later pages overwrite: the newest copy wins
        newest.update(_order_states(lake, key))
    return max([after, *(f for f, _ in pages)]), newest


def _order_states(lake: Lake, key: str) -> Dict[int, Tuple[str, str]]:
    try:
        data = json.loads(lake.read_bytes(key)).get("data", [])
    except (KeyError, ValueError, AttributeError):
        return {}  # the fold quarantines it; a later fromId paging covers its orders
    out = {}
    for o in data:
        if isinstance(o, dict) and isinstance(o.get("orderId"), int):
            out[o["orderId"]] = (str(o.get("status")), str(o.get("executedQty", "0")))
    return out



# -- the run ---------------------------------------------------------------------------------


def sync_trades(client: BinanceClient, lake: Lake, symbol: str, request: Optional[TradesRequest] = None,
                progress: Optional[Progress] = None, only_changed: bool = False,
                ledger: Optional[TradesLedger] = None) -> ExtractResult:
    """Trades of ``symbol`` into raw. ``only_changed``: ask only for orders that can have new fills
    (``sync account``, the tick); otherwise every trade after the cursor (``fromId``). ``ledger``:
    see :func:`trades_cursor`."""
    request = request or TradesRequest()
    request.validate()
    if not client.config.has_credentials:
        client.my_trades(symbol)  # raises the missing-credentials error
    info = client.symbol_info(symbol)
    run = TradesRun(client, lake, symbol, progress)
    run.result.symbol_status = str(info.get("status") or TRADING)
    now = int(time.time() * 1000)
    if request.start is not None:
        now = client.server_time()
        if request.start >= now:  # no trade can have happened yet: "0 trades" would hide the typo (as orders)
            raise BadInputError(f"--start {ms_to_iso(request.start)} is in the future (Binance server time "
                                f"{ms_to_iso(now)})")
        end = request.end if request.end is not None else now
        run.fetch_window(request.start, end)
        return run.result
    # A previous trades run that completed wrote the record: its fromId paging covered the
    # history, so only orders that executed since can add trades. None: page from the cursor.
    seen = read_orders_seen(lake, symbol) if only_changed else None
    if seen is not None and now - seen.fetched_through > FILLED_LOOKBACK_MAX_MS:
        seen = None  # listing that many days of orders pages costs more than one fromId paging
    # Read before any trade is asked: whatever these orders executed is then in the replies.
    through, newest = orders_stored_since(lake, symbol, seen.fetched_through if seen else now - MS_PER_DAY, now)
    changed: List[int] = []
    if seen is None:
        run.page_by_id(trades_cursor(lake, symbol, ledger) + 1, HISTORY)
        seen = OrdersSeen()
    else:
        changed = seen.changed(newest)
        # The cursor (a listing and a read) only when something is asked: a quiet tick costs no S3 call for it.
        run.by_orders(changed, trades_cursor(lake, symbol, ledger) if changed else -1)
    after = seen.advanced(newest, through)
    # One PUT per symbol a tick is ~0.04 USD/month per symbol (8,640 ticks x S3 PutObject 0.005
    # USD per 1,000): when nothing was asked and the record would say the same, keep it and re-read
    # the same few pages next tick (GETs cost a twelfth) until it is an hour old. After any ask it
    # is written, or the same orders would be asked again next tick.
    if changed or after.executed != seen.executed or now - seen.fetched_through > ORDERS_SEEN_REFRESH_MS:
        write_orders_seen(lake, symbol, after)
    return run.result


class TradesRun:
    """One trades run of one symbol: every page becomes one raw file."""

    def __init__(self, client: BinanceClient, lake: Lake, symbol: str, progress: Optional[Progress]):
        self.client, self.lake, self.symbol, self.progress = client, lake, symbol, progress
        self.run_id = uuid.uuid4().hex[:8]
        self.result = ExtractResult(TRADES.name, symbol)
        self.pages = 0

    def fetch_page(self, params: Dict[str, Any], kind: str) -> List[Dict[str, Any]]:
        crash_point("fetch")
        trades = self.client.my_trades(
            self.symbol, order_id=params.get("orderId"), from_id=params.get("fromId"),
            start=params.get("startTime"), end_inclusive=params.get("endTime"), limit=params.get("limit", PAGE_LIMIT))
        self._check(trades)
        self.pages += 1
        if self.progress:
            self.progress(self.pages, 0)
        if trades:
            self._write(params, trades, kind)
        return trades

    def _check(self, trades: Any) -> None:
        """A reply that is not a list of trade objects is Binance misbehaving, not data."""
        if not isinstance(trades, list) or not all(isinstance(t, dict) and "id" in t for t in trades):
            raise BinanceUnavailableError(f"GET {ENDPOINT} {self.symbol}: the reply is not a list of trades")

    def page_by_id(self, from_id: int, kind: str, order_id: Optional[int] = None,
                   stop_time: Optional[int] = None) -> None:
        """``id >= from_id`` in ascending id order until a short page (or past ``stop_time``)."""
        while True:
            params: Dict[str, Any] = {"fromId": max(from_id, 0), "limit": PAGE_LIMIT}
            if order_id is not None:
                params = {"orderId": order_id, **params}
            trades = self.fetch_page(params, kind)
            if len(trades) < PAGE_LIMIT:
                return
            from_id = max(int(t["id"]) for t in trades) + 1
            if stop_time is not None and max(int(t["time"]) for t in trades) >= stop_time:
                return

    def by_orders(self, order_ids: List[int], cursor: int) -> None:
        """New fills of these orders: one orderId call each when that is cheaper than a fromId page."""
        if not order_ids:
            self.result.note = "no order executed anything since the last trades run: trades not asked"
            return
        if len(order_ids) * MY_TRADES_ORDER_WEIGHT < MY_TRADES_WEIGHT:
            for oid in order_ids:
                self.page_by_id(cursor + 1, BY_ORDER, order_id=oid)
        else:
            self.page_by_id(cursor + 1, HISTORY)

    def fetch_window(self, start: int, end: int) -> None:
        """Trades in [start, end): 24-hour windows (a longer --start is split, not refused); a full
        page continues by fromId up to the window's end."""
        self.result.start, self.result.end = start, end
        for s in range(start, end, TRADES_WINDOW_MAX_MS):
            e = min(s + TRADES_WINDOW_MAX_MS, end)
            trades = self.fetch_page({"startTime": s, "endTime": e - 1, "limit": PAGE_LIMIT}, WINDOW)
            if len(trades) == PAGE_LIMIT:
                self.page_by_id(max(int(t["id"]) for t in trades) + 1, WINDOW, stop_time=e)

    def _write(self, params: Dict[str, Any], trades: List[Dict[str, Any]], kind: str) -> None:
        fetched = int(time.time() * 1000)
        first, last = _id_span(trades)
        name = layout.order_page_name(fetched, self.run_id, self.pages, kind, first, last)
        key = layout.child(layout.raw_partition(TRADES.name, self.symbol, ms_to_date(fetched)), name)
        write_raw(self.lake, key, envelope(self.client, layout.file_name(TRADES.raw_prefix), self.symbol,
                                           ENDPOINT, {"symbol": self.symbol, **params}, trades))
        self.result.raw_keys.append(key)
        self.result.rows += len(trades)
        self.result.dates.append(ms_to_date(fetched))


def _id_span(trades: List[Dict[str, Any]]) -> Tuple[int, int]:
    ids = [int(t["id"]) for t in trades]
    return min(ids), max(ids)
