"""REST orders: account orders -> immutable raw JSON pages (history paging, refreshes of open
orders, archived and forgotten orders). No pyarrow here (it runs in a small Lambda).

The history cursor comes from the curated orders index and from history pages not yet
folded; the index is derived from raw: lost, the next sync re-pages the history.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from binance_lake import layout
from binance_lake.crash import crash_point
from binance_lake.errors import BadInputError, BinanceError
from binance_lake.lake import Lake, Version
from binance_lake.schema import ORDERS
from binance_lake.sources.rest.client import BinanceClient
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
from binance_lake.times import ms_to_date, ms_to_iso, to_ms

log = logging.getLogger(__name__)


# -- orders ---------------------------------------------------------------------------


@dataclass
class OrdersRequest:
    """What ``sync orders`` fetches: everything new (default), the latest N, or a time window."""

    latest: Optional[int] = None
    start: Optional[int] = None
    end: Optional[int] = None

    def validate(self) -> None:
        if self.latest is not None and not 1 <= self.latest <= PAGE_LIMIT:
            raise BadInputError(f"--limit {self.latest} is out of range; Binance returns 1 to 1000 orders")
        if self.latest is not None and self.start is not None:
            raise BadInputError("use either --limit or a time window (--window / --start/--end), not both")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise BadInputError(f"--start {ms_to_iso(self.start)} is not before --end {ms_to_iso(self.end)}")


def read_orders_index(lake: Lake, symbol: str) -> Dict[str, Any]:
    """{history_through, max_order_id, open_order_ids, ...} of one symbol; empty if absent."""
    return read_orders_indexes(lake)[0].get(symbol, {})


def read_orders_indexes(lake: Lake) -> Tuple[Dict[str, Dict[str, Any]], Version]:
    """Every symbol's orders cursor and the version of the one object holding them (lever 7)."""
    return read_index_object(lake, layout.orders_index_key(), layout.legacy_index_prefix(ORDERS))


# Raw orders pages are named <fetched>-<run>-<page>-<kind>-<first id>-<last id>.json. Only
# HISTORY pages (paging orderId upward from the history cursor) prove that no order below
# their last id is missing; samples (--limit, --window) and refreshes (/openOrders, /order)
# store real orders but never move the cursor, or the history before a sample would be
# skipped for good.
HISTORY, SAMPLE, REFRESH = "history", "sample", "refresh"


def history_page_last_id(raw_key: str) -> Optional[int]:
    """Last order id of a HISTORY page, from its name; None for any other page."""
    page = layout.parse_order_page(raw_key)
    return page[3] if page is not None and page[1] == HISTORY else None


@dataclass
class OrdersLedger:
    """Pending order pages and resolved order ids of every symbol, from one listing of each
    prefix instead of two per symbol (issue 14 lever 2). A listing, not a state file: it is
    what the lake holds when taken; taken at the start of a many-symbol run, before any of
    its symbols writes, it names what a per-symbol listing at that symbol's turn would."""

    pending: Dict[str, List[str]]
    resolved: Dict[str, List[int]]
    indexes: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # read once: read_orders_indexes


def orders_ledger(lake: Lake) -> OrdersLedger:
    pending: Dict[str, List[str]] = {}
    for key in lake.list_keys(layout.pending_prefix(ORDERS) + "/"):
        symbol = layout.values_of(key).get("symbol")
        if symbol:
            pending.setdefault(symbol, []).append(key)
    resolved: Dict[str, List[int]] = {}
    for key in lake.list_keys(layout.resolved_prefix("").rsplit("/", 1)[0] + "/"):
        symbol, order_id = layout.values_of(key).get("symbol"), layout.parse_resolved_name(key.rsplit("/", 1)[-1])
        if symbol and order_id is not None:
            resolved.setdefault(symbol, []).append(order_id)
    return OrdersLedger(pending, resolved, read_orders_indexes(lake)[0])


def pending_order_ids(lake: Lake, symbol: str, ledger: Optional[OrdersLedger] = None) -> List[int]:
    """Last order id of each HISTORY page not yet transformed (from key names).

    Only markers whose raw file exists count: a run killed between marker and raw file
    must not move the cursor past orders that were never stored.
    """
    markers = ledger.pending.get(symbol, []) if ledger is not None else lake.list_keys(
        layout.pending_prefix(ORDERS, symbol=symbol))
    ids = []
    for key in markers:
        last = history_page_last_id(key)
        if last is not None and lake.exists(layout.raw_key_of_marker(key)):
            ids.append(last)
    return ids


