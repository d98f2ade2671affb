"""Benchmark: rebuild-and-verify on one machine (the per-partition work each Spark task does).

Builds (in a temp dir) a lake of DAYS days of BTCUSDT 1m candles plus orders from the in-process
emulator, then times ``binance_lake.verify.verify`` over all of it: a healthy lake (every partition
``ok``), then the same lake with one row dropped from every candle partition (every one repaired).
Reports wall seconds, ms per partition and peak RSS; writes bench/results/verify.{md,json}.
Rerun: ``.venv/bin/python bench/bench_verify.py [--days 30]``.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.parquet as pq

from binance_lake import fold
from binance_lake.emulator import Emulator
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake
from binance_lake.sources.rest.client import BinanceClient, ClientConfig
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_date, parse_time
from binance_lake.verify import VerifyOptions, verify

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    days = ap.parse_args().days
    start = parse_time("2024-01-01")
    now = start + days * MS_PER_DAY + 30_000
    emu = Emulator(now_ms=now, seed=1)
    emu.add_api_key("bench-key-0123456789", "bench-secret-0123456789")
    emu.generate_orders("BTCUSDT", 20 * days, start, now - MS_PER_MINUTE, seed=2)
    dates = [ms_to_date(start + i * MS_PER_DAY) for i in range(days)]
    with tempfile.TemporaryDirectory() as tmp, emu.serve() as url:
        lake = LocalLake(tmp)
        client = BinanceClient(ClientConfig(base_url=url, api_key="bench-key-0123456789",
                                            api_secret="bench-secret-0123456789"))
        sync.sync_candles(client, lake, "BTCUSDT", start=start, end=start + days * MS_PER_DAY)
        sync.sync_orders(client, lake, "BTCUSDT")
        runs = {}
        t0 = time.perf_counter()
        healthy = verify(lake, ["BTCUSDT"], "1m", dates, VerifyOptions())
        runs["healthy"] = (time.perf_counter() - t0, healthy.summary())
        for d in dates:
            part = f"curated/candles/interval=1m/symbol=BTCUSDT/date={d}"
            t = pq.read_table(io.BytesIO(lake.read_bytes(f"{part}/part-0.parquet")))
            fold.write_partition(lake, part, t.slice(1), lake.version_of(f"{part}/part-0.parquet"))
        t0 = time.perf_counter()
        broken = verify(lake, ["BTCUSDT"], "1m", dates, VerifyOptions())
        runs["one row dropped per candle day"] = (time.perf_counter() - t0, broken.summary())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {name: {"seconds": round(s, 2), "partitions": summ["partitions"],
                  "ms_per_partition": round(1000 * s / summ["partitions"], 1), "ok": summ["ok"],
                  "repaired": summ["repaired"]} for name, (s, summ) in runs.items()}
    out["peak_rss_mb"] = round(rss_mb)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "verify.json").write_text(json.dumps(out, indent=1))
    lines = [f"## verify ({days} days of BTCUSDT 1m candles + orders, one machine)", "",
             "| lake | partitions | seconds | ms/partition | ok | repaired |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {r['partitions']} | {r['seconds']} | {r['ms_per_partition']} | {r['ok']} | {r['repaired']} |"
              for n, r in out.items() if n != "peak_rss_mb"]
    lines += ["", f"Peak RSS of the whole process (lake build included): {out['peak_rss_mb']} MB.",
              "Rerun: `.venv/bin/python bench/bench_verify.py --days 30`."]
    (RESULTS / "verify.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
