"""Candles: exact equality with what Binance (the emulator) served, idempotence, resume, gaps."""

from __future__ import annotations

import json

import pytest

from binance_lake.emulator import Fault
from binance_lake.errors import BadInputError, BinanceUnavailableError, UnknownSymbolError
from binance_lake.jobs import sync
from binance_lake.query import connect, status
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, parse_time
from tests.conftest import NOW_MS
from tests.helpers import candle_tuples, curated, truth_tuples

MAR1 = parse_time("2024-03-01")
MAR2 = parse_time("2024-03-02")
MAR3 = parse_time("2024-03-03")


def test_multi_page_range_equals_what_binance_served(client, lake, emulator):
    s = sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR3)
    truth = emulator.klines("BTCUSDT", "1m", MAR1, MAR3)
    assert len(truth) == 2880
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", truth)
    assert s["rows"] == 2880 and s["transform"]["rows_written"] == 2880
    assert s["requests"] >= 3  # 2880 candles need 3 pages of at most 1000
    schema = curated(lake, "candles").schema
    assert str(schema.field("open_price").type) == "decimal128(38, 8)"
    assert str(schema.field("candle_open_time").type) == "timestamp[ms, tz=UTC]"


def test_only_closed_candles_and_default_last_24h(client, lake, emulator):
    s = sync.sync_candles(client, lake, "BTCUSDT")
    last_closed_open = (NOW_MS // MS_PER_MINUTE - 1) * MS_PER_MINUTE
    rows = candle_tuples(lake)
    assert rows[-1][1] == last_closed_open  # the open candle (00:00 on 03-03) is not stored
    assert rows[0][1] == last_closed_open + MS_PER_MINUTE - MS_PER_DAY
    assert len(rows) == 1440 and s["start"] == "2024-03-02T00:00:00Z"


def test_rerun_and_overlapping_windows_never_duplicate(client, lake, emulator):
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 12 * 3600_000)
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1 + 6 * 3600_000, end=MAR1 + 18 * 3600_000)
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 18 * 3600_000)
    raw_before = lake.list_keys("raw/klines")
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 18 * 3600_000)
    assert lake.list_keys("raw/klines") == raw_before  # deterministic keys: the rerun wrote nothing new
    truth = emulator.klines("BTCUSDT", "1m", MAR1, MAR1 + 18 * 3600_000)
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", truth)


def test_watermark_continues_and_resumes_after_a_failed_run(make_client, lake, emulator):
    sync.sync_candles(make_client(), lake, "BTCUSDT", start=MAR1, end=MAR1 + 3000 * MS_PER_MINUTE)
    # The next run dies half way: every klines request after the first page fails for good.
    emulator.set_now(MAR3 + 2 * MS_PER_DAY)
    emulator.inject(Fault("500", path="/api/v3/klines", times=10_000, every=None))
    with pytest.raises(BinanceUnavailableError, match="still failing after 3 attempts"):
        sync.sync_candles(make_client(max_attempts=3), lake, "BTCUSDT", workers=1)
    emulator.clear_faults()
    s = sync.sync_candles(make_client(), lake, "BTCUSDT")  # no --start: continue from the data
    assert s["start"] == "2024-03-03T00:00:00Z"  # where the first run stopped (then-last closed candle)
    truth = emulator.klines("BTCUSDT", "1m", MAR1, MAR3 + 2 * MS_PER_DAY)
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", truth)


def test_lost_state_does_not_change_the_result(client, lake, emulator):
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
    for key in lake.list_keys("raw/_runs") + lake.list_keys("raw/_pending") + lake.list_keys("curated/_index"):
        lake.delete(key)
    sync.sync_candles(client, lake, "BTCUSDT", end=MAR3)
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1m", MAR1, MAR3))


def test_gap_detected_and_repaired(client, lake, emulator):
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 3600_000)
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1 + 5 * 3600_000, end=MAR1 + 6 * 3600_000)
    [st] = status(lake)
    assert st.gaps == [(MAR1 + 3600_000, MAR1 + 5 * 3600_000)] and st.missing_minutes == 240
    out = sync.repair_candle_gaps(client, lake, "BTCUSDT", "1m", st.gaps)
    assert out["rows"] == 240
    [st] = status(lake)
    assert st.gaps == [] and st.rows == 360


def test_exchange_gap_is_recorded_not_retried_forever(client, lake, emulator):
    outage = (MAR1 + 600 * MS_PER_MINUTE, MAR1 + 660 * MS_PER_MINUTE)
    emulator.add_exchange_gap("BTCUSDT", *outage)
    s = sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
    assert s["exchange_gaps"] == [["2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z"]]
    [st] = status(lake)
    assert st.exchange_gaps == [outage] and st.gaps == [] and st.rows == 1380
    # A repair of the same range finds it still empty and leaves it recorded once.
    again = sync.repair_candle_gaps(client, lake, "BTCUSDT", "1m", [outage])
    assert again["rows"] == 0 and len(lake.list_keys("raw/_gaps")) == 1


def test_microsecond_timestamps_give_identical_rows(make_client, tmp_path, emulator):
    from binance_lake.lake import LocalLake

    ms_lake, us_lake = LocalLake(str(tmp_path / "ms")), LocalLake(str(tmp_path / "us"))
    sync.sync_candles(make_client(), ms_lake, "BTCUSDT", start=MAR1, end=MAR1 + 1500 * MS_PER_MINUTE)
    sync.sync_candles(make_client(time_unit="MICROSECOND"), us_lake, "BTCUSDT", start=MAR1,
                      end=MAR1 + 1500 * MS_PER_MINUTE)
    raw = json.loads(us_lake.read_bytes(us_lake.list_keys("raw/klines")[0]))
    assert raw["data"][0][0] >= 10**15  # really microseconds on the wire
    assert candle_tuples(us_lake) == candle_tuples(ms_lake) != []