def known_orders(lake: Lake, symbol: str, ledger: Optional[OrdersLedger] = None) -> Tuple[int, List[int]]:
    """(history cursor: every order id up to it is stored, or -1; ids stored in a non-final state).

    Orders Binance no longer knows (-2013, see ``OrdersRun._one``) are left out: never re-queried.
    ``ledger``: one listing for all symbols of a run (:func:`orders_ledger`); None lists this symbol.
    """
    index = ledger.indexes.get(symbol, {}) if ledger is not None else read_orders_index(lake, symbol)
    through = max([int(index.get("history_through", -1)), *pending_order_ids(lake, symbol, ledger)])
    gone = set(ledger.resolved.get(symbol, []) if ledger is not None else resolved_order_ids(lake, symbol))
    return through, sorted(int(i) for i in index.get("open_order_ids", []) if int(i) not in gone)


def resolved_order_ids(lake: Lake, symbol: str) -> List[int]:
    """Ids of stored orders Binance answered -2013 (or -2026 with no stored copy), from key names."""
    ids = (layout.parse_resolved_name(n) for n in lake.list_children(layout.resolved_prefix(symbol)))
    return [i for i in ids if i is not None]


def stored_orders(lake: Lake, symbol: str, order_ids: Iterable[int]) -> Dict[int, Dict[str, Any]]:
    """The newest stored copy of each order, read from raw pages whose names span its id.

    Listing plus a few reads, no pyarrow (this runs in the extract Lambda); used only for the
    rare order Binance has archived, whose last state must be carried into its final row.
    """
    wanted = set(order_ids)
    found: Dict[int, Dict[str, Any]] = {}
    pages = [((p[0], p[2], p[3]), k) for k in lake.list_keys(layout.raw_prefix(ORDERS, symbol=symbol))
             if (p := layout.parse_order_page(k)) is not None]
    for (_fetched, first, last), key in sorted(pages, reverse=True):  # newest fetch first
        todo = {i for i in wanted - found.keys() if first <= i <= last}
        if not todo:
            continue
        try:
            data = json.loads(lake.read_bytes(key)).get("data", [])
        except (KeyError, ValueError, AttributeError):
            continue  # an unreadable page: an older copy may still do
        for o in data:
            if isinstance(o, dict) and o.get("orderId") in todo:
                found.setdefault(int(o["orderId"]), o)
        if not wanted - found.keys():
            break
    return found


# What the lake records for an order answered -2026 ORDER_ARCHIVED. errors.md: "Order was
# canceled or expired with no executed qty over 90 days ago and has been archived"; the
# binance-spot-api-docs CHANGELOG (2023-03-13, "Fixed error message for querying archived orders")
# names the statuses CANCELED or EXPIRED with executedQty == 0, and its 2025-08-12 entry adds
# EXPIRED_IN_MATCH. Binance does not say which one, so the row takes CANCELED (the final status
# of almost every resting order that ends unexecuted) and says how it was decided in
# extra_fields.lakeResolution.
ARCHIVED_STATUS = "CANCELED"
ARCHIVED_SOURCE = ("Binance answered -2026 ORDER_ARCHIVED: canceled or expired (CANCELED, EXPIRED or "
                   "EXPIRED_IN_MATCH) with no executed qty over 90 days ago (binance-spot-api-docs errors.md, "
                   "CHANGELOG); the exact final status is not published, CANCELED is recorded")


def archived_order(stored: Dict[str, Any], now_ms: int) -> Dict[str, Any]:
    """The final row of an archived order: its stored copy, status final, provenance attached."""
    return {**stored, "status": ARCHIVED_STATUS, "isWorking": False,
            "lakeResolution": {"code": -2026, "storedStatus": stored.get("status"), "resolvedAt": now_ms,
                               "source": ARCHIVED_SOURCE}}


# Orders that left the book since the last sync are re-read one by one (weight 4 each) up to
# this many; beyond it, re-paging allOrders from the oldest of them (weight 20 per 1000) is cheaper.
REFRESH_ONE_BY_ONE_MAX = 50


def prefetch_open_orders(client: BinanceClient, symbols: Sequence[str]) -> Optional[List[Dict[str, Any]]]:
    """Every symbol's open orders in one call when that is cheaper than one call per symbol
    (80 against 6 each: beyond 13 symbols); None when per-symbol calls are cheaper."""
    from binance_lake.sources.rest.client import OPEN_ORDERS_ALL_WEIGHT, OPEN_ORDERS_WEIGHT

    if len(set(symbols)) * OPEN_ORDERS_WEIGHT <= OPEN_ORDERS_ALL_WEIGHT:
        return None
    return client.open_orders_all()


