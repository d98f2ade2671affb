"""Benchmark 2: the 5-minute tick on a lake that already holds a year.

Setup (not timed): 364 generated curated days (bench/genlake.py) + the last day synced for
real from the emulator (raw + curated), and the account's orders. Then the emulator's clock
moves 5 minutes and a few orders appear. The tick is one fresh process (``--child``) doing
what the scheduled run does: ``sync.sync_candles`` + ``sync.sync_orders`` with the transform,
through a lake wrapper that records every read, write, delete and listing.

Reported: process wall time, and its shares: interpreter + imports, HTTP (inside the
client's request calls), lake I/O (inside the wrapper), and the rest (compute). Checked:
curated reads/writes touch only the partitions the tick's rows belong to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

T_PROCESS = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SYMBOL = "BTCUSDT"
API_KEY, API_SECRET = "bench-key-0123456789", "bench-secret-abcdefghij"
TICK_MS = 5 * 60_000


class CountingLake:
    """Wraps a Lake; records (op, key, seconds, bytes) for every call."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.uri, self.ops = inner, inner.uri, []

    def _rec(self, op: str, key: str, t0: float, size: int = 0) -> None:
        self.ops.append((op, key, time.perf_counter() - t0, size))

    def read_bytes(self, key: str) -> bytes:
        t0 = time.perf_counter()
        try:
            data = self.inner.read_bytes(key)
        finally:
            self._rec("read", key, t0)
        self.ops[-1] = (*self.ops[-1][:3], len(data))
        return data

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        t0 = time.perf_counter()
        try:
            return self.inner.write_bytes(key, data, if_absent)
        finally:
            self._rec("write", key, t0, len(data))

    def read_with_version(self, key: str) -> Any:
        t0 = time.perf_counter()  # the curated partitions' reads (a GetObject with its ETag)
        try:
            data, version = self.inner.read_with_version(key)
        finally:
            self._rec("read", key, t0)
        self.ops[-1] = (*self.ops[-1][:3], len(data))
        return data, version

    def write_if_version(self, key: str, data: bytes, expected: Any) -> Any:
        t0 = time.perf_counter()  # a conditional PutObject: the curated partitions' writes
        try:
            return self.inner.write_if_version(key, data, expected)
        finally:
            self._rec("write", key, t0, len(data))

    def exists(self, key: str) -> bool:
        t0 = time.perf_counter()
        try:
            return self.inner.exists(key)
        finally:
            self._rec("exists", key, t0)

    def delete(self, key: str) -> None:
        t0 = time.perf_counter()
        try:
            self.inner.delete(key)
        finally:
            self._rec("delete", key, t0)

    def list_keys(self, prefix: str) -> List[str]:
        t0 = time.perf_counter()
        try:
            return self.inner.list_keys(prefix)
        finally:
            self._rec("list", prefix, t0)

    def list_children(self, prefix: str) -> List[str]:
        t0 = time.perf_counter()
        try:
            return self.inner.list_children(prefix)
        finally:
            self._rec("list", prefix, t0)

    def local_path(self, key: str) -> Optional[str]:
        return self.inner.local_path(key)

    def __getattr__(self, name: str) -> Any:  # anything newer on the Lake interface
        return getattr(self.inner, name)


# -- the tick itself (child process) -----------------------------------------------------------


