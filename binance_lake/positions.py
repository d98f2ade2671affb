"""The ``positions`` view: per symbol, what the account's trades add up to (SQL over ``trades``).

One definition of the columns and the method, rendered per dialect: DuckDB (every ``query`` /
``lake.sql`` connection) and Athena engine v3 (Trino SQL, deployed as a saved query by
py_cdk/catalog.py). See docs/trades.md.

Method: **average cost**, in trade order (``trade_time``, then ``trade_id``):

* a BUY (``is_buyer``) adds its ``qty`` to the held quantity and its ``quote_qty`` to the cost basis;
* a SELL takes its ``qty`` out of the held quantity at the average cost (cost basis / held), so
  the cost basis drops by ``qty`` x average cost and the realized P&L (in the quote asset) grows by
  ``quote_qty`` - that cost. The average cost only changes on buys.
* The lake may not hold the account's trades from before its first sync: the part of a sell beyond
  the held quantity has no known cost, so it is left out of the realized P&L and counted in
  ``unmatched_sell_qty`` (the held quantity never goes below zero).
* Fees are not folded into cost or P&L: they are often paid in another asset (BNB), so they are
  summed per asset in ``fees`` (a map asset -> total) for the reader to value.

Exact: the running book is kept in integer units of 1e-8 (DuckDB HUGEINT, Trino DECIMAL(38, 0));
a sell's share of the cost basis and of its proceeds is rounded down to 1e-8, as is ``avg_cost``
(quote per base).

Not recursive: the book is a left fold (``reduce``) over each symbol's fills, collected in trade
order by ``array_agg(... ORDER BY ...)``. A recursive CTE would need one step per trade, and
Athena engine v3 stops recursion at depth 10 (Athena User Guide, "SELECT": "The maximum
recursion depth is 10"). Trino: ``reduce(array, initialState, inputFunction, outputFunction)``
(trino.io docs, "Array functions and operators"); DuckDB: ``list_reduce(list, lambda, initial)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from binance_lake.schema import TRADES

UNITS = 100_000_000  # 1e-8: the decimal scale of every curated quantity

# The output columns, in order, with what each means (docs/trades.md repeats them).
COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("symbol", "trading pair"),
    ("trades", "number of fills"),
    ("bought_qty", "base quantity bought"),
    ("sold_qty", "base quantity sold"),
    ("net_base_qty", "bought_qty - sold_qty"),
    ("held_qty", "base quantity held at known cost (never below 0)"),
    ("avg_cost", "cost_basis / held_qty in the quote asset, rounded down to 1e-8; NULL when nothing is held"),
    ("cost_basis", "quote asset paid for held_qty (average-cost method)"),
    ("realized_pnl", "quote proceeds of sells minus their average cost (quote asset)"),
    ("unmatched_sell_qty", "sold beyond what the lake shows held: no known cost, left out of realized_pnl"),
    ("fees", "map commission asset -> total commission"),
)


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines; everything else in the view is shared text."""

    name: str
    big: str  # an exact integer type wide enough for units x units (< 1e38)
    struct: str  # the named row type constructor
    floordiv: Callable[[str, str], str]  # a // b for a >= 0, b > 0, exact
    fold: Callable[[str, str, str], str]  # (array, initial state, step body over s and x) -> final state


def _trino_floordiv(a: str, b: str) -> str:
    # Trino has no integer wider than BIGINT, so the units are DECIMAL(38, 0), whose quotient is
    # again DECIMAL(38, 0) (trino.io docs, "Decimal functions and operators") and not a floor:
    # taking the remainder off first makes the quotient exact, i.e. a floor for a >= 0.
    return f"(({a}) - mod({a}, {b})) / ({b})"


DUCKDB = Dialect(
    name="duckdb", big="HUGEINT", struct="STRUCT",
    floordiv=lambda a, b: f"({a}) // ({b})",
    fold=lambda arr, init, step: f"list_reduce({arr}, lambda s, x: {step}, {init})",
)
ATHENA = Dialect(
    name="athena", big="DECIMAL(38, 0)", struct="ROW",
    floordiv=_trino_floordiv,
    # Trino's reduce needs the output function; the state is the result.
    fold=lambda arr, init, step: f"reduce({arr}, {init}, (s, x) -> {step}, s -> s)",
)
DIALECTS: Dict[str, Dialect] = {d.name: d for d in (DUCKDB, ATHENA)}


