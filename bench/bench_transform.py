"""Benchmark 3: transform, raw JSON -> curated Parquet, rows per second, vs plain pyarrow.

Raw files come from a real sync against the emulator (no latency: only the transform is
measured). Ours: ``transform_pending`` on a copy of that raw zone (validation, decimal
casts, invariants, dedupe, atomic fsynced writes). Baseline: the same files, ``json.loads``,
columns to the same Arrow types (decimal128 from strings), one ``pq.write_table`` per day,
no checks, no fsync. A cProfile of ours names where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, secs, table, write_result
from binance_lake.times import MS_PER_DAY, parse_time

SYMBOL = "BTCUSDT"
END = parse_time("2024-01-01")


def make_raw(days: int) -> str:
    from binance_lake.emulator import Emulator
    from binance_lake.jobs import sync
    from binance_lake.lake import LocalLake
    from binance_lake.sources.rest.client import BinanceClient, ClientConfig

    path = tempfile.mkdtemp(prefix="bench-transform-raw-")
    emu = Emulator(now_ms=END + MS_PER_DAY, weight_limit=10**9)
    with emu.serve() as url:
        client = BinanceClient(ClientConfig(base_url=url))
        sync.sync_candles(client, LocalLake(path), SYMBOL, start=END - days * MS_PER_DAY, end=END, workers=4,
                          transform=False)
    return path


def ours(raw: str) -> Dict[str, Any]:
    from binance_lake.fold import transform_pending
    from binance_lake.lake import LocalLake

    work = tempfile.mkdtemp(prefix="bench-transform-ours-")
    shutil.copytree(raw, work, dirs_exist_ok=True)
    t0 = time.perf_counter()
    r = transform_pending(LocalLake(work), ["candles"], [SYMBOL]).summary()
    wall = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "rows": r["rows_written"], "partitions": r["partitions"]}


def baseline(raw: str) -> Dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = Path(tempfile.mkdtemp(prefix="bench-transform-base-"))
    files = sorted(Path(raw, "raw", "klines").rglob("*.json"))
    t0 = time.perf_counter()
    by_day: Dict[str, List[list]] = defaultdict(list)
    for f in files:
        by_day[f.parent.name].extend(json.loads(f.read_bytes())["data"])
    dec, ts, rows = pa.decimal128(38, 8), pa.timestamp("ms", tz="UTC"), 0
    for day, data in by_day.items():
        cols = list(zip(*data))
        arrays = [pa.array(cols[i], pa.int64()).cast(ts) if i in (0, 6) else pa.array(cols[i], pa.int64())
                  if i == 8 else pc.cast(pa.array(cols[i], pa.string()), dec) for i in range(11)]
        t = pa.table(arrays, names=[f"c{i}" for i in range(11)])
        buf = io.BytesIO()
        pq.write_table(t, buf, compression="zstd")
        (out / f"{day}.parquet").write_bytes(buf.getvalue())
        rows += t.num_rows
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "rows": rows, "partitions": len(by_day)}


def profile(raw: str, top: int = 12) -> str:
    from binance_lake.fold import transform_pending
    from binance_lake.lake import LocalLake

    work = tempfile.mkdtemp(prefix="bench-transform-prof-")
    shutil.copytree(raw, work, dirs_exist_ok=True)
    prof = cProfile.Profile()
    prof.runcall(transform_pending, LocalLake(work), ["candles"], [SYMBOL])
    shutil.rmtree(work, ignore_errors=True)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls"))
    root = str(Path(__file__).resolve().parent.parent) + "/"
    # no machine paths in the report: project-relative, and stdlib/site-packages shortened
    return "\n".join(re.sub(r"\S*/lib/python3\.\d+/", "", ln.replace(root, "")) for ln in lines[start:])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 days instead of 90")
    args = ap.parse_args(argv)
    days = 30 if args.quick else 90
    raw = make_raw(days)
    a, b = ours(raw), baseline(raw)
    prof = profile(raw)
    shutil.rmtree(raw, ignore_errors=True)
    ra, rb = a["rows"] / a["wall_s"], b["rows"] / b["wall_s"]
    md = "\n".join([
        f"## 3. Transform: raw JSON -> curated Parquet ({a['rows']:,} candles, {a['partitions']} partitions)", "",
        f"{machine()}.", "",
        table(["run", "wall", "rows/s", "ratio"], [
            ["ours: `transform_pending` (validate, exact decimals, dedupe, atomic fsynced writes)",
             secs(a["wall_s"]), f"{ra:,.0f}", f"{rb / ra:.2f}x slower" if rb > ra else f"{ra / rb:.2f}x faster"],
            ["plain pyarrow: json.loads + same types + write_table, no checks, no fsync",
             secs(b["wall_s"]), f"{rb:,.0f}", "1.00x"]]), "",
        "Where ours spends its time (cProfile, top functions by own time):", "", "```", prof, "```",
    ])
    write_result("transform", md, {"days": days, "ours": a, "baseline": b, "ours_rows_per_s": ra,
                                   "baseline_rows_per_s": rb})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
