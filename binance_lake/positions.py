"""The ``positions`` view: per symbol, what the account's trades add up to (DuckDB SQL over ``trades``).

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

Exact: the running book is kept in integer units of 1e-8 (DuckDB HUGEINT); a sell's share of the
cost basis and of its proceeds is rounded down to 1e-8, as are ``avg_cost`` (quote per base).
Columns: symbol, trades, bought_qty, sold_qty, net_base_qty (bought - sold), held_qty,
avg_cost, cost_basis, realized_pnl, unmatched_sell_qty, fees. See docs/trades.md.
"""

from __future__ import annotations

from binance_lake.schema import TRADES

UNITS = 100_000_000  # 1e-8: the decimal scale of every curated quantity

_T = TRADES.name

POSITIONS_SQL = f"""
CREATE OR REPLACE VIEW positions AS
WITH RECURSIVE
fills AS (
  SELECT symbol, is_buyer,
         row_number() OVER (PARTITION BY symbol ORDER BY trade_time, trade_id) AS rn,
         CAST(qty * {UNITS} AS HUGEINT) AS q, CAST(quote_qty * {UNITS} AS HUGEINT) AS v
  FROM {_T}),
book AS (
  SELECT DISTINCT symbol, CAST(0 AS BIGINT) AS rn, CAST(0 AS HUGEINT) AS held, CAST(0 AS HUGEINT) AS cost,
         CAST(0 AS HUGEINT) AS realized, CAST(0 AS HUGEINT) AS unmatched
  FROM fills
  UNION ALL
  SELECT f.symbol, f.rn,
         CASE WHEN f.is_buyer THEN b.held + f.q ELSE b.held - least(f.q, b.held) END,
         CASE WHEN f.is_buyer THEN b.cost + f.v
              WHEN b.held = 0 THEN b.cost
              ELSE b.cost - b.cost * least(f.q, b.held) // b.held END,
         CASE WHEN f.is_buyer OR b.held = 0 THEN b.realized
              ELSE b.realized + f.v * least(f.q, b.held) // f.q - b.cost * least(f.q, b.held) // b.held END,
         CASE WHEN f.is_buyer THEN b.unmatched ELSE b.unmatched + f.q - least(f.q, b.held) END
  FROM book b JOIN fills f ON f.symbol = b.symbol AND f.rn = b.rn + 1),
last AS (
  SELECT * FROM book QUALIFY rn = max(rn) OVER (PARTITION BY symbol)),
totals AS (
  SELECT symbol, count(*) AS trades,
         sum(CASE WHEN is_buyer THEN qty ELSE 0 END) AS bought_qty,
         sum(CASE WHEN is_buyer THEN 0 ELSE qty END) AS sold_qty
  FROM {_T} GROUP BY symbol),
fee_sums AS (
  SELECT symbol, commission_asset, sum(commission) AS fee FROM {_T} GROUP BY symbol, commission_asset),
fees AS (
  SELECT symbol, map_from_entries(list(struct_pack(k := commission_asset, v := fee)
                                       ORDER BY commission_asset)) AS fees
  FROM fee_sums GROUP BY symbol)
SELECT t.symbol, t.trades,
       CAST(t.bought_qty AS DECIMAL(38, 8)) AS bought_qty,
       CAST(t.sold_qty AS DECIMAL(38, 8)) AS sold_qty,
       CAST(t.bought_qty - t.sold_qty AS DECIMAL(38, 8)) AS net_base_qty,
       CAST(CAST(l.held AS DECIMAL(38, 0)) * 0.00000001 AS DECIMAL(38, 8)) AS held_qty,
       CASE WHEN l.held = 0 THEN NULL
            ELSE CAST(CAST(l.cost * {UNITS} // l.held AS DECIMAL(38, 0)) * 0.00000001 AS DECIMAL(38, 8))
       END AS avg_cost,
       CAST(CAST(l.cost AS DECIMAL(38, 0)) * 0.00000001 AS DECIMAL(38, 8)) AS cost_basis,
       CAST(CAST(l.realized AS DECIMAL(38, 0)) * 0.00000001 AS DECIMAL(38, 8)) AS realized_pnl,
       CAST(CAST(l.unmatched AS DECIMAL(38, 0)) * 0.00000001 AS DECIMAL(38, 8)) AS unmatched_sell_qty,
       f.fees
FROM totals t JOIN last l USING (symbol) JOIN fees f USING (symbol)
ORDER BY t.symbol
"""


def register_positions(con: object) -> None:
    """Create the ``positions`` view on a connection that already has the ``trades`` view."""
    con.execute(POSITIONS_SQL)  # type: ignore[attr-defined]
