"""Benchmark: full-history archive backfill (BTCUSDT-sized) vs pyarrow's own CSV -> Parquet.

Generates (once, cached under bench/out/) an archive the size of BTCUSDT's whole 1m history
from the emulator's ground truth: monthly zips from 2017-08 (µs from 2025, like Binance)
with .CHECKSUM files, plus the unzipped CSVs for the baseline. Then, in fresh processes:

* ours: ``binance-lake backfill --no-rest`` from a local HTTP archive server: download,
  sha256 verify, store the zip, transform (same checks as REST), one curated Parquet
  per UTC day, sidecars, exchange gaps;
* baseline (the ceiling): ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table`` of the
  same CSVs from local disk, one Parquet per month, no verification, no validation.

Reports wall time, rows/s and peak RSS of each; writes bench/results/backfill.{md,json}.
Rerun: ``.venv/bin/python bench/backfill.py [--months 110] [--workers 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from binance_lake.emulator import Emulator  # noqa: E402
from binance_lake.emulator import archive as fake  # noqa: E402

SYMBOL = "BTCUSDT"
FIRST_MONTH = "2017-08"
RESULTS = ROOT / "bench" / "results"
GOAL_RATIO, GOAL_RSS_MB = 1.5, 1024

# Peak RSS of one child process (ru_maxrss of the wrapper's children is exactly that child).
_WRAP = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
         "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); w = time.perf_counter() - t; "
         "sys.stderr.write(p.stderr[-3000:]); print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''); "
         "print(w); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")

_BASELINE = """
import sys, pathlib, pyarrow as pa, pyarrow.csv as c, pyarrow.parquet as pq
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
names = ["open_time","open","high","low","close","volume","close_time","quote_volume","count",
         "taker_buy_volume","taker_buy_quote_volume","ignore"]
types = {n: (pa.int64() if n in ("open_time", "close_time", "count") else pa.string()) for n in names}
rows = 0
for f in sorted(src.glob("*.csv")):
    t = c.read_csv(f, read_options=c.ReadOptions(column_names=names),
                   convert_options=c.ConvertOptions(column_types=types))
    pq.write_table(t, dst / (f.stem + ".parquet"), compression="zstd")
    rows += t.num_rows
print(rows)
"""


def months(n: int) -> List[str]:
    y, m = int(FIRST_MONTH[:4]), int(FIRST_MONTH[5:])
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def generate(out: Path, n: int) -> Tuple[Path, Path, int]:
    """Archive tree + unzipped CSVs for ``n`` months; cached (a .complete marker)."""
    base = out / f"archive-{n}m"
    archive, csvs, done = base / "archive", base / "csv", base / ".complete"
    if done.exists():
        return archive, csvs, int(done.read_text())
    shutil.rmtree(base, ignore_errors=True)
    csvs.mkdir(parents=True)
    periods = months(n)
    end = fake.period_range(periods[-1])[1]
    emu = Emulator(now_ms=end + 86_400_000, seed=7)  # BTCUSDT listed 2017-08-17 as on Binance
    rows, t0 = 0, time.time()
    for i, period in enumerate(periods):
        s, e = fake.period_range(period)
        klines = emu.klines(SYMBOL, "1m", s, e)
        path = fake.write_file(archive, SYMBOL, "1m", period, klines)
        with zipfile.ZipFile(path) as zf:
            (csvs / (path.stem + ".csv")).write_bytes(zf.read(path.stem + ".csv"))
        rows += len(klines)
        print(f"generated {period} ({i + 1}/{n}, {rows:,} rows, {time.time() - t0:.0f}s)", file=sys.stderr)
    done.write_text(str(rows))
    return archive, csvs, rows


def measured(cmd: List[str]) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    last, wall, rss_kb = proc.stdout.strip().splitlines()[-3:]
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kb) / 1024, "output": last}


def run(n: int, workers: int, out: Path) -> Dict[str, Any]:
    archive, csvs, rows = generate(out, n)
    end = fake.period_range(months(n)[-1])[1]
    end_arg = time.strftime("%Y-%m-%d", time.gmtime(end / 1000))
    work = Path(tempfile.mkdtemp(prefix="backfill-bench-", dir=str(out)))
    try:
        base_dst = work / "baseline"
        base_dst.mkdir()
        baseline = measured([sys.executable, "-c", _BASELINE, str(csvs), str(base_dst)])
        ours_cmd = [str(Path(sys.executable).parent / "binance-lake"), "backfill", "--symbol", SYMBOL,
                    "--start", FIRST_MONTH, "--end", end_arg, "--no-rest", "--workers", str(workers), "--json"]
        with fake.ArchiveServer(archive).serve() as url:
            ours = measured([*ours_cmd, "--lake", str(work / "lake"), "--archive-url", url])
        summary = json.loads(ours["output"])["symbols"][0]
        assert summary["rows"] == rows == int(baseline["output"]), (summary["rows"], rows, baseline["output"])
        shown = [os.path.relpath(ours_cmd[0], ROOT), *ours_cmd[1:], "--lake", "<tmp>", "--archive-url",
                 "http://127.0.0.1:<port>"]  # no machine paths in the committed results
        printed = " ".join(shown)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"months": n, "rows": rows, "workers": workers, "ours": ours, "baseline": baseline,
            "ratio": ours["wall_s"] / baseline["wall_s"], "files": summary["files_curated"],
            "command": printed, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                                           f"Python {platform.python_version()}"}


def markdown(r: Dict[str, Any]) -> str:
    o, b = r["ours"], r["baseline"]
    ok_t, ok_m = r["ratio"] <= GOAL_RATIO, o["peak_rss_mb"] < GOAL_RSS_MB
    rows = [("ours: `binance-lake backfill` (HTTP, sha256, zips kept, validated, 1 Parquet/day)",
             f"{o['wall_s']:.1f} s", f"{r['rows'] / o['wall_s']:,.0f}", f"{o['peak_rss_mb']:.0f} MB"),
            ("baseline: pyarrow `read_csv` + `write_table` (local CSVs, 1 Parquet/month)",
             f"{b['wall_s']:.1f} s", f"{r['rows'] / b['wall_s']:,.0f}", f"{b['peak_rss_mb']:.0f} MB")]
    table = "\n".join(["| run | wall | rows/s | peak RSS |", "|---|---|---|---|"]
                      + [f"| {' | '.join(x)} |" for x in rows])
    return f"""## Archive backfill (full BTCUSDT history)

{r['months']} monthly archive files, {r['rows']:,} 1m candles (generated from the emulator's ground truth,
µs timestamps from 2025 like Binance), served by a local HTTP server; {r['workers']} workers; {r['machine']}.

{table}

- Ratio to the pyarrow ceiling: **{r['ratio']:.2f}x** (goal ≤ {GOAL_RATIO}x: {'met' if ok_t else '**missed**'});
  peak RSS {o['peak_rss_mb']:.0f} MB (goal < {GOAL_RSS_MB} MB: {'met' if ok_m else '**missed**'}).
- Command: `{r['command']}`; rerun everything with `.venv/bin/python bench/backfill.py --months {r['months']}`.
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--months", type=int, default=110)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = p.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, 'bench/backfill.py', *sys.argv[1:]])}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    r = run(args.months, args.workers, out)
    md = markdown(r)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backfill.md").write_text(md)
    (RESULTS / "backfill.json").write_text(json.dumps(r, indent=2) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
