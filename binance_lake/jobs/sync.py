"""Jobs: extract + transform composed the same way for the CLI, the Lambdas and Glue.

Each job returns a JSON-able summary (rows, raw files, gaps, weight used) that the CLI
prints as its last line and the state machine passes on.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

from binance_lake import extract
from binance_lake.client import BinanceClient
from binance_lake.extract import OrdersRequest, Progress
from binance_lake.lake import Lake
from binance_lake.times import ms_to_iso


def _client_stats(client: BinanceClient) -> Dict[str, Any]:
    s = client.stats
    return {"requests": s.requests, "weight_used": s.weight_used, "retries": s.retries, "throttled": s.throttled}


def sync_candles(client: BinanceClient, lake: Lake, symbol: str, interval: str = "1m",
                 start: Optional[int] = None, end: Optional[int] = None, workers: int = 4,
                 progress: Optional[Progress] = None, transform: bool = True) -> Dict[str, Any]:
    started = time.time()
    result = extract.sync_candles(client, lake, symbol, interval, start, end, workers, progress)
    summary: Dict[str, Any] = {**result.summary(), **_client_stats(client)}
    summary["start"] = ms_to_iso(result.start) if result.start is not None else None
    summary["end"] = ms_to_iso(result.end) if result.end is not None else None
    summary["exchange_gaps"] = [[ms_to_iso(s), ms_to_iso(e)] for s, e in result.exchange_gaps]
    if transform:
        summary["transform"] = _transform(lake, ["candles"], [symbol])
    summary["seconds"] = round(time.time() - started, 3)
    _record(lake, f"candles/interval={interval}", symbol, summary)
    return summary


def sync_orders(client: BinanceClient, lake: Lake, symbol: str, request: Optional[OrdersRequest] = None,
                progress: Optional[Progress] = None, transform: bool = True,
                open_orders: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """``open_orders``: from extract.prefetch_open_orders, when many symbols share one call."""
    started = time.time()
    result = extract.sync_orders(client, lake, symbol, request, progress, open_orders)
    summary: Dict[str, Any] = {**result.summary(), **_client_stats(client)}
    if transform:
        summary["transform"] = _transform(lake, ["orders"], [symbol])
    summary["seconds"] = round(time.time() - started, 3)
    _record(lake, "orders", symbol, summary)
    return summary


def _transform(lake: Lake, tables: List[str], symbols: List[str]) -> Dict[str, Any]:
    from binance_lake.transform import transform_pending  # pyarrow: only where curated is written

    return transform_pending(lake, tables, symbols).summary()


def _record(lake: Lake, table: str, symbol: str, summary: Dict[str, Any]) -> None:
    from binance_lake.query import write_last_run

    write_last_run(lake, table, symbol, {**summary, "finished_at": ms_to_iso(int(time.time() * 1000))})


def repair_candle_gaps(client: BinanceClient, lake: Lake, symbol: str, interval: str,
                       gaps: List[Tuple[int, int]], workers: int = 4,
                       progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Re-fetch each gap; what Binance confirms empty becomes a recorded exchange gap."""
    client.symbol_info(symbol)
    now_ms = client.server_time()
    rows, still_empty = 0, []
    for i, (s, e) in enumerate(gaps, 1):
        for page_s, page_e in extract.candle_pages(s, e, extract.interval_ms(interval)):
            for _key, n, empty in extract.fetch_candle_page(client, lake, symbol, interval, page_s, page_e, now_ms):
                rows += n
                still_empty.extend(empty)
        if progress:
            progress(i, len(gaps))
    return {"symbol": symbol, "gaps_repaired": len(gaps), "rows": rows,
            "exchange_gaps": [[ms_to_iso(s), ms_to_iso(e)] for s, e in extract.merge_ranges(still_empty)],
            "transform": _transform(lake, ["candles"], [symbol]), **_client_stats(client)}
