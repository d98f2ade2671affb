"""Fault storms (seeded) against sync candles / sync orders, and pacing under a low weight limit."""

from __future__ import annotations

import pytest

from tests.reliability import scenarios as S


@pytest.mark.parametrize("seed", [11, 12])
def test_candle_storm_then_reruns_equal_ground_truth(tmp_path, seed):
    out = S.storm_candles(seed, rate=0.3, days=6, tmp=tmp_path)
    assert out.faults > 0
    assert (out.lost, out.duplicated, out.changed) == (0, 0, 0) and out.rows_compared == 8640


@pytest.mark.parametrize("seed", [21, 22])
def test_order_storm_with_updates_then_reruns_equal_ground_truth(tmp_path, seed):
    out = S.storm_orders(seed, rate=0.3, orders=2200, tmp=tmp_path)
    assert out.faults > 0
    assert (out.lost, out.duplicated, out.changed) == (0, 0, 0) and out.rows_compared > 2200


def test_low_weight_limit_is_paced_never_banned(tmp_path):
    out = S.weight_limited(tmp_path, days=12, orders=2500)
    assert out.bans_self_provoked == 0
    assert "429s 0," in out.notes[0]  # pacing keeps under the limit: not even a 429
    assert out.ok