def child(lake_path: str, base_url: str) -> Dict[str, Any]:
    t_imports = time.perf_counter()
    from binance_lake.sources.rest import pbsync

    pbsync.client_class()  # the first request would import python-binance's sync half: count it as import
    from binance_lake.jobs import sync
    from binance_lake.lake import LocalLake
    imports_s = time.perf_counter() - t_imports
    sync.own_process()  # as `binance-lake sync ...` run as a command does (no pandas import)
    # The transform's imports (pyarrow) run during the extract's waits on Binance, as the CLI's
    # `sync ...` does (sync.preload_transform); the transform below joins the thread first, so
    # whatever of the import is left is counted in the transform's time.
    preload = sync.preload_transform()

    lake = CountingLake(LocalLake(lake_path))
    http: Dict[str, float] = {}
    t0 = time.perf_counter()
    # As the state machine runs it: Extract = Parallel(Candles | Orders), then Transform.
    with ThreadPoolExecutor(max_workers=2) as pool:
        candles_f = pool.submit(sync.sync_candles, timed_client(base_url, http, "candles"), lake, SYMBOL,
                                transform=False)
        orders_f = pool.submit(sync.sync_orders, timed_client(base_url, http, "orders"), lake, SYMBOL,
                               transform=False)
        candles, orders = candles_f.result(), orders_f.result()
    extract_s = time.perf_counter() - t0
    lake_extract_s = sum(op[2] for op in lake.ops)
    t_join = time.perf_counter()
    preload.join()
    from binance_lake.fold import transform_pending
    import_wait_s = time.perf_counter() - t_join

    transformed = transform_pending(lake, ["candles", "orders"], [SYMBOL]).summary()
    work_s = time.perf_counter() - t0
    return {"imports_s": imports_s, "work_s": work_s, "extract_s": extract_s, "transform_s": work_s - extract_s,
            "transform_import_wait_s": import_wait_s,
            "http_s": http, "lake_s": sum(op[2] for op in lake.ops), "lake_extract_s": lake_extract_s,
            "process_to_end_s": time.perf_counter() - T_PROCESS, "ops": lake.ops, "transform": transformed,
            "candles": {k: candles.get(k) for k in ("rows", "raw_files", "requests")},
            "orders": {k: orders.get(k) for k in ("rows", "raw_files", "requests")}}


