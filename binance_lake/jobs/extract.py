"""Extract jobs: REST pages into raw, summarised and recorded. No pyarrow (the extractor
Lambdas run these); :mod:`binance_lake.jobs.sync` adds the transform tick.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from binance_lake import layout
from binance_lake.lake import Lake
from binance_lake.runs import write_last_run, write_tick_runs
from binance_lake.schema import CANDLES, ORDERS, TRADES
from binance_lake.sources.rest import candles as rest_candles
from binance_lake.sources.rest import orders as rest_orders
from binance_lake.sources.rest import trades as rest_trades
from binance_lake.sources.rest.client import BinanceClient
from binance_lake.sources.rest.orders import OrdersLedger, OrdersRequest
from binance_lake.sources.rest.raw import Progress
from binance_lake.times import ms_to_iso

# What runs after the pages are stored and before the run is recorded (the transform tick).
Then = Callable[[Lake, List[str], List[str]], Dict[str, Any]]


def client_stats(client: BinanceClient) -> Dict[str, Any]:
    s = client.stats
    return {"requests": s.requests, "weight_used": s.weight_used, "retries": s.retries, "throttled": s.throttled}


def extract_candles(client: BinanceClient, lake: Lake, symbol: str, interval: str = "1m",
                    start: Optional[int] = None, end: Optional[int] = None, workers: int = 4,
                    progress: Optional[Progress] = None, then: Optional[Then] = None,
                    record: bool = True, hint: Optional[str] = None) -> Dict[str, Any]:
    """``record=False``: the caller records the run (an extractor Lambda: one tick record for all symbols);
    ``hint``: the newest raw key of the previous run's record (sources.rest.candles.lake_watermark)."""
    started = time.time()
    result = rest_candles.sync_candles(client, lake, symbol, interval, start, end, workers, progress, hint=hint)
    summary: Dict[str, Any] = {**result.summary(), **client_stats(client)}
    summary["start"] = ms_to_iso(result.start) if result.start is not None else None
    summary["end"] = ms_to_iso(result.end) if result.end is not None else None
    summary["exchange_gaps"] = [[ms_to_iso(s), ms_to_iso(e)] for s, e in result.exchange_gaps]
    if then is not None:
        summary["transform"] = then(lake, [CANDLES.name], [symbol])
    return _record(lake, layout.run_table(CANDLES, interval), symbol, summary, started, record)


def extract_orders(client: BinanceClient, lake: Lake, symbol: str, request: Optional[OrdersRequest] = None,
                   progress: Optional[Progress] = None, open_orders: Optional[List[Dict[str, Any]]] = None,
                   then: Optional[Then] = None, record: bool = True,
                   ledger: Optional[OrdersLedger] = None) -> Dict[str, Any]:
    """``open_orders``: from sources.rest.orders.prefetch_open_orders, when many symbols share one call;
    ``record``: as for :func:`extract_candles`; ``ledger``: one listing for all symbols of a run."""
    started = time.time()
    result = rest_orders.sync_orders(client, lake, symbol, request, progress, open_orders, ledger)
    summary: Dict[str, Any] = {**result.summary(), **client_stats(client)}
    if then is not None:
        summary["transform"] = then(lake, [ORDERS.name], [symbol])
    return _record(lake, layout.run_table(ORDERS), symbol, summary, started, record)


def extract_trades(client: BinanceClient, lake: Lake, symbol: str,
                   request: Optional[rest_trades.TradesRequest] = None, progress: Optional[Progress] = None,
                   then: Optional[Then] = None, record: bool = True, only_changed: bool = False,
                   ledger: Optional[rest_trades.TradesLedger] = None) -> Dict[str, Any]:
    """``only_changed``: ask only for orders that can have new fills (after an orders run, see
    :mod:`binance_lake.sources.rest.trades`); ``record``: as for :func:`extract_candles`;
    ``ledger``: the trades cursors of a many-symbol run, read once (``TradesLedger``)."""
    started = time.time()
    result = rest_trades.sync_trades(client, lake, symbol, request, progress, only_changed, ledger)
    summary: Dict[str, Any] = {**result.summary(), **client_stats(client)}
    summary["start"] = ms_to_iso(result.start) if result.start is not None else None
    summary["end"] = ms_to_iso(result.end) if result.end is not None else None
    if then is not None:
        summary["transform"] = then(lake, [TRADES.name], [symbol])
    return _record(lake, layout.run_table(TRADES), symbol, summary, started, record)


def _record(lake: Lake, table: str, symbol: str, summary: Dict[str, Any], started: float, record: bool
            ) -> Dict[str, Any]:
    summary["seconds"] = round(time.time() - started, 3)
    summary["finished_at"] = ms_to_iso(int(time.time() * 1000))
    if record:
        write_last_run(lake, table, symbol, summary)
    return summary


def record_tick(lake: Lake, table: str, summaries: Dict[str, Dict[str, Any]],
                errors: Optional[Dict[str, str]] = None) -> None:
    """One run record for every symbol an extractor ran this tick (``table`` as layout.run_table)."""
    write_tick_runs(lake, table, summaries, errors)
