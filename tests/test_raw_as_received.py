"""Issue 21, REST CPU per page: a klines reply is decoded once and each UTC day's raw file holds
its slice of the reply's bytes as received (no second encoding of the rows). Anything that is not
Binance's compact array in open-time order takes the general path (sort, dedupe, encode)."""

from __future__ import annotations

import json
from typing import List, Optional

from binance_lake.emulator import Emulator
from binance_lake.lake import LocalLake
from binance_lake.sources.rest.candles import prepare_candle_page, sync_candles
from binance_lake.sources.rest.client import BinanceClient, ClientConfig
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, parse_time
from tests.conftest import NOW_MS

DAY2 = parse_time("2024-03-02")
START = DAY2 - 840 * MS_PER_MINUTE  # a page of 1000 minutes: 840 on Mar 1, 160 on Mar 2
END = START + 1000 * MS_PER_MINUTE


def compact(rows: list) -> bytes:
    return json.dumps(rows, separators=(",", ":")).encode()


def page(rows: list, body: Optional[bytes], tmp_path) -> List[dict]:
    client = BinanceClient(ClientConfig(base_url="http://127.0.0.1:9"))  # never asked: nothing is fetched
    prepared = prepare_candle_page(client, LocalLake(str(tmp_path)), "BTCUSDT", "1m", START, END, NOW_MS, rows,
                                   mark=False, body=body)
    return [{**json.loads(p.body), "fetched_at": 0, "bytes": p.body} for p in prepared]


ROWS = [list(r) for r in Emulator(now_ms=NOW_MS, seed=1).klines("BTCUSDT", "1m", START, END - 1)]


def test_each_day_holds_its_slice_of_the_reply_as_received(tmp_path) -> None:
    # A value written with a JSON escape: decoding gives "67000.1", encoding again would write that.
    escaped = [list(r) for r in ROWS]
    escaped[900][1] = "67000.1"
    body = compact(escaped).replace(b'"67000.1"', b'"\\u0036\\u0037000.1"')
    assert json.loads(body) == escaped
    mar1, mar2 = page(escaped, body, tmp_path)
    assert (len(mar1["data"]), len(mar2["data"])) == (840, 160)
    assert mar1["data"] == escaped[:840] and mar2["data"] == escaped[840:]
    assert b'"\\u0036\\u0037000.1"' in mar2["bytes"]  # the reply's bytes, not an encoding of the rows
    assert compact(escaped[:840])[1:-1] in mar1["bytes"]
    # Everything but the rows' spelling is the envelope the general path writes.
    general = page(escaped, None, tmp_path)
    assert [{k: v for k, v in e.items() if k != "bytes"} for e in (mar1, mar2)] == \
        [{k: v for k, v in e.items() if k != "bytes"} for e in general]
    assert b'"\\u0036' not in general[1]["bytes"]


def test_a_day_with_no_rows_and_a_single_row(tmp_path) -> None:
    mar1, mar2 = page(ROWS[:1], compact(ROWS[:1]), tmp_path)
    assert mar1["data"] == ROWS[:1] and mar2["data"] == []
    assert mar2["exchange_gaps"] == [[DAY2, END]]


def test_anything_else_takes_the_general_path(tmp_path) -> None:
    general = [{k: v for k, v in e.items() if k != "bytes"} for e in page(ROWS, None, tmp_path)]
    shuffled = ROWS[500:] + ROWS[:500]
    duplicated = ROWS[:10] + ROWS[9:]
    bracket = [list(r) for r in ROWS]
    bracket[3][11] = "],["  # the 12th field is "unused, ignore": a bracket in a value
    for rows, body in [(ROWS, json.dumps(ROWS).encode()),  # spaces after the separators
                       (ROWS, compact(ROWS) + b"\n"),
                       (shuffled, compact(shuffled)),  # out of order: sorted by the general path
                       (duplicated, compact(duplicated))]:  # a minute twice: deduped
        got = [{k: v for k, v in e.items() if k != "bytes"} for e in page(rows, body, tmp_path)]
        assert got == general
    with_bracket = page(bracket, compact(bracket), tmp_path)
    assert with_bracket[0]["data"][3][11] == "],[" and len(with_bracket[0]["data"]) == 840


def test_a_synced_year_start_reads_back_as_binance_served(emulator, base_url, tmp_path) -> None:
    lake = LocalLake(str(tmp_path / "lake"))
    client = BinanceClient(ClientConfig(base_url=base_url))
    start = parse_time("2024-02-27")
    sync_candles(client, lake, "BTCUSDT", "1m", start, start + 3 * MS_PER_DAY, workers=2)
    for day in range(3):
        keys = lake.list_keys(f"raw/klines/interval=1m/symbol=BTCUSDT/date=2024-02-{27 + day:02d}")
        rows = [r for k in keys for r in json.loads(lake.read_bytes(k))["data"]]
        lo = start + day * MS_PER_DAY
        assert rows == emulator.klines("BTCUSDT", "1m", lo, lo + MS_PER_DAY - 1)