def timed_client(base_url: str, http: Dict[str, float], name: str) -> Any:
    """A client (one per Lambda) whose request calls add their time to ``http[name]``."""
    from binance_lake.sources.rest.client import BinanceClient, ClientConfig

    client = BinanceClient(ClientConfig(base_url=base_url, api_key=API_KEY, api_secret=API_SECRET))
    http[name] = 0.0
    call = client._call

    def timed_call(*args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return call(*args, **kw)
        finally:
            http[name] += time.perf_counter() - t0

    client._call = timed_call  # type: ignore[method-assign]
    return client


# -- setup and report (parent) ----------------------------------------------------------------


def setup(lake_path: str, emu: Any, now_ms: int, days: int) -> None:
    from bench.genlake import write_days
    from binance_lake.jobs import sync
    from binance_lake.lake import LocalLake
    from binance_lake.sources.rest.client import BinanceClient, ClientConfig
    from binance_lake.times import MS_PER_DAY, day_start

    lake = LocalLake(lake_path)
    today = day_start(now_ms)
    write_days(lake, SYMBOL, today - days * MS_PER_DAY, days - 1)  # all but the last full day
    client = BinanceClient(ClientConfig(base_url=emu.base_url, api_key=API_KEY, api_secret=API_SECRET))
    sync.sync_candles(client, lake, SYMBOL, start=today - MS_PER_DAY, workers=4)  # raw + curated, to now
    emu.call("generate_orders", SYMBOL, 900, now_ms - 2 * MS_PER_DAY, now_ms, seed=3)
    sync.sync_orders(client, lake, SYMBOL)


def classify(ops: List[list]) -> Dict[str, Any]:
    """Counts per op, and which curated partitions were read and written."""
    counts: Dict[str, int] = {}
    for op, _key, _s, _n in ops:
        counts[op] = counts.get(op, 0) + 1

    def parts(kind: str) -> List[str]:
        return sorted({k.rsplit("/", 1)[0] for op, k, _s, _n in ops if op == kind and k.startswith("curated/")
                       and k.endswith(".parquet")})

    return {"counts": counts, "curated_read": parts("read"), "curated_written": parts("write"),
            "bytes_read": sum(n for op, _k, _s, n in ops if op == "read"),
            "bytes_written": sum(n for op, _k, _s, n in ops if op == "write"),
            "objects_written": sum(1 for op, *_ in ops if op == "write")}


def run_tick(lake_path: str, base_url: str) -> Dict[str, Any]:
    from bench.common import last_json_line, run_timed

    wall, proc = run_timed([sys.executable, __file__, "--child", "--lake", lake_path, "--base-url", base_url])
    out = last_json_line(proc.stdout)
    out["wall_s"] = wall
    out["io"] = classify(out.pop("ops"))
    return out


def report(ticks: List[Dict[str, Any]], days: int) -> str:
    from bench.common import goal, machine, secs, table

    med = sorted(ticks, key=lambda t: t["wall_s"])[len(ticks) // 2]
    io = med["io"]
    touched = set(io["curated_written"])
    only_touched = set(io["curated_read"]) <= touched
    startup = med["wall_s"] - med["work_s"]

    def share(x: float) -> str:
        return f"{x / med['wall_s']:.0%}"

    rows = [["whole tick (fresh process)", secs(med["wall_s"]), "100%"],
            ["imports before the first request (binance_lake, python-binance sync client)", secs(med["imports_s"]),
             share(med["imports_s"])],
            ["interpreter start and exit (machine-load dependent)", secs(startup - med["imports_s"]),
             share(startup - med["imports_s"])],
            ["extract: Parallel(candles, orders), wall", secs(med["extract_s"]), share(med["extract_s"])],
            ["- HTTP inside the candles / orders clients", f"{secs(med['http_s']['candles'])} / "
             f"{secs(med['http_s']['orders'])}", ""],
            ["- lake I/O during extract (raw + markers, fsync)", secs(med["lake_extract_s"]), ""],
            ["transform (pending raw -> curated Parquet; pyarrow import left after the extract)",
             secs(med["transform_s"]), share(med["transform_s"])],
            ["- lake I/O during transform", secs(med["lake_s"] - med["lake_extract_s"]), ""]]
    walls = ", ".join(secs(t["wall_s"]) for t in ticks)
    return "\n".join([
        f"## 2. The 5-minute tick on a lake holding a year ({days} daily partitions)", "",
        f"Incremental `sync candles` + `sync orders` + transform in one fresh process, emulator with 50 ms "
        f"latency; {len(ticks)} ticks ({walls}), median shown; {machine()}.", "",
        table(["part", "time", "share"], rows), "",
        f"- work after imports: {secs(med['work_s'])}; candles {med['candles']['rows']} rows in "
        f"{med['candles']['requests']} requests, orders {med['orders']['rows']} rows in "
        f"{med['orders']['requests']} requests (each includes exchangeInfo and time); the orders sync stores "
        "the current state of every order still on the book (/openOrders: refresh non-final orders), so it "
        "rewrites the partitions of the days those orders were created.",
        f"- goal < 1 s for the whole tick: {goal(med['wall_s'] < 1.0)}; after imports (a warm Lambda): "
        f"{goal(med['work_s'] < 1.0)}.",
        f"- lake operations: {io['counts']}; {io['objects_written']} objects written "
        f"({io['bytes_written'] / 1024:.0f} KiB), {io['bytes_read'] / 1024:.0f} KiB read.",
        f"- curated partitions written: {', '.join(p.split('curated/')[1] for p in io['curated_written'])}; "
        f"read: {len(io['curated_read'])}, all among those written: {goal(only_touched)} "
        f"(the lake holds {days}+ candle partitions; nothing else was read or rewritten).",
    ])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 ticks instead of 7")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lake")
    ap.add_argument("--base-url")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.lake, args.base_url), default=str))
        return 0
    from bench.common import write_result
    from bench.emuproc import REALISTIC, EmulatorProcess
    from binance_lake.times import parse_time

    days, n = 365, 3 if args.quick else 7
    now = parse_time("2025-06-30T12:00:30Z")
    lake_path = tempfile.mkdtemp(prefix="bench-tick-")
    ticks = []
    with EmulatorProcess(now_ms=now, seed=0, **REALISTIC) as emu:
        emu.call("add_api_key", API_KEY, API_SECRET)
        setup(lake_path, emu, now, days)
        for i in range(n):
            now += TICK_MS
            emu.call("set_now", now)
            emu.call("generate_orders", SYMBOL, 3, now - TICK_MS, now, seed=100 + i)
            emu.reset()
            ticks.append(run_tick(lake_path, emu.base_url))
    md = report(ticks, days)
    write_result("tick", md, {"ticks": ticks, "median_wall_s": statistics.median(t["wall_s"] for t in ticks)})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
