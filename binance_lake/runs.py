"""Run records: the last summary of each (table, symbol) sync, kept in the lake for ``status``.

Pure JSON (no pyarrow): the extractor Lambdas write them.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from binance_lake import layout
from binance_lake.lake import Lake


def write_last_run(lake: Lake, table: str, symbol: str, summary: Dict[str, Any]) -> None:
    lake.write_bytes(layout.last_run_key(table, symbol), json.dumps(summary, default=str).encode())


def read_last_run(lake: Lake, table: str, symbol: str) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(lake.read_bytes(layout.last_run_key(table, symbol)))
    except (KeyError, ValueError):
        return None
