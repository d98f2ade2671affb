"""The large reliability run behind docs/reliability.md (CI runs a smaller seeded sample).

    .venv/bin/python bench/reliability.py            # large: ~5-10 minutes on 2 cores
    .venv/bin/python bench/reliability.py --quick    # the CI-sized sample

Writes bench/results/reliability.{md,json}; the table is pasted into docs/reliability.md.
Every scenario compares the curated lake with the emulator's ground truth row by row.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability import scenarios as S  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def storms(tmp: Path, seeds: int, days: int, orders: int) -> List[S.Outcome]:
    out = [S.storm_candles(100 + i, 0.3, days, tmp) for i in range(seeds)]
    return out + [S.storm_orders(200 + i, 0.3, orders, tmp) for i in range(seeds)]


def crashes(tmp: Path, per_point: int) -> List[S.Outcome]:
    rng, out = random.Random(6), []
    emu = S.new_emulator(seed=5, orders=1600)
    with emu.serve() as url:
        for table, points in S.REACHED.items():
            for point, reached in points.items():
                for n in sorted(rng.sample(range(1, reached + 1), min(per_point, reached))):
                    out.append(S.crash_and_rerun(table, point, n, tmp, emu, url))
    return out


def concurrent(tmp: Path, rounds: int) -> List[S.Outcome]:
    out = []
    for i in range(rounds):
        emu = S.new_emulator(300 + i, orders=1800)
        lake_dir = tmp / f"concurrent-{i}"
        with emu.serve() as url:
            runs = S.processes_together([S.candle_args(url, lake_dir), S.candle_args(url, lake_dir),
                                         S.order_args(url, lake_dir), S.order_args(url, lake_dir),
                                         ["transform", "--lake", str(lake_dir)]])
        lake = S.LocalLake(str(lake_dir))
        o = S.compare_candles(f"5 processes at once #{i}", lake, emu, S.MAR1, S.MAR1 + 2 * S.MS_PER_DAY)
        S._fold(o, S.compare_orders("", lake, emu))
        o.runs, o.changed = len(runs), o.changed + sum(rc != 0 for rc, _ in runs)
        out.append(o)
    return out


def bad_inputs() -> Dict[str, Any]:
    """Runs the bad-input tests (one case per row of the issue's table) and counts them."""
    import pytest

    path = ROOT / "tests" / "reliability" / "test_reliability_bad_input.py"
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(path)])
    return {"cases": 13, "passed": code == 0}


def table(rows: List[S.Outcome]) -> Dict[str, Any]:
    return {"scenarios": len(rows), "runs": sum(r.runs for r in rows), "faults": sum(r.faults for r in rows),
            "rows_compared": sum(r.rows_compared for r in rows), "lost": sum(r.lost for r in rows),
            "duplicated": sum(r.duplicated for r in rows), "changed": sum(r.changed for r in rows),
            "self_provoked_418": sum(r.bans_self_provoked for r in rows)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI-sized sample")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    big = not args.quick
    started = time.time()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        groups = {
            "fault storms (rate 0.3, 17 kinds)": storms(tmp, 8 if big else 2, 10 if big else 6, 4000 if big else 2200),
            "weight limit 80 per 2 s": [S.weight_limited(tmp, days=40 if big else 12, orders=2500)],
            "SIGKILL at a point, then rerun": crashes(tmp, 4 if big else 1),
            "2 candle + 2 order syncs + 1 transform at once": concurrent(tmp, 5 if big else 1),
        }
        bad = bad_inputs()
    summary = {name: table(rows) for name, rows in groups.items()}
    summary["bad inputs"] = bad
    summary["seconds"] = round(time.time() - started, 1)
    summary["size"] = "large" if big else "quick"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(summary, indent=1))
    (RESULTS / "reliability.md").write_text(markdown(summary))
    print(markdown(summary))
    ok = all(v["lost"] == v["duplicated"] == v["changed"] == v["self_provoked_418"] == 0
             for k, v in summary.items() if isinstance(v, dict) and "lost" in v) and bad["passed"]
    return 0 if ok else 1


def markdown(s: Dict[str, Any]) -> str:
    head = ("| scenario | scenarios | runs | faults injected | rows compared | rows lost | rows duplicated | "
            "rows changed | self-provoked 418 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(f"| {k} | {v['scenarios']} | {v['runs']} | {v['faults']} | {v['rows_compared']} | {v['lost']} | "
                   f"{v['duplicated']} | {v['changed']} | {v['self_provoked_418']} |\n"
                   for k, v in s.items() if isinstance(v, dict) and "lost" in v)
    bad = s["bad inputs"]
    return (head + body + f"\nBad inputs: {bad['cases']} cases, exact message and exit code, nothing stored "
            f"changed: {'all pass' if bad['passed'] else 'FAILURES'}. Run: {s['size']}, {s['seconds']} s.\n")


if __name__ == "__main__":
    sys.exit(main())
