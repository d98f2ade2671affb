"""Sync jobs: REST pages into raw and through the fold, for the CLI, the transform Lambda and tests.

* ``sync_candles`` / ``sync_orders``: :mod:`binance_lake.jobs.extract`, then the transform tick.
* ``transform``: the tick alone (every raw page a pending marker names).
* ``rebuild``: every curated partition of a symbol again from all of its sources, once.
* ``repair_candle_gaps``: re-fetch holes; what Binance confirms empty becomes an exchange gap.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

from binance_lake import fold
from binance_lake.fold import TransformResult
from binance_lake.jobs.extract import client_stats, extract_candles, extract_orders
from binance_lake.lake import Lake
from binance_lake.query import candle_symbols
from binance_lake.schema import CANDLES, ORDERS
from binance_lake.sources.coverage import merge_ranges
from binance_lake.sources.rest import candles as rest_candles
from binance_lake.sources.rest.client import BinanceClient
from binance_lake.sources.rest.orders import OrdersRequest
from binance_lake.sources.rest.raw import Progress
from binance_lake.times import interval_ms, ms_to_iso

log = logging.getLogger(__name__)


def sync_candles(client: BinanceClient, lake: Lake, symbol: str, interval: str = "1m",
                 start: Optional[int] = None, end: Optional[int] = None, workers: int = 4,
                 progress: Optional[Progress] = None, transform: bool = True) -> Dict[str, Any]:
    """REST candles into raw, then (``transform``) the tick for this symbol."""
    return extract_candles(client, lake, symbol, interval, start, end, workers, progress,
                           _tick if transform else None)


def sync_orders(client: BinanceClient, lake: Lake, symbol: str, request: Optional[OrdersRequest] = None,
                progress: Optional[Progress] = None, transform: bool = True,
                open_orders: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """REST orders into raw, then (``transform``) the tick for this symbol."""
    return extract_orders(client, lake, symbol, request, progress, open_orders, _tick if transform else None)


def _tick(lake: Lake, tables: List[str], symbols: List[str]) -> Dict[str, Any]:
    return transform(lake, tables, symbols).summary()


def transform(lake: Lake, tables: Sequence[str] = (CANDLES.name, ORDERS.name),
              symbols: Optional[Sequence[str]] = None) -> TransformResult:
    """The transform tick: every raw page a pending marker names, folded into curated."""
    return fold.transform_pending(lake, tables, symbols)


def rebuild(lake: Lake, symbols: Sequence[str]) -> TransformResult:
    """Every curated partition of ``symbols`` again from all of its sources, each read once:
    candles of every interval the lake holds (REST pages + stored archive files), orders."""
    result = TransformResult()
    for symbol in symbols:
        for interval, sym in candle_symbols(lake):
            if sym == symbol:
                result.add(fold.rebuild_candles(lake, symbol, interval))
        result.add(fold.rebuild_orders(lake, symbol))
    return result


def repair_candle_gaps(client: BinanceClient, lake: Lake, symbol: str, interval: str,
                       gaps: List[Tuple[int, int]], workers: int = 4,
                       progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Re-fetch each gap; what Binance confirms empty becomes a recorded exchange gap."""
    client.symbol_info(symbol)
    now_ms = client.server_time()
    rows, still_empty = 0, []
    for i, (s, e) in enumerate(gaps, 1):
        for page_s, page_e in rest_candles.candle_pages(s, e, interval_ms(interval)):
            pages = rest_candles.fetch_candle_page(client, lake, symbol, interval, page_s, page_e, now_ms)
            for _key, n, empty in pages:
                rows += n
                still_empty.extend(empty)
        if progress:
            progress(i, len(gaps))
    return {"symbol": symbol, "gaps_repaired": len(gaps), "rows": rows,
            "exchange_gaps": [[ms_to_iso(s), ms_to_iso(e)] for s, e in merge_ranges(still_empty)],
            "transform": _tick(lake, [CANDLES.name], [symbol]), **client_stats(client)}


