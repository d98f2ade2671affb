"""The transform Lambda's support: the tick (pending raw -> curated through the fold), then one
freshness figure for every configured symbol and interval (``aws.freshness``: from the tick's own
result and the previous tick's state object) published as the stalest one (``aws.metrics``).
Needs pyarrow (the transform bundle has it).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

from binance_lake.aws import freshness
from binance_lake.aws.metrics import publish_stalest
from binance_lake.aws.settings import TransformSettings
from binance_lake.jobs import sync
from binance_lake.lake import Lake, open_lake
from binance_lake.schema import CANDLES


def transform_increment(settings: TransformSettings, lake: Optional[Lake] = None, cloudwatch: Any = None,
                        now_ms: Optional[int] = None) -> Dict[str, Any]:
    """The scheduled transform (the transform Lambda): pending raw -> curated, then the
    freshness of every configured symbol and interval: the stalest one as the metric, each one in
    the summary (``freshness``, stalest first) that the handler logs."""
    lake = lake or open_lake(settings.lake_uri)
    result = sync.transform(lake, settings.tables, settings.symbols)
    summary: Dict[str, Any] = {"transform": result.summary()}
    if CANDLES.name in settings.tables:
        summary.update(publish_freshness(lake, settings, result.partitions, result.last_candle_close,
                                         cloudwatch, now_ms))
    return summary


def publish_freshness(lake: Lake, settings: TransformSettings, partitions: Sequence[str],
                      last_candle_close: Dict[str, int], cloudwatch: Any = None,
                      now_ms: Optional[int] = None) -> Dict[str, Any]:
    """Newest close per (symbol, interval) from this tick and the state, the state rewritten, the
    stalest figure published. The state is written before the metric: a failed write fails the
    task (Step Functions retries it) rather than leave a metric the next tick cannot repeat."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    tick = freshness.tick_closes(partitions, last_candle_close)
    fresh = freshness.last_closes(lake, settings.symbols, settings.intervals, tick, now_ms)
    freshness.write_state(lake, fresh, now_ms)
    figures = freshness.report(fresh, settings.intervals[0], now_ms)
    stalest = publish_stalest(figures["rows"], cloudwatch, now_ms)
    return {"minutes_since_last_closed_candle": figures["minutes_since_last_closed_candle"],
            "stalest_minutes_behind": stalest, "no_candle": figures["no_candle"], "freshness": figures["rows"],
            "freshness_sources": fresh.sources}




