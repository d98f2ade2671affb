"""The transform Lambda's support: the tick (pending raw -> curated through the fold) and the
freshness metric of every configured interval. Needs pyarrow (the transform bundle has it).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from binance_lake.aws.glue import parse_glue_args
from binance_lake.aws.metrics import publish_freshness
from binance_lake.aws.settings import TransformSettings
from binance_lake.errors import BadInputError
from binance_lake.jobs import sync
from binance_lake.lake import Lake, open_lake
from binance_lake.schema import CANDLES


def transform_increment(settings: TransformSettings, lake: Optional[Lake] = None, cloudwatch: Any = None,
                        now_ms: Optional[int] = None) -> Dict[str, Any]:
    """The scheduled transform (the transform Lambda): pending raw -> curated, then the
    freshness metric of every configured interval."""
    lake = lake or open_lake(settings.lake_uri)
    result = sync.transform(lake, settings.tables, settings.symbols)
    summary: Dict[str, Any] = {"transform": result.summary()}
    if CANDLES.name in settings.tables:
        summary["minutes_since_last_closed_candle"] = publish_freshness(
            lake, settings.symbols, settings.intervals, cloudwatch, now_ms)
    return summary


def run_transform(argv: Sequence[str], lake: Optional[Lake] = None, cloudwatch: Any = None,
                  now_ms: Optional[int] = None) -> Dict[str, Any]:
    """:func:`transform_increment` from ``--lake_uri --symbols --tables [--interval]`` arguments."""
    args = parse_glue_args(argv, ["lake_uri", "symbols", "tables"], {"interval": "1m"})
    env = {"LAKE_URI": args["lake_uri"], "SYMBOLS": args["symbols"], "TABLES": args["tables"],
           "INTERVALS": args["interval"]}
    try:
        settings = TransformSettings.from_env(env)
    except BadInputError as exc:
        raise BadInputError(str(exc).replace("TABLES:", "--tables:")) from None
    return transform_increment(settings, lake, cloudwatch, now_ms)



