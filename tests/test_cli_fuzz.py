"""The CLI walked with generated arguments (issue 20 "Honest exits everywhere").

Every command of the parser, with symbols, intervals, dates, flags and lake paths drawn from
values a user types (typos, glob characters, a missing directory, a year 9999), against the
emulator and a small lake. Whatever the arguments, the run must end with an exit code from the
one table (``cli.EXIT_CODES``), never with an exception escaping ``main`` (a traceback), and
with ``--json`` whatever it prints on stdout is one JSON document.

Fixed budget and derandomized (same examples on every run, well under a minute). A longer
hunt: ``BINANCE_LAKE_FUZZ_EXAMPLES=2000 pytest tests/test_cli_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from typing import Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_lake.cli import EXIT_CODES, main
from binance_lake.emulator import Emulator
from tests.conftest import API_KEY, API_SECRET, NOW_MS

EXAMPLES = int(os.environ.get("BINANCE_LAKE_FUZZ_EXAMPLES", "60"))

SYMBOLS = ["BTCUSDT", "btcusdt", "BTCUSD", "ETHUSDT", "NOPE", "", " ", "BTC-USDT", "BTC?USDT", "ÄÖÜ", "BTCUSDT,BTCUSD"]
INTERVALS = ["1m", "1h", "1d", "7m", "", "1M", "1s", "1m "]
# Near the emulator's clock (2024-03-03T00:00:30Z) so a valid range is a few pages, plus the
# edges users hit: the far future, a year that overflows, bad syntax, before the listing.
STARTS = ["2024-03-01", "2024-03-02T12:00:00Z", "2024-03-02T23:30", "2024-03-03", "2100-01-01",
          "9999-12-31T23:59:59", "0001-01-01", "2024-13-01", "yesterday", "", "2024-03-02T12:00:00+05:00"]
ENDS = [*STARTS, "2016-01-01", "2024-03-02"]
READING = ("verify", "status", "gaps", "query", "export")  # commands that only read a lake
SQL = ["SELECT count(*) AS n FROM candles", "SELECT * FROM orders LIMIT 3", "SELECT nope FROM candles",
       "DROP TABLE candles", "", "SELECT 1; SELECT 2", "SELECT * FROM read_parquet('/nonexistent/*.parquet')"]


@pytest.fixture(scope="module")
def world() -> Iterator[dict]:
    """One emulator and a directory of lakes: a synced one, a glob-named one, a missing one."""
    emu = Emulator(now_ms=NOW_MS, seed=3)
    emu.add_api_key(API_KEY, API_SECRET)
    emu.generate_orders("BTCUSDT", 30, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=4)
    root = tempfile.mkdtemp(prefix="cli-fuzz-")
    with pytest.MonkeyPatch.context() as mp, emu.serve() as url:
        mp.setenv("BINANCE_API_KEY", API_KEY)
        mp.setenv("BINANCE_API_SECRET", API_SECRET)
        for name in ("BINANCE_BASE_URL", "BINANCE_LAKE", "BINANCE_ARCHIVE_URL", "BINANCE_TIME_UNIT"):
            mp.delenv(name, raising=False)
        mp.chdir(root)  # a relative --lake resolves here, never in the checkout
        mirror = os.path.join(root, "mirror")
        os.makedirs(mirror)
        with open(os.path.join(root, "a-file"), "w") as fh:
            fh.write("not a lake")
        seeded = os.path.join(root, "lake")
        assert _quiet(["sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-02T20:00:00Z",
                       "--base-url", url, "--lake", seeded])[0] == 0
        assert _quiet(["sync", "orders", "--symbol", "BTCUSDT", "--base-url", url, "--lake", seeded])[0] == 0
        shutil.copytree(seeded, os.path.join(root, "lk?a"))
        yield {"url": url, "root": root, "mirror": "file://" + mirror,
               "lakes": [seeded, os.path.join(root, "lk?a"), os.path.join(root, "lake[1]"), "*",
                         os.path.join(root, "missing"), os.path.join(root, "a-file"), "", "lake"]}
    shutil.rmtree(root, ignore_errors=True)


def _quiet(argv: List[str]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def pick(values: List[str]) -> st.SearchStrategy[str]:
    """Any of ``values``, the first (a valid one) half the time, so that runs get past the first
    check often enough to reach the deeper ones."""
    return st.one_of(st.just(values[0]), st.sampled_from(values))


def _maybe(draw, flag: str, values: List[str]) -> List[str]:
    return [flag, draw(pick(values))] if draw(st.booleans()) else []


@st.composite
def command(draw, world: dict) -> List[str]:
    sym = ["--symbol", draw(pick(SYMBOLS))]
    rng = _maybe(draw, "--start", STARTS) + _maybe(draw, "--end", ENDS)
    interval = _maybe(draw, "--interval", INTERVALS)
    net = ["--base-url", draw(pick([world["url"], world["url"] + "/api", "http://127.0.0.1:9",
                                               "ftp://x", "http://user:pw@127.0.0.1:9"])), "--max-attempts", "2"]
    which = draw(st.sampled_from(["sync-candles", "sync-orders", "backfill", "transform", "verify", "status",
                                  "gaps", "query", "export"]))
    if which == "sync-candles":
        argv = ["sync", "candles", *sym, *interval, *rng, *net] + (["--no-transform"] if draw(st.booleans()) else [])
    elif which == "sync-orders":
        argv = ["sync", "orders", *sym, *net, *draw(st.sampled_from([
            [], ["--limit", "5"], ["--limit", "0"], ["--limit", "5000"], ["--window", "15m"], ["--window", "0h"],
            ["--window", "fortnight"], rng]))]
    elif which == "backfill":
        # Archive only (the mirror is empty): REST ranges from a generated --start could span years.
        argv = ["backfill", *sym, *interval, *rng, "--no-rest", "--archive-url", world["mirror"]]
    elif which == "transform":
        argv = ["transform"] + (["--rebuild", *sym] if draw(st.booleans()) else [])
    elif which == "verify":
        argv = ["verify", *sym, *interval, *_maybe(draw, "--start", ["2024-03-02", "2024-03-01", "bad", "2100-01-01"]),
                *_maybe(draw, "--end", ["2024-03-03", "2024-03-02", "2024-03-01"]), "--lock-wait", "1"]
        argv += ["--dry-run"] if draw(st.booleans()) else []
    elif which == "status":
        argv = ["status"]
    elif which == "gaps":
        argv = ["gaps", *sym, *interval] + (["--repair", *net] if draw(st.booleans()) else [])
    elif which == "query":
        argv = ["query", draw(st.sampled_from(SQL)), "--format", draw(st.sampled_from(["table", "csv", "json"]))]
    else:
        table = draw(st.sampled_from(["candles", "orders"]))
        argv = ["export", table, *sym, *rng, "--output", os.path.join(world["root"], "out.csv")]
    argv += ["--lake", draw(pick(world["lakes"]))]
    return argv + (["--json"] if draw(st.booleans()) else [])


def test_no_generated_command_ends_in_a_traceback_or_an_unlisted_exit_code(world):
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def walk(data) -> None:
        argv = data.draw(command(world), label="argv")
        lake = argv[argv.index("--lake") + 1]
        existed = bool(lake) and os.path.isdir(lake)  # before: a sync may create "*" or "lake[1]"
        code, out, err = _quiet(argv)
        assert code in EXIT_CODES, (argv, code, err[-500:])
        assert "Traceback" not in err, (argv, err[-2000:])
        if "--json" in argv and out.strip() and argv[0] != "query":
            json.loads(out)  # one document, nothing else on stdout
        if code == 0 and "--json" in argv and argv[0] in ("sync", "backfill", "status", "gaps", "verify"):
            assert out.strip(), (argv, err[-500:])
        if (argv[0] in READING or "--rebuild" in argv) and not existed:  # nothing to read is not success
            assert code != 0, (argv, out[-500:])

    walk()
