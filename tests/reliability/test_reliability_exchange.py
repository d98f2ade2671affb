"""Exchange realities, pagination properties (hypothesis), dangling markers and secrets."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_lake.columns import candles_table, dedupe
from binance_lake.emulator import Emulator
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake
from binance_lake.layout import pending_key
from binance_lake.schema import CANDLES
from binance_lake.sources.rest.orders import pending_order_ids
from binance_lake.times import MS_PER_MINUTE
from tests.helpers import candle_tuples
from tests.reliability import scenarios as S

MAR1 = S.MAR1
TRUTH = Emulator(now_ms=S.NOW_MS, seed=1).klines("BTCUSDT", "1m", MAR1, MAR1 + 300 * MS_PER_MINUTE)


def curated_rows(rows) -> list:
    t, rejected = candles_table("BTCUSDT", "1m", rows, [1] * len(rows), ["k"] * len(rows), "2024-03-01")
    assert rejected == []
    t = dedupe(t, CANDLES).drop_columns(["ingested_at", "source_key"])
    return t.sort_by("candle_open_time").to_pylist()


EXPECTED = curated_rows(TRUTH)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, len(TRUTH) - 1), max_size=8), seed=st.integers(0, 2**16),
       dup_share=st.floats(0, 0.5))
def test_any_paging_order_and_duplication_gives_the_same_table(cuts, seed, dup_share):
    rng = random.Random(seed)
    bounds = [0, *sorted(set(cuts)), len(TRUTH)]
    pages = [TRUTH[a:b] for a, b in zip(bounds, bounds[1:])]
    rng.shuffle(pages)  # pages arrive in any order
    rows = [r for page in pages for r in page]
    rows += rng.sample(rows, int(len(rows) * dup_share))  # and some rows twice
    rng.shuffle(rows)
    assert curated_rows(rows) == EXPECTED


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(windows=st.lists(st.tuples(st.integers(0, 299), st.integers(1, 120)), min_size=1, max_size=6),
       batches=st.integers(1, 3))
def test_overlapping_raw_windows_transformed_in_any_batches_give_truth(tmp_path_factory, windows, batches):
    from binance_lake.fold import transform_pending
    from binance_lake.sources.rest.raw import write_raw

    lake = LocalLake(str(tmp_path_factory.mktemp("prop")))
    covered = set()
    for i, (start, n) in enumerate(windows):
        rows = TRUTH[start:start + n]
        covered |= {r[0] for r in rows}
        key = f"raw/klines/interval=1m/symbol=BTCUSDT/date=2024-03-01/{rows[0][0]}-{rows[-1][0] + MS_PER_MINUTE}.json"
        write_raw(lake, key, {"table": "klines", "fetched_at": i, "data": rows})
        if i % batches == 0:
            transform_pending(lake, ["candles"])
    transform_pending(lake, ["candles"])
    assert candle_tuples(lake) == sorted(t for t in S.truth_tuples("BTCUSDT", TRUTH) if t[1] in covered)


def test_exchange_gap_recorded_once_across_reruns_and_repairs(client, lake, emulator):
    outage = (MAR1 + 100 * MS_PER_MINUTE, MAR1 + 130 * MS_PER_MINUTE)
    emulator.add_exchange_gap("BTCUSDT", *outage)
    for _ in range(2):
        sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 300 * MS_PER_MINUTE)
    again = sync.repair_candle_gaps(client, lake, "BTCUSDT", "1m", [outage])
    assert again["rows"] == 0 and len(lake.list_keys("raw/_gaps")) == 1
    assert len(candle_tuples(lake)) == 270


def test_archive_microsecond_rows_equal_millisecond_rows():
    micros = [[r[0] * 1000, *r[1:6], r[6] * 1000 + 999, *r[7:]] for r in TRUTH]  # the 2025 archive format
    assert curated_rows(micros) == EXPECTED


def test_many_decimal_prices_stay_exact(client, lake, emulator):
    open_ms = MAR1 + 7 * MS_PER_MINUTE
    row = ["x", "99999999.12345678", "123456789012.87654321", "0.00000001", "1.10000000", "0.00000001",
           open_ms + 59_999, "123456789012345678.12345678", 7, "0.00000000", "0.00000000", "0"]
    row[0] = open_ms
    emulator.set_kline_override("BTCUSDT", open_ms, row)
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 10 * MS_PER_MINUTE)
    stored = next(t for t in candle_tuples(lake) if t[1] == open_ms)
    assert stored[2:10] == ("99999999.12345678", "123456789012.87654321", "0.00000001", "1.10000000",
                            "0.00000001", "123456789012345678.12345678", "0.00000000", "0.00000000")


def test_a_marker_without_its_raw_file_does_not_move_the_orders_cursor(client, lake, emulator):
    """A run killed between marker and raw file: the next run must refetch those orders."""
    emulator.generate_orders("BTCUSDT", 50, MAR1, MAR1 + 3600_000, seed=2)
    ghost = "raw/orders/symbol=BTCUSDT/date=2024-03-01/1709251200000-dead0000-00001-history-1-50.json"
    lake.write_bytes(pending_key(ghost), b"1709251200000")
    assert pending_order_ids(lake, "BTCUSDT") == []  # the ghost page does not count
    sync.sync_orders(client, lake, "BTCUSDT")
    assert S.compare_orders("ghost marker", lake, emulator).ok


def test_no_secret_in_logs_raw_envelopes_or_lake_files(tmp_path):
    emu = S.new_emulator(6, orders=400)
    lake_dir = tmp_path / "lake"
    with emu.serve() as url:
        outputs = [S.cli([*S.candle_args(url, lake_dir), "-v"]), S.cli([*S.order_args(url, lake_dir), "-v"]),
                   S.cli(["sync", "orders", "--symbol", "BTCUSDT", "--lake", str(lake_dir), "--base-url", url],
                         {"BINANCE_API_SECRET": "wrong-" + S.API_SECRET})]
    assert [p.returncode for p in outputs] == [0, 0, 3]
    texts = [p.stdout + p.stderr for p in outputs] + [f.read_bytes().decode("latin-1")
                                                     for f in Path(lake_dir).rglob("*") if f.is_file()]
    assert len(texts) > 10
    for secret in (S.API_KEY, S.API_SECRET):
        assert not [t[:80] for t in texts if secret in t]
