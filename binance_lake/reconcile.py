"""Orders against their trades: the one definition of the consistency rule verify and status use.

For every order in a final state (``schema.FINAL_ORDER_STATUSES``: it gets no more fills) the sum of
its trades' ``qty`` must equal its ``executed_qty``, and the sum of their ``quote_qty`` its
``cummulative_quote_qty``. Binance documents the second as "the cummulative amount of the quote
that has been spent (BUY) or received (SELL)" and lets historical orders carry a value < 0 meaning
"data not available" (binance-spot-api-docs rest-api.md, allOrders notes): then only the quantity
side is checked. It is an invariant to check, not a documented guarantee; a failure means a trade
or an order is missing or wrong in the lake (or at Binance), and it is reported with both sides,
never "fixed" by guessing which side is right.

Pure pyarrow (runs wherever verify runs, Glue executors included).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from binance_lake import layout
from binance_lake.errors import Rejected
from binance_lake.lake import Lake
from binance_lake.schema import FINAL_ORDER_STATUSES, ORDERS, TRADES, Table

log = logging.getLogger(__name__)


@dataclass
class OrderMismatch:
    """One final order whose trades do not add up; decimals as exact strings."""

    symbol: str
    order_id: int
    status: str
    executed_qty: str
    trades_qty: str
    cummulative_quote_qty: Optional[str]  # None: Binance has no data (< 0), the quote side is not checked
    trades_quote_qty: str
    trades: int

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def order_trade_mismatches(orders: pa.Table, trades: pa.Table) -> List[OrderMismatch]:
    """Every final order of ``orders`` whose ``trades`` do not sum to its executed/quote quantities."""
    if orders.num_rows == 0:
        return []
    final = orders.filter(pc.is_in(orders["status"], value_set=pa.array(sorted(FINAL_ORDER_STATUSES))))
    sums = _sums(trades)
    out = []
    for o in final.select(["symbol", "order_id", "status", "executed_qty", "cummulative_quote_qty"]).to_pylist():
        qty, quote, n = sums.get((o["symbol"], o["order_id"]), (Decimal(0), Decimal(0), 0))
        cum = o["cummulative_quote_qty"]
        cum_known = cum is not None and cum >= 0
        if o["executed_qty"] != qty or (cum_known and cum != quote):
            out.append(OrderMismatch(o["symbol"], o["order_id"], o["status"], f"{o['executed_qty']:f}", f"{qty:f}",
                                     f"{cum:f}" if cum_known else None, f"{quote:f}", n))
    return sorted(out, key=lambda m: (m.symbol, m.order_id))


def _sums(trades: pa.Table) -> Dict[Any, Any]:
    if trades.num_rows == 0:
        return {}
    g = trades.group_by(["symbol", "order_id"], use_threads=False).aggregate(
        [("qty", "sum"), ("quote_qty", "sum"), ("trade_id", "count")])
    return {(r["symbol"], r["order_id"]): (Decimal(r["qty_sum"]), Decimal(r["quote_qty_sum"]), r["trade_id_count"])
            for r in g.to_pylist()}


def read_symbol(lake: Lake, table: Table, symbol: str) -> pa.Table:
    """Every curated partition of one symbol (an unreadable one is skipped: verify reports and
    repairs it per partition)."""
    from binance_lake.columns import arrow_schema
    from binance_lake.fold import read_partition

    prefix = layout.partition_prefix(table, symbol=symbol)
    parts = []
    for day in lake.list_children(prefix):
        try:
            t = read_partition(lake, layout.child(prefix, day), table)
        except Rejected as exc:
            log.warning("%s/%s: %s; left out of the orders-vs-trades check", prefix, day, exc)
            continue
        if t is not None:
            parts.append(t)
    return pa.concat_tables(parts) if parts else arrow_schema(table).empty_table()


def check_symbols(lake: Lake, symbols: Sequence[str]) -> List[OrderMismatch]:
    """The rule over the lake's curated orders and trades of ``symbols``. A symbol without any
    curated trades is not checked (its trades were never synced: nothing to compare)."""
    out: List[OrderMismatch] = []
    for symbol in symbols:
        trades = read_symbol(lake, TRADES, symbol)
        if trades.num_rows == 0 and not lake.list_children(layout.partition_prefix(TRADES, symbol=symbol)):
            continue
        out += order_trade_mismatches(read_symbol(lake, ORDERS, symbol), trades)
    return out


def curated_symbols(lake: Lake, table: Table) -> List[str]:
    return sorted(layout.value_of(d) for d in lake.list_children(layout.partition_prefix(table)))


def trades_status(lake: Lake, con: Any) -> List[Dict[str, Any]]:
    """``query.trades_status`` per symbol plus ``orders_inconsistent``: how many final orders disagree
    with their trades (what ``status`` shows; ``verify`` lists them)."""
    from binance_lake.query import trades_status as trade_counts

    rows = trade_counts(con)
    for row in rows:
        row["orders_inconsistent"] = len(check_symbols(lake, [row["symbol"]]))
    return rows
