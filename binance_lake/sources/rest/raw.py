"""REST raw files: the immutable JSON envelope of one Binance response, and its pending marker.

Raw layout: see :mod:`binance_lake.layout`. The pending marker is written *before* the
raw file: a crash in between leaves a marker for nothing (harmless), never a raw file the
fold would not see. No pyarrow here (the extractor Lambdas import it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from binance_lake import layout
from binance_lake.crash import crash_point
from binance_lake.errors import Rejected
from binance_lake.lake import Lake, Version
from binance_lake.schema import TABLES
from binance_lake.sources.rest.client import BinanceClient
from binance_lake.times import MS_PER_DAY

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000
DEFAULT_LOOKBACK_MS = MS_PER_DAY  # an empty lake starts 24 hours before now
RAW_FORMAT_VERSION = 1
ORDERS_WINDOW_MAX_MS = MS_PER_DAY  # Binance: at most 24 h between startTime and endTime

TRADING = "TRADING"  # exchangeInfo status of a symbol that still trades
Progress = Callable[[int, int], None]  # (units done, units total)


@dataclass
class ExtractResult:
    table: str
    symbol: str
    rows: int = 0
    raw_keys: List[str] = field(default_factory=list)
    dates: List[str] = field(default_factory=list)
    exchange_gaps: List[Tuple[int, int]] = field(default_factory=list)
    start: Optional[int] = None
    end: Optional[int] = None
    note: str = ""
    symbol_status: Optional[str] = None  # exchangeInfo's status (TRADING, BREAK, HALT, END_OF_DAY, ...)
    orders_resolved: Dict[str, List[int]] = field(default_factory=dict)  # reason -> order ids
    # Candles: ``rows``/``raw_keys`` count only raw files this run created; a window whose file
    # already held the same reply is counted here instead (issue 17: summaries tell the truth).
    rows_fetched: Optional[int] = None
    rows_already_stored: int = 0
    raw_files_already_stored: int = 0
    late_candles: int = 0  # candles that filled a recorded exchange gap (late data)
    # Candles: the raw key of the newest window this run wrote or found stored: the next tick's
    # watermark hint (issue 21: confirmed with one HEAD instead of two LISTs per symbol).
    newest_key: Optional[str] = None

    def summary(self) -> Dict[str, Any]:
        out = {"table": self.table, "symbol": self.symbol, "rows": self.rows, "raw_files": len(self.raw_keys),
               "dates": sorted(set(self.dates)), "exchange_gaps": [list(g) for g in self.exchange_gaps],
               "start": self.start, "end": self.end, "note": self.note, "symbol_status": self.symbol_status}
        if self.rows_fetched is not None:
            out.update(rows_fetched=self.rows_fetched, rows_already_stored=self.rows_already_stored,
                       raw_files_already_stored=self.raw_files_already_stored, late_candles=self.late_candles)
        if self.newest_key is not None:
            out["newest_raw_key"] = self.newest_key
        if self.orders_resolved:
            out["orders_resolved"] = {k: sorted(v) for k, v in self.orders_resolved.items()}
        return out



# -- raw files ------------------------------------------------------------------------


def write_raw(lake: Lake, key: str, envelope: Dict[str, Any]) -> bool:
    """Marker first, then the immutable raw file. Returns False if the key existed.

    The marker holds its creation time: a transform that finds no raw file behind a
    young marker leaves it (the raw write may be in flight in another run).
    """
    mark_pending(lake, key)
    return store_raw(lake, key, raw_body(envelope))


def mark_pending(lake: Lake, key: str) -> None:
    lake.write_bytes(layout.pending_key(key), str(int(time.time() * 1000)).encode())
    crash_point("marker")


def raw_body(envelope: Dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def store_raw(lake: Lake, key: str, body: bytes) -> bool:
    written = lake.write_bytes(key, body, if_absent=True)
    crash_point("raw")
    return written


def envelope(client: BinanceClient, table: str, symbol: str, endpoint: str, params: Dict[str, Any],
             data: Any, **extra: Any) -> Dict[str, Any]:
    # The base URL is recorded without any secret (keys travel in headers, never in URLs).
    return {"format": RAW_FORMAT_VERSION, "table": table, "symbol": symbol, "endpoint": endpoint,
            "params": params, "base_url": client.base_url, "fetched_at": int(time.time() * 1000),
            "used_weight": client.stats.weight_used, "time_unit": client.config.time_unit or "MILLISECOND",
            **extra, "data": data}


def envelope_table(table: str) -> str:
    """The envelope's ``table`` field for a curated table: the raw zone's directory name."""
    return layout.file_name(TABLES[table].raw_prefix)


def read_raw(lake: Lake, key: str, table: str) -> Tuple[int, List[Any]]:
    """(fetched_at ms, data rows) of a raw envelope; ``Rejected`` if it is unusable."""
    try:
        body = json.loads(lake.read_bytes(key))
    except KeyError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"raw file is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or "fetched_at" not in body:
        raise Rejected("raw file is not a binance-lake envelope (needs 'data' list and 'fetched_at')")
    expected = envelope_table(table)
    if body.get("table") != expected:
        raise Rejected(f"raw file holds {body.get('table')!r}, expected {expected!r}")
    try:
        return int(body["fetched_at"]), body["data"]
    except (TypeError, ValueError):
        raise Rejected("raw envelope has a non-integer 'fetched_at'") from None


# -- the cursors' index objects (curated/_index/<table>.json) ----------------------------------


def read_index_object(lake: Lake, key: str, legacy_prefix: str) -> Tuple[Dict[str, Dict[str, Any]], Version]:
    """Every symbol's entry of one index object (``{"symbols": {X: {...}}}``, written by the fold)
    and its version (None: absent). One object for all symbols: one read and one write a tick,
    not one of each per symbol (issue 21). A lake from before it has one file per symbol under
    ``legacy_prefix``: those are read (one listing) until the first write carries them over."""
    try:
        data, version = lake.read_with_version(key)
    except KeyError:
        return _legacy_entries(lake, legacy_prefix), None
    symbols = _json_object(data, key).get("symbols")
    if not isinstance(symbols, dict):
        return {}, version
    return {str(s): e for s, e in symbols.items() if isinstance(e, dict)}, version


def _legacy_entries(lake: Lake, prefix: str) -> Dict[str, Dict[str, Any]]:
    out = {}
    for key in lake.list_keys(prefix):
        symbol = layout.values_of(key.removesuffix(".json")).get("symbol")
        try:
            data = lake.read_bytes(key)
        except KeyError:
            continue
        if symbol:
            out[symbol] = _json_object(data, key)
    return out


def _json_object(data: bytes, key: str) -> Dict[str, Any]:
    """An index is a cache the fold rewrites: valid JSON of another shape (null, a list) or no
    JSON is ignored, as a missing one is, with a word rather than a traceback."""
    try:
        index = json.loads(data)
    except ValueError:
        index = None
    if not isinstance(index, dict):
        log.warning("index %s is not a JSON object (%s); ignoring it", key, type(index).__name__)
        return {}
    return index