def sync_orders(client: BinanceClient, lake: Lake, symbol: str, request: Optional[OrdersRequest] = None,
                progress: Optional[Progress] = None,
                open_orders: Optional[List[Dict[str, Any]]] = None,
                ledger: Optional[OrdersLedger] = None) -> ExtractResult:
    """``open_orders``: every symbol's open orders fetched once (prefetch_open_orders) for a
    multi-symbol run; None asks /openOrders for this symbol alone. ``ledger``: see known_orders."""
    request = request or OrdersRequest()
    request.validate()
    if not client.config.has_credentials:
        client.all_orders(symbol)  # raises the missing-credentials error
    info = client.symbol_info(symbol)
    run = OrdersRun(client, lake, symbol, progress)
    run.prefetched_open = open_orders
    run.result.symbol_status = str(info.get("status") or TRADING)
    if request.latest is not None:
        run.fetch_page({"limit": request.latest}, SAMPLE)
    elif request.start is not None:
        now = client.server_time()
        if request.start >= now:  # no order can have been created yet: "0 orders" would hide the typo
            raise BadInputError(f"--start {ms_to_iso(request.start)} is in the future (Binance server time "
                                f"{ms_to_iso(now)})")
        end = request.end if request.end is not None else now
        run.fetch_window(request.start, end)
    else:
        run.incremental(*known_orders(lake, symbol, ledger))
    return run.result


