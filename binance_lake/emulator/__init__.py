"""Contract-faithful Binance spot REST emulator (klines, allOrders, time, exchangeInfo, weight,
429/418, faults) for offline tests and benchmarks. Contract: docs/emulator.md."""

from __future__ import annotations

from .candles import INTERVALS_MS, MS_PER_MINUTE, SymbolSpec, fixture_row, generate_row
from .core import ApiError, Emulator, Reply, RequestRecord, hmac_signature
from .faults import KINDS as FAULT_KINDS
from .faults import Fault

__all__ = [
    "FAULT_KINDS", "INTERVALS_MS", "MS_PER_MINUTE", "ApiError", "Emulator", "Fault", "Reply",
    "RequestRecord", "SymbolSpec", "fixture_row", "generate_row", "hmac_signature",
]
