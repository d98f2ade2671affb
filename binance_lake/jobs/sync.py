"""Sync jobs: REST pages into raw and through the fold, for the CLI, the transform Lambda and tests.

* ``sync_candles`` / ``sync_orders``: :mod:`binance_lake.jobs.extract`, then the transform tick.
* ``transform``: the tick alone (every raw page a pending marker names).
* ``rebuild``: every curated partition of a symbol again from all of its sources, once.
* ``repair_candle_gaps``: re-fetch holes; what Binance confirms empty becomes an exchange gap;
  recorded exchange gaps are asked again (late data lands, the records shrink).
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from binance_lake.jobs.extract import client_stats, extract_candles, extract_orders, extract_trades
from binance_lake.lake import Lake
from binance_lake.query import candle_symbols
from binance_lake.schema import CANDLES, ORDERS, TRADES
from binance_lake.sources.coverage import merge_ranges
from binance_lake.sources.rest import candles as rest_candles
from binance_lake.sources.rest.client import BinanceClient
from binance_lake.sources.rest.orders import OrdersRequest
from binance_lake.sources.rest.raw import ExtractResult, Progress
from binance_lake.sources.rest.trades import TradesRequest
from binance_lake.times import ms_to_iso

if TYPE_CHECKING:
    from binance_lake.fold import TransformResult

log = logging.getLogger(__name__)


class _NoPandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail as it does where pandas is not installed."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.split(".")[0] == "pandas":
            raise ModuleNotFoundError("pandas is left out of binance-lake's sync and transform processes "
                                      "(binance_lake/jobs/sync.py own_process)", name=fullname)
        return None


def own_process() -> None:
    """This process runs a ``sync`` or ``transform`` command and nothing else: run it as a runtime
    install (requirements.txt, the Lambdas) does, without the optional pandas.

    Why: pyarrow imports pandas, when it is installed, on its first type-inferring conversion
    (its C++ ``InitPandasStaticData``, retried on every inference while it fails) and its first
    ``pa.array(list)`` (the lazy pandas shim), to recognise pandas objects: 0.25-0.5 s of CPU on
    the 1-symbol tick, more than its whole transform (docs/benchmarks.md, "Issue 21, the tick:
    measured"). Rows here come from JSON and CSV, never from pandas, so the conversions are the
    same without it. Only for a process that is a binance-lake command (cli.main run as the
    program, the tick bench), never in a library caller's process, which may hold pandas objects.
    Does nothing if pandas is already imported.
    """
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


def preload_transform() -> threading.Thread:
    """Import the transform (pyarrow, ~0.1-0.25 s) in a background thread.

    Why: a sync that transforms afterwards spends most of its extract waiting on Binance
    (sockets release the GIL), so the transform's imports fit in those waits instead of
    delaying the first request (docs/benchmarks.md, "Issue 21: the 1-symbol tick"). Python's
    per-module import locks make a concurrent import of the same module wait for the first
    one, so the transform finds the module complete. Returns the (daemon) thread.
    """
    thread = threading.Thread(target=importlib.import_module, args=("binance_lake.fold",),
                              name="preload-transform", daemon=True)
    thread.start()
    return thread


def sync_candles(client: BinanceClient, lake: Lake, symbol: str, interval: str = "1m",
                 start: Optional[int] = None, end: Optional[int] = None, workers: int = 4,
                 progress: Optional[Progress] = None, transform: bool = True) -> Dict[str, Any]:
    """REST candles into raw, then (``transform``) the tick for this symbol."""
    if transform:
        preload_transform()
    return extract_candles(client, lake, symbol, interval, start, end, workers, progress,
                           _tick if transform else None)


def sync_orders(client: BinanceClient, lake: Lake, symbol: str, request: Optional[OrdersRequest] = None,
                progress: Optional[Progress] = None, transform: bool = True,
                open_orders: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """REST orders into raw, then (``transform``) the tick for this symbol."""
    if transform:
        preload_transform()
    return extract_orders(client, lake, symbol, request, progress, open_orders, _tick if transform else None)


def sync_trades(client: BinanceClient, lake: Lake, symbol: str, request: Optional[TradesRequest] = None,
                progress: Optional[Progress] = None, transform: bool = True,
                only_changed: bool = False) -> Dict[str, Any]:
    """REST trades (the account's fills) into raw, then (``transform``) the tick for this symbol."""
    if transform:
        preload_transform()
    return extract_trades(client, lake, symbol, request, progress, _tick if transform else None,
                          only_changed=only_changed)


def sync_account(client: BinanceClient, lake: Lake, symbol: str, progress: Optional[Progress] = None,
                 transform: bool = True) -> Dict[str, Any]:
    """Orders, then the fills of the orders that executed something since the last trades run."""
    orders = sync_orders(client, lake, symbol, None, progress, transform)
    trades = sync_trades(client, lake, symbol, None, progress, transform, only_changed=True)
    return {"orders": orders, "trades": trades}


def _tick(lake: Lake, tables: List[str], symbols: List[str]) -> Dict[str, Any]:
    return transform(lake, tables, symbols).summary()


def transform(lake: Lake, tables: Sequence[str] = (CANDLES.name, ORDERS.name, TRADES.name),
              symbols: Optional[Sequence[str]] = None) -> TransformResult:
    """The transform tick: every raw page a pending marker names, folded into curated."""
    from binance_lake import fold  # pyarrow: not before the first request (see preload_transform)

    return fold.transform_pending(lake, tables, symbols)


def rebuild(lake: Lake, symbols: Union[str, Sequence[str]]) -> TransformResult:
    """Every curated partition of ``symbols`` again from all of its sources, each read once:
    candles of every interval the lake holds (REST pages + stored archive files), orders."""
    from binance_lake import fold

    if isinstance(symbols, str):  # one symbol, not its letters (a str is a Sequence[str] too)
        symbols = (symbols,)
    result = fold.TransformResult()
    for symbol in symbols:
        for interval, sym in candle_symbols(lake):
            if sym == symbol:
                result.add(fold.rebuild_candles(lake, symbol, interval))
        result.add(fold.rebuild_orders(lake, symbol))
        result.add(fold.rebuild_trades(lake, symbol))
    return result


def repair_candle_gaps(client: BinanceClient, lake: Lake, symbol: str, interval: str,
                       gaps: List[Tuple[int, int]], workers: int = 4,
                       progress: Optional[Progress] = None,
                       recheck: Sequence[Tuple[int, int]] = ()) -> Dict[str, Any]:
    """Re-fetch each gap; what Binance confirms empty becomes a recorded exchange gap.

    ``recheck``: recorded exchange gaps to ask about again (``coverage.gaps_to_recheck``):
    candles Binance now has there land in raw (a revision key where the window's file exists)
    and the records shrink to what is still missing; a reply still empty writes nothing.
    """
    client.symbol_info(symbol)
    now_ms = client.server_time()
    result = ExtractResult(CANDLES.name, symbol, rows_fetched=0)
    book = rest_candles.GapBook(lake, symbol, interval)
    # Progress counts kline pages (what the requests are), not gaps: one gap can be many pages.
    work = [(page, again) for s, e, again in [(s, e, False) for s, e in gaps] + [(s, e, True) for s, e in recheck]
            for page in rest_candles.candle_pages(s, e, interval)]
    for i, ((page_s, page_e), again) in enumerate(work, 1):
        for c in rest_candles.fetch_candle_page(client, lake, symbol, interval, page_s, page_e, now_ms,
                                                book, recheck=again):
            rest_candles.count_committed(result, c)
        if progress:
            progress(i, len(work))
    out = result.summary()
    return {"symbol": symbol, "gaps_repaired": len(gaps), "exchange_gaps_rechecked": len(recheck),
            "rows": out["rows"], "raw_files": out["raw_files"], "rows_fetched": out["rows_fetched"],
            "rows_already_stored": out["rows_already_stored"], "late_candles": out["late_candles"],
            "exchange_gaps": [[ms_to_iso(s), ms_to_iso(e)] for s, e in merge_ranges(result.exchange_gaps)],
            "transform": _tick(lake, [CANDLES.name], [symbol]), **client_stats(client)}
