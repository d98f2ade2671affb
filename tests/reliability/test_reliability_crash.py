"""SIGKILL at named points (BINANCE_LAKE_CRASH_AT, see binance_lake/crash.py), then rerun.

The sync runs as a real ``binance-lake`` process against an emulator served by this test
process. After the kill a reader must still find every Parquet file readable; after the
rerun the lake must equal ground truth (leftover temp files are ignored by readers).
"""

from __future__ import annotations

import random

import pytest

from tests.reliability import scenarios as S

# Seeded: which occurrence of each point dies. Candles: 2 days = 3 pages, 4 raw files,
# 2 partitions; orders: 1600 orders = 2 pages, ~20 date partitions, one transform.
_rng = random.Random(6)
CASES = [("candles", p, _rng.randint(1, S.REACHED["candles"][p])) for p in S.CRASH_POINTS] + \
        [("orders", p, _rng.randint(1, S.REACHED["orders"][p])) for p in S.CRASH_POINTS]


@pytest.fixture(scope="module")
def served():
    emu = S.new_emulator(seed=5, orders=1600)
    with emu.serve() as url:
        yield emu, url


@pytest.mark.parametrize(("table", "point", "n"), CASES)
def test_killed_sync_then_rerun_equals_ground_truth(served, tmp_path, table, point, n):
    emu, url = served
    out = S.crash_and_rerun(table, point, n, tmp_path, emu, url)
    assert out.notes[0].startswith("killed"), out.notes
    assert (out.lost, out.duplicated, out.changed) == (0, 0, 0), out


def test_unknown_crash_point_is_inert(served, tmp_path):
    _emu, url = served
    proc = S.cli(S.candle_args(url, tmp_path / "lake"), {"BINANCE_LAKE_CRASH_AT": "nowhere:1"})
    assert proc.returncode == 0, proc.stderr
