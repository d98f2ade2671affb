"""Account trades (fills) as /api/v3/myTrades serves them, derived from the emulated orders.

Every order whose ``executedQty`` exceeds what its trades already cover gets new fills for the
difference: one to four partial fills whose ``qty`` sum to the growth and whose ``quoteQty`` sum to
the growth of ``cummulativeQuoteQty`` (so an order always equals the sums over its trades, the
invariant verify checks). Fees alternate between the quote asset and BNB; maker/taker follows the
order type. Trades never change once made (append-only, like Binance's), and ids only grow.
Deterministic: a fill's values are drawn from a generator seeded by (symbol, order id, executed qty).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Callable, Optional

from .candles import dec8
from .orders import Q8, _units

# The real field order of a myTrades element (rest-api.md "Account trade list (USER_DATA)").
TRADE_FIELDS = ("symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty", "commission",
                "commissionAsset", "time", "isBuyer", "isMaker", "isBestMatch")
# The emulator's fee schedule: 0.1% of the fill's quote value (Binance's regular spot rate), or
# 0.075% paid in BNB at a fixed emulated BNB price in the quote asset.
FEE_RATE_PPM = 1000
BNB_FEE_RATE_PPM = 750
BNB_PRICE_UNITS = 600 * Q8
MAKER_TYPES = frozenset({"LIMIT_MAKER"})
TAKER_TYPES = frozenset({"MARKET", "STOP_LOSS", "TAKE_PROFIT"})


@dataclass
class TradeLedger:
    """Fills of one symbol's orders. Not thread-safe: the Emulator locks."""

    symbol: str
    quote: str
    trades: list[dict] = field(default_factory=list)
    next_id: int = 1
    # orderId -> (base units, quote units, last fill time) already covered by trades
    covered: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def catch_up(self, orders: list[dict], price_at: Callable[[int], int], step: int = 1) -> list[dict]:
        """Fills for every order whose executedQty grew; ``price_at(ms)`` prices an order whose
        price and cummulativeQuoteQty say nothing (a market order with "data not available")."""
        made: list[dict] = []
        for order in orders:
            made += self._fills(order, price_at, step)
        made.sort(key=lambda t: (t["time"], t["orderId"]))
        for t in made:
            t["id"] = self.next_id
            self.next_id += 1
        made = [{k: t[k] for k in TRADE_FIELDS} for t in made]
        self.trades += made
        return copy.deepcopy(made)

    def _fills(self, order: dict, price_at: Callable[[int], int], step: int) -> list[dict]:
        oid = int(order["orderId"])
        executed = _units(str(order.get("executedQty", "0")))
        have_qty, have_quote, last_time = self.covered.get(oid, (0, 0, int(order["time"])))
        grown = executed - have_qty
        if grown <= 0:
            return []
        cum = _units(str(order.get("cummulativeQuoteQty", "0")))
        if cum >= 0:
            quote = cum - have_quote
        else:  # "data not available" on the order: the fills still carry real quote amounts
            price = _units(str(order.get("price", "0"))) or price_at(last_time)
            quote = grown * price // Q8
        rng = random.Random(f"{self.symbol}|{oid}|{executed}")
        qtys = _split(rng, grown, step)
        quotes = [quote * q // grown for q in qtys[:-1]]
        quotes.append(quote - sum(quotes))
        end = max(last_time, int(order.get("updateTime", last_time)))
        times = sorted(rng.randint(last_time, end) for _ in qtys)
        self.covered[oid] = (executed, have_quote + quote, times[-1])
        return [self._fill(rng, order, q, qq, t) for q, qq, t in zip(qtys, quotes, times)]

    def _fill(self, rng: random.Random, order: dict, qty: int, quote: int, t: int) -> dict:
        otype = order.get("type", "LIMIT")
        maker = otype in MAKER_TYPES or (otype not in TAKER_TYPES and rng.random() < 0.6)
        if rng.random() < 0.5:
            asset, fee = "BNB", quote * BNB_FEE_RATE_PPM // 1_000_000 * Q8 // BNB_PRICE_UNITS
        else:
            asset, fee = self.quote, quote * FEE_RATE_PPM // 1_000_000
        return {"symbol": self.symbol, "id": 0, "orderId": int(order["orderId"]),
                "orderListId": int(order.get("orderListId", -1)), "price": dec8(quote * Q8 // qty),
                "qty": dec8(qty), "quoteQty": dec8(quote), "commission": dec8(fee), "commissionAsset": asset,
                "time": t, "isBuyer": order.get("side") == "BUY", "isMaker": maker, "isBestMatch": True}

    def select(self, order_id: Optional[int], from_id: Optional[int], start: Optional[int],
               end: Optional[int], limit: int) -> list[dict]:
        """Binance's selection: by order, from an id (oldest first), in a window (oldest first from
        startTime, newest up to endTime alone), else the most recent; always ascending by id."""
        rows = self.trades
        if order_id is not None:
            rows = [t for t in rows if t["orderId"] == order_id]
        if from_id is not None:
            rows = [t for t in rows if t["id"] >= from_id]
        if start is not None and end is not None:
            rows = [t for t in rows if start <= t["time"] <= end]
        oldest_first = from_id is not None or start is not None
        return copy.deepcopy(rows[:limit] if oldest_first else rows[-limit:])


def _split(rng: random.Random, units: int, step: int) -> list[int]:
    """``units`` in one to four positive parts (partial fills) of whole lot steps when it can be."""
    steps = units // step if units % step == 0 else 1
    n = min(steps, rng.choice([1, 1, 2, 3, 4]))
    if n <= 1:
        return [units]
    cuts = sorted(s * step for s in rng.sample(range(1, steps), n - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, units])]
