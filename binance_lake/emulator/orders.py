"""Account orders as /api/v3/allOrders serves them, and their deterministic generation."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .candles import dec8

# The real field order of an allOrders element (rest-api.md example + ccxt capture).
ORDER_FIELDS = (
    "symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty",
    "cummulativeQuoteQty", "status", "timeInForce", "type", "side", "stopPrice", "icebergQty",
    "time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty", "selfTradePreventionMode",
)
INT_FIELDS = frozenset({"orderId", "orderListId", "time", "updateTime", "workingTime",
                        "preventedMatchId", "strategyId", "strategyType", "trailingDelta",
                        "trailingTime"})
TIME_FIELDS = ("time", "updateTime", "workingTime", "transactTime")
FINAL_STATUSES = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH"})
STOP_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
Q8 = 100_000_000


def _units(s: str) -> int:
    neg = s.startswith("-")
    whole, _, frac = s.lstrip("-").partition(".")
    u = int(whole or "0") * Q8 + int((frac + "00000000")[:8])
    return -u if neg else u


def normalize(fields: dict[str, Any]) -> dict[str, Any]:
    """Coerce stringified ints (ccxt fixtures store them as strings) back to JSON numbers."""
    out = dict(fields)
    for k in INT_FIELDS & out.keys():
        out[k] = int(out[k])
    return out


@dataclass
class OrderBook:
    """Orders of one symbol, keyed by orderId. Not thread-safe: the Emulator locks."""

    symbol: str
    orders: dict[int, dict] = field(default_factory=dict)
    next_id: int = 1

    def add(self, now_ms: int, fields: dict[str, Any]) -> dict:
        f = normalize(fields)
        oid = int(f.pop("orderId", self.next_id))
        if oid in self.orders:
            raise ValueError(f"order {oid} already exists for {self.symbol}")
        t = int(f.get("time", now_ms))
        base: dict[str, Any] = {
            "symbol": self.symbol, "orderId": oid, "orderListId": -1,
            "clientOrderId": f"emu{oid:010d}x{t % 100000:05d}", "price": "0.00000000",
            "origQty": "0.00000000", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000",
            "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": t, "updateTime": t,
            "isWorking": True, "workingTime": t, "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        # None deletes a default key: that is how a conditional field is left out.
        base.update({k: v for k, v in f.items() if k != "symbol"})
        order = {k: base[k] for k in ORDER_FIELDS if base.get(k) is not None}
        order.update({k: v for k, v in base.items() if k not in order and v is not None})
        self.orders[oid] = order
        self.next_id = max(self.next_id, oid + 1)
        return copy.deepcopy(order)

    def update(self, now_ms: int, order_id: int, changes: dict[str, Any]) -> dict:
        if order_id not in self.orders:
            raise KeyError(f"no order {order_id} for {self.symbol}")
        order = self.orders[order_id]
        ch = normalize(changes)
        if ch.get("status") == "FILLED" and "executedQty" not in ch:
            ch["executedQty"] = order["origQty"]
            price = _units(order["price"])
            ch.setdefault("cummulativeQuoteQty", dec8(_units(order["origQty"]) * price // Q8))
        if ch.get("status") in FINAL_STATUSES:
            ch.setdefault("isWorking", order.get("isWorking", True))
        ch.setdefault("updateTime", now_ms)
        for k, v in ch.items():
            if v is None:
                order.pop(k, None)
            else:
                order[k] = v
        return copy.deepcopy(order)

    def sorted(self) -> list[dict]:
        return [self.orders[k] for k in sorted(self.orders)]


def load_orders_json(path: str | Path) -> list[dict]:
    """Orders from a JSON array (e.g. the ccxt capture), ints coerced back to numbers."""
    with open(path) as fh:
        return [normalize(o) for o in json.load(fh)]


# ---------------------------------------------------------------------------- generation

_STATUS_WEIGHTS = (("FILLED", 40), ("CANCELED", 25), ("NEW", 12), ("PARTIALLY_FILLED", 8),
                   ("EXPIRED", 8), ("EXPIRED_IN_MATCH", 4), ("PENDING_NEW", 1), ("REJECTED", 2))
_TYPE_WEIGHTS = (("LIMIT", 50), ("MARKET", 20), ("LIMIT_MAKER", 10), ("STOP_LOSS_LIMIT", 10),
                 ("TAKE_PROFIT_LIMIT", 6), ("STOP_LOSS", 2), ("TAKE_PROFIT", 2))


def _pick(rng: random.Random, table: tuple) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def generated_fields(rng: random.Random, t: int, price_units: int, step_units: int,
                     tick_units: int) -> dict[str, Any]:
    """One plausible order created at t: consistent qty/status/cumulative quote, and the
    conditional fields Binance only sends on some orders."""
    status, otype, side = _pick(rng, _STATUS_WEIGHTS), _pick(rng, _TYPE_WEIGHTS), rng.choice(["BUY", "SELL"])
    if otype in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") and status in ("NEW", "PARTIALLY_FILLED"):
        status = "FILLED"  # market-style orders do not rest on the book
    px = max(tick_units, price_units * rng.randint(970, 1030) // 1000 // tick_units * tick_units)
    qty = step_units * rng.randint(1, 5000)
    executed = {"FILLED": qty, "PARTIALLY_FILLED": qty * rng.randint(1, 9) // 10 // step_units * step_units,
                "CANCELED": qty * rng.choice([0, 0, 0, 3]) // 10 // step_units * step_units}.get(status, 0)
    f: dict[str, Any] = {
        "price": dec8(0 if otype in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") else px),
        "origQty": dec8(qty), "executedQty": dec8(executed),
        "cummulativeQuoteQty": dec8(executed * px // Q8), "status": status,
        "timeInForce": "GTC" if otype != "LIMIT" else rng.choice(["GTC", "GTC", "IOC", "FOK"]),
        "type": otype, "side": side, "time": t, "workingTime": t,
        "updateTime": t if status in ("NEW", "PENDING_NEW") else t + rng.randint(0, 3_600_000),
        "isWorking": otype not in STOP_TYPES or status == "FILLED",
        "selfTradePreventionMode": rng.choice(["EXPIRE_MAKER", "EXPIRE_MAKER", "NONE"]),
    }
    if otype in STOP_TYPES:
        f["stopPrice"] = dec8(px * (1000 + rng.choice([-5, 5])) // 1000 // tick_units * tick_units)
        if not f["isWorking"]:
            f["workingTime"] = -1  # a stop order that has not triggered yet
    elif rng.random() < 0.4:
        f["stopPrice"] = None  # newer API versions omit unset conditional fields
        f["icebergQty"] = None
    if status == "EXPIRED":
        f["expiryReason"] = rng.choice(["TIME_IN_FORCE", "SELF_TRADE_PREVENTION"])
    if otype == "MARKET" and rng.random() < 0.3:
        f["origQuoteOrderQty"] = dec8(qty * px // Q8)
    if rng.random() < 0.02:
        f["cummulativeQuoteQty"] = "-1.00000000"  # "data not available" on old orders (documented)
    if status == "EXPIRED_IN_MATCH":
        f["preventedMatchId"] = rng.randint(0, 10**6)
        f["preventedQuantity"] = dec8(qty - executed)
    return f
