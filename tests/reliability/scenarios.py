"""Reliability scenarios shared by the CI tests (small, seeded) and bench/reliability.py (large).

Each scenario builds its own seeded emulator and lake, runs the real code path (library
jobs, or the ``binance-lake`` CLI in a subprocess for crashes), and returns a
:class:`Outcome` comparing the curated lake with the emulator's ground truth.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pyarrow.parquet as pq

from binance_lake.emulator import Emulator
from binance_lake.errors import IpBannedError, LakeError
from binance_lake.jobs import sync
from binance_lake.lake import Lake, LocalLake
from binance_lake.sources.rest.client import BinanceClient, ClientConfig
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.helpers import candle_tuples, dec, order_rows, truth_tuples

NOW_MS = 1709424030000  # 2024-03-03T00:00:30Z, as tests/conftest.py
MAR1 = 1709251200000  # 2024-03-01T00:00:00Z
API_KEY, API_SECRET = "rel-api-key-0123456789abcdef", "rel-api-secret-fedcba9876543210"
STORM_KINDS = ["429", "418", "500", "502", "503", "504", "timeout", "reset", "truncated", "incomplete",
               "malformed", "shuffle", "duplicate", "-1000", "-1003", "-1007", "-1008"]
CRASH_POINTS = ["fetch", "marker", "raw", "tmp:raw", "tmp:curated", "curated"]
# How many times each point is reached by the crash scenarios' first run (an upper bound
# for the seeded choice of which occurrence dies).
REACHED = {"candles": {"fetch": 3, "marker": 4, "raw": 4, "tmp:raw": 8, "tmp:curated": 2, "curated": 2},
           "orders": {"fetch": 2, "marker": 2, "raw": 2, "tmp:raw": 4, "tmp:curated": 10, "curated": 1}}
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    """Ground truth vs the curated lake, plus what it took to get there."""

    name: str
    rows_compared: int = 0
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    runs: int = 0
    faults: int = 0
    bans_self_provoked: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.changed == 0 and self.rows_compared > 0

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def new_emulator(seed: int = 1, orders: int = 0, **kw: Any) -> Emulator:
    emu = Emulator(now_ms=NOW_MS, seed=seed, **kw)
    emu.add_api_key(API_KEY, API_SECRET)
    if orders:
        emu.generate_orders("BTCUSDT", orders, NOW_MS - 20 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=seed)
    return emu


def fast_client(base_url: str, **overrides: Any) -> BinanceClient:
    cfg = ClientConfig(base_url=base_url, api_key=API_KEY, api_secret=API_SECRET, timeout_s=0.5,
                       max_attempts=6, backoff_base_s=0.01, backoff_cap_s=0.05)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return BinanceClient(cfg)


# -- comparisons ---------------------------------------------------------------------------


def compare_candles(name: str, lake: LocalLake, emu: Emulator, start: int, end: int) -> Outcome:
    got = candle_tuples(lake)
    want = truth_tuples("BTCUSDT", emu.klines("BTCUSDT", "1m", start, end))
    return _compare(name, {g[:2]: g for g in want}, got, key=lambda r: r[:2])


def order_tuple(o: Dict[str, Any]) -> tuple:
    """An emulator order (as /allOrders serves it) as comparable values."""
    return (o["symbol"], o["orderId"], dec(o["price"]), dec(o["origQty"]), dec(o["executedQty"]),
            dec(o["cummulativeQuoteQty"]), o["status"], o["type"], o["side"], o["time"], o["updateTime"])


def stored_order_tuples(lake: LocalLake) -> List[tuple]:
    out = []
    for r in order_rows(lake).values():
        out.append((r["symbol"], r["order_id"], dec(r["price"]), dec(r["orig_qty"]), dec(r["executed_qty"]),
                    dec(r["cummulative_quote_qty"]), r["status"], r["type"], r["side"],
                    int(r["order_time"].timestamp() * 1000), int(r["update_time"].timestamp() * 1000)))
    return out


def compare_orders(name: str, lake: LocalLake, emu: Emulator) -> Outcome:
    from tests.helpers import curated

    want = {(o["symbol"], o["orderId"]): order_tuple(o) for o in emu.orders("BTCUSDT")}
    t = curated(lake, "orders")
    ids = t["order_id"].to_pylist() if t.num_rows else []
    out = _compare(name, want, stored_order_tuples(lake), key=lambda r: r[:2])
    out.duplicated += len(ids) - len(set(ids))  # order_rows() keys by id: count repeats on the table
    return out


def _compare(name: str, want: Dict[tuple, tuple], got: Sequence[tuple], key: Callable[[tuple], tuple]) -> Outcome:
    seen: Dict[tuple, tuple] = {}
    dup = 0
    for row in got:
        dup += key(row) in seen
        seen[key(row)] = row
    lost = sum(k not in seen for k in want)
    changed = sum(k in seen and seen[k] != v for k, v in want.items()) + sum(k not in want for k in seen)
    return Outcome(name, rows_compared=len(want), lost=lost, duplicated=dup, changed=changed)


# -- fault storms ----------------------------------------------------------------------------


def rerun_until_done(run: Callable[[], Any], max_runs: int = 30) -> int:
    """Rerun like a scheduler would: after a ban wait it out, after anything else try again."""
    for n in range(1, max_runs + 1):
        try:
            run()
            return n
        except IpBannedError:
            time.sleep(1.2)  # storm bans last retry_after_s = 1 s
        except LakeError:
            pass
    raise AssertionError(f"still failing after {max_runs} runs")


def storm_candles(seed: int, rate: float, days: int, tmp: Path) -> Outcome:
    emu = new_emulator(seed, ban_s=1)
    start, end = MAR1 - (days - 2) * MS_PER_DAY, MAR1 + 2 * MS_PER_DAY
    lake = LocalLake(str(tmp / f"storm-candles-{seed}"))
    storm = emu.fault_storm(seed=seed, rate=rate, kinds=STORM_KINDS, delay_s=1.0)
    with emu.serve() as url:
        runs = rerun_until_done(lambda: sync.sync_candles(fast_client(url), lake, "BTCUSDT", start=start, end=end))
    out = compare_candles(f"storm candles seed {seed}", lake, emu, start, end)
    out.runs, out.faults = runs, storm.fired
    return out


def storm_orders(seed: int, rate: float, orders: int, tmp: Path) -> Outcome:
    """A storm over several syncs with order status changes and new orders in between."""
    emu = new_emulator(seed, orders=orders, ban_s=1)
    lake = LocalLake(str(tmp / f"storm-orders-{seed}"))
    storm = emu.fault_storm(seed=seed, rate=rate, kinds=STORM_KINDS, delay_s=1.0)
    runs = 0
    with emu.serve() as url:
        for step in range(3):
            runs += rerun_until_done(lambda: sync.sync_orders(fast_client(url), lake, "BTCUSDT"))
            _change_orders(emu, step)
        runs += rerun_until_done(lambda: sync.sync_orders(fast_client(url), lake, "BTCUSDT"))
    out = compare_orders(f"storm orders seed {seed}", lake, emu)
    out.runs, out.faults = runs, storm.fired
    return out


def _change_orders(emu: Emulator, step: int) -> None:
    emu.advance(MS_PER_MINUTE)
    open_orders = [o for o in emu.orders("BTCUSDT") if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    for o in open_orders[step::3][:20]:
        emu.update_order("BTCUSDT", o["orderId"], status="FILLED")
    for _ in range(5):
        emu.add_order("BTCUSDT", status="NEW")


def weight_limited(tmp: Path, days: int = 20, orders: int = 2500) -> Outcome:
    """A low weight limit in a 2 s window: the client must pace itself and never be banned."""
    emu = new_emulator(3, orders=orders, weight_limit=80, weight_window_s=2)
    lake = LocalLake(str(tmp / "weight"))
    start, end = MAR1 - (days - 2) * MS_PER_DAY, MAR1 + 2 * MS_PER_DAY
    with emu.serve() as url:
        sync.sync_candles(fast_client(url), lake, "BTCUSDT", start=start, end=end, workers=4)
        sync.sync_orders(fast_client(url), lake, "BTCUSDT")
    out = compare_candles("weight-limited", lake, emu, start, end)
    orders_out = compare_orders("weight-limited orders", lake, emu)
    _fold(out, orders_out)
    out.bans_self_provoked = emu.stats["bans"] + emu.stats["418"]
    out.notes.append(f"429s {emu.stats['429']}, requests {emu.stats['requests']}")
    return out


def _fold(into: Outcome, other: Outcome) -> None:
    for f in ("rows_compared", "lost", "duplicated", "changed", "runs", "faults"):
        setattr(into, f, getattr(into, f) + getattr(other, f))


# -- crashes (a real process, SIGKILLed at a named point) ----------------------------------------


def cli(args: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 120
        ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET,
                "PYTHONPATH": str(ROOT)}
    full_env.pop("BINANCE_LAKE_CRASH_AT", None)  # only ever from this call's env
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "binance_lake.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=str(ROOT))


def candle_args(url: str, lake: Path, start: int = MAR1, end: int = MAR1 + 2 * MS_PER_DAY) -> List[str]:
    from binance_lake.times import ms_to_iso

    return ["sync", "candles", "--symbol", "BTCUSDT", "--start", ms_to_iso(start), "--end", ms_to_iso(end),
            "--lake", str(lake), "--base-url", url, "--workers", "2", "--json"]


def order_args(url: str, lake: Path) -> List[str]:
    return ["sync", "orders", "--symbol", "BTCUSDT", "--lake", str(lake), "--base-url", url, "--json"]


def crash_and_rerun(table: str, point: str, n: int, tmp: Path, emu: Emulator, url: str) -> Outcome:
    """Kill a sync at the n-th ``point``, rerun it to completion, compare with ground truth."""
    lake_dir = tmp / f"crash-{table}-{point.replace(':', '_')}-{n}"
    args = candle_args(url, lake_dir) if table == "candles" else order_args(url, lake_dir)
    first = cli(args, {"BINANCE_LAKE_CRASH_AT": f"{point}:{n}"})
    killed = first.returncode == -9
    if not killed and first.returncode != 0:
        raise AssertionError(f"crash run failed: {first.stderr[-1500:]}")
    torn = check_readable(LocalLake(str(lake_dir)))  # what a reader sees right after the crash
    again = cli(args)
    if again.returncode != 0:
        raise AssertionError(f"rerun after {point}:{n} failed: {again.stderr[-1500:]}")
    lake = LocalLake(str(lake_dir))
    out = (compare_candles(f"crash {table} {point}:{n}", lake, emu, MAR1, MAR1 + 2 * MS_PER_DAY)
           if table == "candles" else compare_orders(f"crash {table} {point}:{n}", lake, emu))
    out.runs = 2
    out.changed += torn + check_readable(lake)
    out.notes.append(("killed" if killed else "point not reached") + f", temp files left {count_tmp(lake_dir)}")
    return out


def check_readable(lake: LocalLake) -> int:
    """Problems a reader would meet: unreadable Parquet, or DuckDB failing over the views."""
    from binance_lake.query import connect

    bad = 0
    for key in lake.list_keys("curated"):
        if key.endswith(".parquet"):
            try:
                pq.read_table(io.BytesIO(lake.read_bytes(key)))
            except Exception:
                bad += 1
    if os.path.isdir(lake.root):
        try:
            con = connect(lake)
            for view in ("candles", "orders"):
                try:
                    con.execute(f"SELECT count(*) FROM {view}").fetchone()
                except Exception as exc:
                    bad += "does not exist" not in str(exc) and "not found" not in str(exc).lower()
        except Exception:
            bad += 1
    return bad


def count_tmp(root: Path) -> int:
    return sum(1 for _d, _s, files in os.walk(root) for f in files if ".tmp-" in f)


# -- concurrency -----------------------------------------------------------------------------------


def run_together(*fns: Callable[[], Any]) -> List[Any]:
    """Start the callables at the same instant in threads; re-raise the first error."""
    barrier, results, errors = threading.Barrier(len(fns)), [None] * len(fns), []

    def go(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def processes_together(arg_lists: Sequence[Sequence[str]]) -> List[Tuple[int, str]]:
    env = {**os.environ, "BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET, "PYTHONPATH": str(ROOT)}
    env.pop("BINANCE_LAKE_CRASH_AT", None)
    procs = [subprocess.Popen([sys.executable, "-m", "binance_lake.cli", *a], env=env, cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in arg_lists]
    out = []
    for p in procs:
        _o, err = p.communicate(timeout=180)
        out.append((p.returncode, err[-1500:]))
    return out


def lake_of(path: Path) -> Lake:
    return LocalLake(str(path))