class OrdersRun:
    """One ``sync orders`` run: every page becomes one raw file."""

    def __init__(self, client: BinanceClient, lake: Lake, symbol: str, progress: Optional[Progress]):
        self.client, self.lake, self.symbol, self.progress = client, lake, symbol, progress
        self.run_id = uuid.uuid4().hex[:8]
        self.result = ExtractResult(ORDERS.name, symbol)
        self.pages = 0
        self.seen_ids: set = set()
        self.archived: List[int] = []

    def fetch_page(self, params: Dict[str, Any], kind: str) -> List[Dict[str, Any]]:
        crash_point("fetch")
        orders = self.client.all_orders(
            self.symbol, order_id=params.get("orderId"), start=params.get("startTime"),
            end_inclusive=params.get("endTime"), limit=params.get("limit", PAGE_LIMIT))
        self.seen_ids.update(int(o["orderId"]) for o in orders if isinstance(o, dict) and "orderId" in o)
        self._count_page()
        if orders:
            self._write(params, orders, kind)
        return orders

    def incremental(self, highest: int, stored_open: List[int]) -> None:
        """New orders after ``highest``, plus fresh states of stored orders that were still open.

        /openOrders (weight 6) tells which stored open orders changed: the ones no longer on
        the book. Those are re-read; orders still open are stored again with their current state.
        Past REFRESH_ONE_BY_ONE_MAX, allOrders is re-paged from the oldest of them; the ones it
        does not return (Binance archives unexecuted cancels after 90 days and leaves them out of
        allOrders) are then asked one by one, so none stays open in the lake.
        """
        cursor = highest + 1
        left_book: List[int] = []
        if stored_open:
            on_book = self.open_on_book()
            self._count_page()
            if on_book:
                self._write({"endpoint": "openOrders"}, on_book, REFRESH, "/api/v3/openOrders")
            left_book = sorted(set(stored_open) - {int(o["orderId"]) for o in on_book})
            if len(left_book) > REFRESH_ONE_BY_ONE_MAX:
                cursor = min(cursor, left_book[0])
            else:
                self.refresh_one_by_one(left_book)
                left_book = []
        self.page_by_id(cursor, HISTORY)
        self.refresh_one_by_one([i for i in left_book if i not in self.seen_ids])

    # Set by sync_orders_many when one all-symbols /openOrders call served every symbol.
    prefetched_open: Optional[List[Dict[str, Any]]] = None

    def open_on_book(self) -> List[Dict[str, Any]]:
        if self.prefetched_open is not None:
            return [o for o in self.prefetched_open if o.get("symbol") == self.symbol]
        return self.client.open_orders(self.symbol)

    def refresh_one_by_one(self, order_ids: List[int]) -> None:
        if not order_ids:
            return
        found = [o for o in map(self._one, order_ids) if o is not None]
        if found:
            self._write({"orderIds": order_ids}, found, REFRESH, "/api/v3/order")
        if self.archived:
            self._write_archived(self.archived)

    def _one(self, order_id: int) -> Optional[Dict[str, Any]]:
        try:
            order = self.client.order(self.symbol, order_id)
        except BinanceError as exc:
            if exc.code == -2026:
                self.archived.append(order_id)  # final: recorded by _write_archived
            elif exc.code == -2013:
                # Binance no longer knows it (until 2023-03-13 that was also how archived orders
                # answered, CHANGELOG "Fixed error message for querying archived orders"). Its row is kept as
                # last seen (inventing a final state would be a guess) but it is not asked again.
                log.warning("%s order %d: Binance says it does not exist (-2013); kept as last stored "
                            "and not queried again", self.symbol, order_id)
                self._mark_resolved(order_id, exc.code, "Order does not exist.")
            else:
                raise
            order = None
        self._count_page()
        return order

    def _mark_resolved(self, order_id: int, code: int, msg: str) -> None:
        body = {"orderId": order_id, "code": code, "msg": msg, "resolved_at": int(time.time() * 1000)}
        self.lake.write_bytes(layout.resolved_key(self.symbol, order_id), json.dumps(body).encode())
        self.result.orders_resolved.setdefault(str(code), []).append(order_id)

    def _write_archived(self, order_ids: List[int]) -> None:
        """Archived orders become final rows (see ARCHIVED_STATUS), built from their stored copy."""
        stored = stored_orders(self.lake, self.symbol, order_ids)
        now = int(time.time() * 1000)
        rows = [archived_order(stored[i], now) for i in order_ids if i in stored]
        if rows:
            self._write({"orderIds": [r["orderId"] for r in rows], "code": -2026}, rows, REFRESH,
                        "/api/v3/order (-2026 ORDER_ARCHIVED)")
        for i in order_ids:
            if i not in stored:  # no copy to carry over: at least never ask again
                self._mark_resolved(i, -2026, "Order archived; no stored copy to finalise")
        self.result.orders_resolved.setdefault("-2026", []).extend(r["orderId"] for r in rows)
        log.warning("%s: %d orders archived by Binance (-2026) recorded as final %s", self.symbol,
                    len(order_ids), ARCHIVED_STATUS)
        self.archived = []

    def _count_page(self) -> None:
        self.pages += 1
        if self.progress:
            self.progress(self.pages, 0)

    def _write(self, params: Dict[str, Any], orders: List[Dict[str, Any]], kind: str,
               endpoint: str = "/api/v3/allOrders") -> None:
        fetched = int(time.time() * 1000)
        ids = [int(o["orderId"]) for o in orders if isinstance(o, dict) and "orderId" in o]
        first, last = (min(ids), max(ids)) if ids else (0, 0)
        name = layout.order_page_name(fetched, self.run_id, self.pages, kind, first, last)
        key = layout.child(layout.raw_partition(ORDERS.name, self.symbol, ms_to_date(fetched)), name)
        write_raw(self.lake, key, envelope(self.client, "orders", self.symbol, endpoint,
                                           {"symbol": self.symbol, **params}, orders))
        self.result.raw_keys.append(key)
        self.result.rows += len(orders)
        self.result.dates.append(ms_to_date(fetched))

    def page_by_id(self, cursor: int, kind: str, stop_time: Optional[int] = None) -> None:
        """Page ``orderId >= cursor`` in ascending id order until a short page (or ``stop_time``)."""
        while True:
            orders = self.fetch_page({"orderId": cursor, "limit": PAGE_LIMIT}, kind)
            if not orders:
                return
            cursor = max(int(o["orderId"]) for o in orders) + 1
            if len(orders) < PAGE_LIMIT:
                return
            if stop_time is not None and max(to_ms(o["time"]) for o in orders) >= stop_time:
                return

    def fetch_window(self, start: int, end: int) -> None:
        """Orders created in [start, end): 24-hour windows; a full page continues by orderId."""
        self.result.start, self.result.end = start, end
        for s in range(start, end, ORDERS_WINDOW_MAX_MS):
            e = min(s + ORDERS_WINDOW_MAX_MS, end)
            orders = self.fetch_page({"startTime": s, "endTime": e - 1, "limit": PAGE_LIMIT}, SAMPLE)
            if len(orders) == PAGE_LIMIT:
                self.page_by_id(max(int(o["orderId"]) for o in orders) + 1, SAMPLE, stop_time=e)
