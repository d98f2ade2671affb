# ruff: noqa: F811  (pytest fixtures imported from tests.test_backfill are test parameters here)
"""Backfill when Binance's REST API is refused (HTTP 451) or unreachable: the archive part
needs no REST, so it is done, and what REST could not fill is named (issue 12, case 4)."""

from __future__ import annotations

import json

from binance_lake.cli import main
from binance_lake.jobs.backfill import backfill
from binance_lake.lake import LocalLake
from binance_lake.times import parse_time
from tests.helpers import candle_tuples
from tests.test_backfill import (  # noqa: F401 (fixtures: the archive server and its emulator)
    SYMBOL,
    archive_tree,
    archive_url,
    cfg,
    emulator,
    server,
    truth,
)

DEC1, JAN1 = parse_time("2024-12-01"), parse_time("2025-01-01")
TAIL_END = parse_time("2025-02-03T06:00:00Z")


def test_geo_blocked_backfill_of_an_archived_range_works_without_no_rest(make_client, lake, emulator,
                                                                       archive_url):
    emulator.geo_blocked = True
    r = backfill(lake, SYMBOL, DEC1, JAN1, cfg(archive_url), make_client())
    s = r.summary()
    assert s["files_curated"] == 1 and s["rest_unfilled"] == [] and r.rest_exit_code == 0
    assert "HTTP 451" in s["rest_error"]
    assert candle_tuples(lake) == truth(emulator, DEC1, JAN1)


def test_refused_rest_names_the_unfilled_tail_and_the_cli_exits_partial(base_url, emulator, archive_url,
                                                                        tmp_path, capsys):
    emulator.geo_blocked = True
    lake_dir = str(tmp_path / "lake")
    common = ["backfill", "--symbol", SYMBOL, "--start", "2024-12", "--archive-url", archive_url,
              "--base-url", base_url, "--lake", lake_dir]
    assert main([*common, "--end", "2025-01"]) == 0
    err = capsys.readouterr().err
    assert "REST refused" in err and "REST could not fill: nothing (the archive covered it)" in err
    code = main([*common, "--end", "2025-02-03T06:00:00Z", "--json"])
    out, err = capsys.readouterr()
    [s] = json.loads(out.strip().splitlines()[-1])["symbols"]
    assert code == 3  # the 451's exit code: partial, REST refused
    assert s["rest_unfilled"] == [["2025-02-02T00:00:00Z", "2025-02-03T06:00:00Z"]]
    assert "REST could not fill: 2025-02-02T00:00:00Z .. 2025-02-03T06:00:00Z" in err
    assert candle_tuples(LocalLake(lake_dir)) == truth(emulator, DEC1, parse_time("2025-02-02"))


def test_unreachable_rest_still_backfills_the_archive(lake, emulator, archive_url):
    from binance_lake.sources.rest.client import BinanceClient, ClientConfig

    client = BinanceClient(ClientConfig(base_url="http://127.0.0.1:9", timeout_s=1, max_attempts=3,
                                        backoff_base_s=0.01, backoff_cap_s=0.02))
    r = backfill(lake, SYMBOL, DEC1, TAIL_END, cfg(archive_url), client)
    assert "cannot reach Binance" in r.rest_error and r.rest_exit_code == 4
    assert r.rest_unfilled == [(parse_time("2025-02-02"), TAIL_END)]
    assert candle_tuples(lake) == truth(emulator, DEC1, parse_time("2025-02-02"))
