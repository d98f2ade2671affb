"""Run records: the last summary of each (table, symbol) sync, kept in the lake for ``status``.

Two places hold one: ``last.json`` per (table, symbol), written by a one-symbol run (the CLI),
and ``tick.json`` per table, written once by an extractor Lambda for every symbol it ran in a
tick (issue 14 lever 5: one PUT a tick instead of one per symbol). The reader returns whichever
finished later. Pure JSON (no pyarrow): the extractor Lambdas write them.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Mapping, Optional

from binance_lake import layout
from binance_lake.lake import Lake
from binance_lake.times import ms_to_iso


def write_last_run(lake: Lake, table: str, symbol: str, summary: Dict[str, Any]) -> None:
    lake.write_bytes(layout.last_run_key(table, symbol), json.dumps(summary, default=str).encode())


def write_tick_runs(lake: Lake, table: str, summaries: Mapping[str, Dict[str, Any]],
                    errors: Optional[Mapping[str, str]] = None) -> None:
    """The summaries of every symbol of one tick, keyed by symbol, in one object (a blind PUT:
    one request whatever was there). A symbol that failed gets its error, so
    ``status`` shows the failed run rather than an older success."""
    now = ms_to_iso(int(time.time() * 1000))
    symbols: Dict[str, Any] = {s: {"symbol": s, "error": e, "finished_at": now} for s, e in (errors or {}).items()}
    symbols.update(summaries)
    lake.write_bytes(layout.tick_run_key(table), json.dumps({"symbols": symbols}, default=str).encode())


def read_tick_runs(lake: Lake, table: str) -> Dict[str, Any]:
    """symbol -> summary of the last tick record of ``table``; empty if there is none or it is unreadable."""
    tick = _read_json(lake, layout.tick_run_key(table))
    symbols = tick.get("symbols") if isinstance(tick, dict) else None
    return symbols if isinstance(symbols, dict) else {}


def read_last_run(lake: Lake, table: str, symbol: str) -> Optional[Dict[str, Any]]:
    own = _read_json(lake, layout.last_run_key(table, symbol))
    tick = _read_json(lake, layout.tick_run_key(table))
    from_tick = tick.get("symbols", {}).get(symbol) if isinstance(tick, dict) else None
    candidates = [r for r in (own, from_tick) if isinstance(r, dict)]
    if not candidates:
        return None
    # ISO-8601 UTC strings of one format order as their instants do.
    return max(candidates, key=lambda r: str(r.get("finished_at", "")))


def _read_json(lake: Lake, key: str) -> Optional[Any]:
    try:
        return json.loads(lake.read_bytes(key))
    except (KeyError, ValueError):
        return None