def test_bad_rows_and_malformed_raw_go_to_quarantine(client, lake, emulator):
    bad_open = MAR1 + 5 * MS_PER_MINUTE
    row = emulator.klines("BTCUSDT", "1m", bad_open, bad_open + MS_PER_MINUTE)[0]
    emulator.set_kline_override("BTCUSDT", bad_open, [*row[:2], "1.00000000", *row[3:]])  # high < low
    too_precise = bad_open + MS_PER_MINUTE
    row2 = emulator.klines("BTCUSDT", "1m", too_precise, too_precise + MS_PER_MINUTE)[0]
    emulator.set_kline_override("BTCUSDT", too_precise, [*row2[:5], "0.123456789", *row2[6:]])
    s = sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 60 * MS_PER_MINUTE)
    assert s["transform"]["quarantined_rows"] == 2 and s["transform"]["rows_written"] == 58
    [qkey] = lake.list_keys("quarantine/candles")
    reasons = [r["reason"] for r in json.loads(lake.read_bytes(qkey))["rows"]]
    assert any("low_price above open/close/high" in r for r in reasons)
    assert any("does not fit decimal(38,8)" in r for r in reasons)
    # A malformed raw file is quarantined whole; the rest of the run lands.
    key = "raw/klines/interval=1m/symbol=BTCUSDT/date=2024-03-02/1709337600000-1709341200000.json"
    lake.write_bytes(key, b'{"data": [truncated')
    lake.write_bytes("raw/_pending/" + key[4:], b"")
    from binance_lake.fold import transform_pending

    r = transform_pending(lake)
    assert r.quarantined_files == 1 and not lake.exists(key)
    assert lake.exists("quarantine/" + key) and b"not valid JSON" in lake.read_bytes(f"quarantine/{key}.reason.json")


def test_corrupted_curated_partition_is_rebuilt_from_raw(client, lake, emulator):
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR1 + 100 * MS_PER_MINUTE)
    [part] = [k for k in lake.list_keys("curated/candles") if k.endswith(".parquet")]
    lake.write_bytes(part, b"PAR1 garbage")
    s = sync.sync_candles(client, lake, "BTCUSDT", end=MAR1 + 200 * MS_PER_MINUTE)
    assert s["transform"]["rebuilt"] == ["curated/candles/interval=1m/symbol=BTCUSDT/date=2024-03-01"]
    truth = emulator.klines("BTCUSDT", "1m", MAR1, MAR1 + 200 * MS_PER_MINUTE)
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", truth)


def test_binance_us_pair_by_base_url(client, lake, emulator):
    sync.sync_candles(client, lake, "BTCUSD", start=MAR1, end=MAR1 + 10 * MS_PER_MINUTE)
    assert candle_tuples(lake) == truth_tuples("BTCUSD", emulator.klines("BTCUSD", "1m", MAR1,
                                                                           MAR1 + 10 * MS_PER_MINUTE))


def test_input_errors_are_clear_and_write_nothing(client, lake):
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'BTCXYZ'"):
        sync.sync_candles(client, lake, "BTCXYZ")
    with pytest.raises(BadInputError, match="is not before --end"):
        sync.sync_candles(client, lake, "BTCUSDT", start=MAR2, end=MAR1)
    with pytest.raises(BadInputError, match="no 1m candles before 2017-08-17"):
        sync.sync_candles(client, lake, "BTCUSDT", start=parse_time("2017-01-01"), end=parse_time("2017-02-01"))
    assert lake.list_keys("") == []


def test_duckdb_views_query_the_curated_zone(client, lake):
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2)
    con = connect(lake)
    n, days, hi = con.execute("SELECT count(*), count(DISTINCT date), max(high_price) FROM candles "
                              "WHERE symbol = 'BTCUSDT'").fetchone()
    assert (n, days) == (1440, 1)
    assert hi == max(r["high_price"] for r in curated(lake, "candles").to_pylist())


def test_gap_at_the_head_of_the_synced_range_is_found(client, lake, emulator):
    """A lost first partition is a gap too: the raw coverage says where the lake should start."""
    sync.sync_candles(client, lake, "BTCUSDT", start=MAR1, end=MAR2 + 60 * MS_PER_MINUTE)
    for key in lake.list_keys("curated/candles/interval=1m/symbol=BTCUSDT/date=2024-03-01"):
        lake.delete(key)
    [st] = status(lake)
    assert st.gaps == [(MAR1, MAR2)]
    sync.repair_candle_gaps(client, lake, "BTCUSDT", "1m", st.gaps)
    assert candle_tuples(lake) == truth_tuples("BTCUSDT", emulator.klines("BTCUSDT", "1m", MAR1,
                                                                            MAR2 + 60 * MS_PER_MINUTE))


def test_retries_back_off_and_never_sleep_after_the_last_attempt(make_client, emulator, caplog):
    emulator.inject(Fault("503", path="/api/v3/time", times=3))
    client = make_client(max_attempts=3)
    slept = []
    client._sleep = slept.append
    with pytest.raises(BinanceUnavailableError, match="still failing after 3 attempts"):
        client.server_time()
    assert len(slept) == 2 and client.stats.retries == 2 and client.stats.requests == 3
    assert "attempt 3/3, giving up" in caplog.text
    emulator.inject(Fault("503", path="/api/v3/time", times=2))
    assert client.server_time() == NOW_MS  # two failures, then the third attempt succeeds
