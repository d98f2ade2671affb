"""Bad input: the exact message and exit code from ``binance_lake.cli.main``, and nothing
already stored changes (the lake is snapshotted byte for byte before each case)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import boto3
import pytest
from moto import mock_aws

from binance_lake.cli import main
from binance_lake.emulator import Fault
from binance_lake.lake import LocalLake
from tests.reliability import scenarios as S

HOUR = "2024-03-01T01:00:00Z"
SIGNED = ["/api/v3/allOrders", "/api/v3/openOrders"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An emulator and a lake that already holds an hour of candles and 300 orders."""
    emu = S.new_emulator(4, orders=300)
    lake = tmp_path_factory.mktemp("bad") / "lake"
    with emu.serve() as url:
        base = ["--lake", str(lake), "--base-url", url]
        assert S.cli(["sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", HOUR,
                      *base]).returncode == 0
        assert S.cli(["sync", "orders", "--symbol", "BTCUSDT", *base]).returncode == 0
        yield emu, url, lake


def snapshot(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run(capsys, args: List[str], env: Optional[Dict[str, str]] = None) -> tuple:
    saved = dict(os.environ)
    os.environ.update({"BINANCE_API_KEY": S.API_KEY, "BINANCE_API_SECRET": S.API_SECRET, **(env or {})})
    try:
        capsys.readouterr()
        code = main(args)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    # Which signed order endpoint a sync calls first (allOrders or openOrders) is not the point.
    return code, re.sub(r"/api/v3/(all|open)Orders ", "/api/v3/allOrders ", errors[-1]) if errors else ""


CASES = [  # (name, command after "sync", env, fault, exit code, message with {url})
    ("unknown symbol", ["candles", "--symbol", "BTCXYZ"], {}, None, 2,
     "error: unknown symbol 'BTCXYZ': Binance at {url} does not list it (-1121); check the spelling, e.g. BTCUSDT"),
    ("bad interval", ["candles", "--symbol", "BTCUSDT", "--interval", "7m"], {}, None, 2,
     "error: unsupported interval '7m'; use one of 1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, "
     "1w, 1M (case-sensitive: 1m is a minute, 1M a month)"),
    ("start after end", ["candles", "--symbol", "BTCUSDT", "--start", "2024-03-02", "--end", "2024-03-01"], {},
     None, 2, "error: --start 2024-03-02T00:00:00Z is not before --end 2024-03-01T00:00:00Z; "
              "--start is inclusive and --end exclusive"),
    ("before listing", ["candles", "--symbol", "BTCUSDT", "--start", "2017-01-01", "--end", "2017-02-01"], {},
     None, 2, "error: BTCUSDT has no 1m candles before 2017-08-17T04:00:00Z (its first candle); "
              "the requested range ends before that"),
    ("missing API key", ["orders", "--symbol", "BTCUSDT"], {"BINANCE_API_KEY": ""}, None, 2,
     "error: sync orders needs a Binance API key: set BINANCE_API_KEY and BINANCE_API_SECRET "
     "(a read-only key is enough)"),
    ("bad API key", ["orders", "--symbol", "BTCUSDT"], {"BINANCE_API_KEY": "not-a-known-key"}, None, 3,
     "error: GET /api/v3/allOrders BTCUSDT: Binance rejected the API key (-2015: Invalid API-key, IP, or "
     "permissions for action.); check BINANCE_API_KEY, that the key allows reading, and that this IP is on "
     "the key's allow list"),
    ("bad signature", ["orders", "--symbol", "BTCUSDT"], {"BINANCE_API_SECRET": "wrong-secret"}, None, 3,
     "error: GET /api/v3/allOrders BTCUSDT: Binance rejected the request signature (-1022); "
     "BINANCE_API_SECRET does not match BINANCE_API_KEY"),
    ("clock skew", ["orders", "--symbol", "BTCUSDT"], {}, Fault("-1021", path=SIGNED, times=2), 3,
     "error: GET /api/v3/allOrders BTCUSDT: request timestamp outside recvWindow even after syncing with "
     "server time (-1021); fix this machine's clock (NTP) or raise --recv-window (max 60000)"),
]


@pytest.mark.parametrize(("name", "args", "env", "fault", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named_and_changes_nothing(world, capsys, name, args, env, fault, code, message):
    emu, url, lake = world
    before = snapshot(lake)
    if fault:
        emu.inject(fault)
    got = run(capsys, ["sync", *args, "--lake", str(lake), "--base-url", url], env)
    emu.clear_faults()
    assert got == (code, message.format(url=url))
    assert snapshot(lake) == before


def test_unreachable_base_url(world, capsys):
    _emu, _url, lake = world
    before = snapshot(lake)
    code, msg = run(capsys, ["sync", "candles", "--symbol", "BTCUSDT", "--lake", str(lake),
                             "--base-url", "http://127.0.0.1:9", "--max-attempts", "3"])
    assert code == 4
    assert msg.startswith("error: cannot reach Binance at http://127.0.0.1:9 (ConnectionError); check --base-url "
                          "(or BINANCE_BASE_URL) and this machine's network")
    assert snapshot(lake) == before


def test_lake_path_not_writable(world, capsys, tmp_path):
    _emu, url, _lake = world
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    code, msg = run(capsys, ["sync", "candles", "--symbol", "BTCUSDT", "--end", HOUR, "--start", "2024-03-01",
                             "--lake", str(blocker / "lake"), "--base-url", url])
    assert (code, msg) == (5, f"error: lake directory {blocker / 'lake'} is not writable (Not a directory); "
                              "choose another --lake or fix permissions")
    assert blocker.read_text() == "in the way"


def test_s3_bucket_that_does_not_exist(world, capsys, monkeypatch):
    _emu, url, _lake = world
    for var, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing"),
                       ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(var, value)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="other-lake")
        s3.put_object(Bucket="other-lake", Key="curated/x", Body=b"kept")
        code, msg = run(capsys, ["sync", "candles", "--symbol", "BTCUSDT", "--lake", "s3://no-such-lake/x",
                                 "--base-url", url])
        assert (code, msg) == (5, "error: S3 bucket 'no-such-lake' does not exist; create it or fix "
                                  "--lake s3://no-such-lake/x")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["other-lake"]
        assert s3.get_object(Bucket="other-lake", Key="curated/x")["Body"].read() == b"kept"


def test_malformed_raw_file_is_quarantined_and_the_run_continues(world, capsys, tmp_path):
    emu, url, _lake = world
    lake = LocalLake(str(tmp_path / "lake"))
    bad = "raw/klines/interval=1m/symbol=BTCUSDT/date=2024-02-29/1709164800000-1709168400000.json"
    lake.write_bytes(bad, b'{"data": [trunc')
    lake.write_bytes("raw/_pending/" + bad[4:], b"")
    code, _ = run(capsys, ["sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", HOUR,
                           "--lake", lake.root, "--base-url", url])
    assert code == 0
    assert lake.exists("quarantine/" + bad) and not lake.exists(bad)
    assert S.compare_candles("after quarantine", lake, emu, S.MAR1, S.MAR1 + 3600_000).ok


def test_corrupted_curated_file_is_detected_and_rebuilt(world, capsys, tmp_path):
    emu, url, _lake = world
    lake = LocalLake(str(tmp_path / "lake"))
    args = ["sync", "candles", "--symbol", "BTCUSDT", "--lake", lake.root, "--base-url", url]
    assert run(capsys, [*args, "--start", "2024-03-01", "--end", HOUR])[0] == 0
    [part] = [k for k in lake.list_keys("curated/candles") if k.endswith(".parquet")]
    lake.write_bytes(part, b"PAR1 not parquet at all")
    assert run(capsys, [*args, "--end", "2024-03-01T02:00:00Z"])[0] == 0
    assert S.compare_candles("rebuilt", lake, emu, S.MAR1, S.MAR1 + 7200_000).ok
