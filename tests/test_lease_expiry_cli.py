"""Issue 17 item 1 through the CLI, in processes: a writer paused past its lease keeps it.

``binance-lake sync candles`` puts the first 12 hours of a day into curated (720 candles). Then,
with a 2 s lease (``BINANCE_LAKE_LOCK_LEASE_S=2``), ``transform --rebuild`` of the symbol is held
8 s between its merge and its write (``BINANCE_LAKE_PAUSE_AT=curated-merge:8``, binance_lake/crash.py),
and once it is paused a second ``sync candles`` brings the next 6 hours (360 candles). Before,
the lease expired under the paused rebuild, the sync took it over, wrote 1080 candles and
deleted its pending markers, and the rebuild's late write of its 720 removed the sync's 360.
Now the rebuild renews its lease while it works and a live holder on this host is never taken
over: the sync waits, then merges over the rebuild's partition; the day holds all 1080 candles.
(The same race with the renewal defeated, where the compare-and-swap alone must save the rows:
tests/test_cas_writes.py.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from binance_lake.times import MS_PER_MINUTE, parse_time
from tests.test_concurrent_writers import COLUMNS, SYMBOL, cli, cli_env, free_port, served_klines

DAY = "2025-06-11"
START = parse_time(DAY)
FIRST = ("2025-06-11T00:00:00Z", "2025-06-11T12:00:00Z")
SECOND = ("2025-06-11T12:00:00Z", "2025-06-11T18:00:00Z")
LEASE_S, PAUSE_S = "2", "8"


@pytest.fixture(scope="module")
def rest_url() -> Iterator[str]:
    """``binance-lake emulator`` in a subprocess, as in tests/test_concurrent_writers.py."""
    port = free_port()
    proc = subprocess.Popen(cli("emulator", "--port", str(port), "--orders", "0"), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "serving on" in line, f"emulator did not start: {line!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run(args: list, env: dict) -> subprocess.CompletedProcess:
    out = subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{args[0]} exited {out.returncode}: {out.stderr[-2000:]}"
    return out


def curated_open_times(lake: Path) -> list:
    sql = f"SELECT {COLUMNS} FROM candles WHERE trading_pair = '{SYMBOL}' ORDER BY 1"
    out = run(["query", sql, "--format", "csv", "--lake", str(lake)], cli_env())
    return [line.split(",") for line in out.stdout.splitlines()[1:]]


def test_item1_a_rebuild_paused_past_its_lease_keeps_it_and_the_sync_after_it_loses_nothing(rest_url, tmp_path):
    lake = tmp_path / "lake"
    common = ["--symbol", SYMBOL, "--lake", str(lake), "--base-url", rest_url]
    run(["sync", "candles", *common, "--start", FIRST[0], "--end", FIRST[1]], cli_env())
    short_lease = {**cli_env(), "BINANCE_LAKE_LOCK_LEASE_S": LEASE_S}
    paused = {**short_lease, "BINANCE_LAKE_PAUSE_AT": f"curated-merge:{PAUSE_S}"}
    rebuild = subprocess.Popen(cli("transform", "--rebuild", "--symbol", SYMBOL, "--lake", str(lake)), env=paused,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_line = rebuild.stderr.readline() if rebuild.stderr else ""
        assert f"pause point curated-merge curated/candles/interval=1m/symbol={SYMBOL}/date={DAY}" in first_line, \
            f"the rebuild never paused before its write: {first_line!r}"
        # The rebuild has read and merged the first 720 minutes and sits before its write.
        run(["sync", "candles", *common, "--start", SECOND[0], "--end", SECOND[1]], short_lease)
        _, err = rebuild.communicate(timeout=120)
        assert rebuild.returncode == 0, err[-2000:]
    finally:
        if rebuild.poll() is None:
            rebuild.kill()
            rebuild.wait()
    truth = served_klines(rest_url, START, START + 1080 * MS_PER_MINUTE)
    got = curated_open_times(lake)
    assert len(truth) == 1080
    assert [int(r[0]) for r in got] == [int(k[0]) for k in truth]  # every minute once, none lost
    assert [tuple(r) for r in got] == [tuple(str(v) for v in k[:11]) for k in truth]  # exact values