def _book_type(d: Dialect) -> str:
    return f"{d.struct}(held {d.big}, cost {d.big}, realized {d.big}, unmatched {d.big})"


def _step(d: Dialect) -> str:
    """One fill ``x`` (b: is_buyer, q: qty units, v: quote_qty units) applied to the book ``s``."""
    took = "least(x.q, s.held)"  # the part of a sell that the known holding covers
    cost_share = d.floordiv(f"s.cost * {took}", "s.held")
    proceeds_share = d.floordiv(f"x.v * {took}", "x.q")
    held = f"CASE WHEN x.b THEN s.held + x.q ELSE s.held - {took} END"
    cost = (f"CASE WHEN x.b THEN s.cost + x.v WHEN s.held = 0 THEN s.cost "
            f"ELSE s.cost - {cost_share} END")
    realized = (f"CASE WHEN x.b OR s.held = 0 THEN s.realized "
                f"ELSE s.realized + {proceeds_share} - {cost_share} END")
    unmatched = f"CASE WHEN x.b THEN s.unmatched ELSE s.unmatched + x.q - {took} END"
    return f"CAST(ROW({held}, {cost}, {realized}, {unmatched}) AS {_book_type(d)})"


def _decimal(units: str) -> str:
    """Integer units of 1e-8 back to the lake's decimal(38,8) (exact: a multiplication)."""
    return f"CAST(CAST({units} AS DECIMAL(38, 0)) * 0.00000001 AS DECIMAL(38, 8))"


def positions_select(dialect: Dialect, trades: str = TRADES.name) -> str:
    """The view's query in ``dialect``, over the table or view named ``trades``."""
    d, big = dialect, dialect.big
    fill = (f"CAST(ROW(is_buyer, CAST(qty * {UNITS} AS {big}), CAST(quote_qty * {UNITS} AS {big})) "
            f"AS {d.struct}(b BOOLEAN, q {big}, v {big}))")
    zero = f"CAST(0 AS {big})"
    init = f"CAST(ROW({zero}, {zero}, {zero}, {zero}) AS {_book_type(d)})"
    book = d.fold("fills", init, _step(d))
    avg = d.floordiv(f"b.book.cost * {UNITS}", "b.book.held")
    return f"""WITH
per_symbol AS (
  SELECT symbol, count(*) AS trades,
         sum(CASE WHEN is_buyer THEN qty ELSE 0 END) AS bought_qty,
         sum(CASE WHEN is_buyer THEN 0 ELSE qty END) AS sold_qty,
         array_agg({fill} ORDER BY trade_time, trade_id) AS fills
  FROM {trades} GROUP BY symbol),
books AS (
  SELECT symbol, trades, bought_qty, sold_qty, {book} AS book
  FROM per_symbol),
fee_sums AS (
  SELECT symbol, commission_asset, sum(commission) AS fee FROM {trades} GROUP BY symbol, commission_asset),
fees AS (
  SELECT symbol, map(array_agg(commission_asset ORDER BY commission_asset),
                     array_agg(fee ORDER BY commission_asset)) AS fees
  FROM fee_sums GROUP BY symbol)
SELECT b.symbol, b.trades,
       CAST(b.bought_qty AS DECIMAL(38, 8)) AS bought_qty,
       CAST(b.sold_qty AS DECIMAL(38, 8)) AS sold_qty,
       CAST(b.bought_qty - b.sold_qty AS DECIMAL(38, 8)) AS net_base_qty,
       {_decimal("b.book.held")} AS held_qty,
       CASE WHEN b.book.held = 0 THEN NULL ELSE {_decimal(avg)} END AS avg_cost,
       {_decimal("b.book.cost")} AS cost_basis,
       {_decimal("b.book.realized")} AS realized_pnl,
       {_decimal("b.book.unmatched")} AS unmatched_sell_qty,
       f.fees
FROM books b JOIN fees f ON f.symbol = b.symbol
ORDER BY b.symbol"""


def positions_view(dialect: Dialect, trades: str = TRADES.name) -> str:
    """``CREATE OR REPLACE VIEW positions AS ...`` in ``dialect``."""
    return f"CREATE OR REPLACE VIEW positions AS\n{positions_select(dialect, trades)}\n"


POSITIONS_SQL = positions_view(DUCKDB)


def register_positions(con: object) -> None:
    """Create the ``positions`` view on a connection that already has the ``trades`` view."""
    con.execute(POSITIONS_SQL)  # type: ignore[attr-defined]
