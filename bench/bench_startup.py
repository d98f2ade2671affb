"""Benchmark 5: start-up. ``binance-lake --help`` and each handler's cold import, in fresh
processes (median of N). Handler modules are a list, so new handlers are measured as they
land; a module that fails to import (e.g. a placeholder) is reported, not hidden.

Goals (issue 8): CLI under 300 ms, handler cold import under 400 ms. The biggest imports are
listed from ``python -X importtime`` so a miss names its cause.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, cli_command, goal, machine, secs, table, write_result

# Handler files, imported the way their runtime does: the file's directory is the code root
# (Lambda's asset is lambdas/, the Glue job runs the script with its directory on sys.path).
HANDLERS = ["lambdas/candles.py", "lambdas/orders.py", "lambdas/transform.py"]
# What a handler's first invocation imports whatever its module does at import time: the
# extract path defers python-binance to the first request, so a cold start pays it anyway.
CORE_PATHS = ["binance_lake.jobs", "binance_lake.jobs, binance.client", "binance_lake.fold",
              "binance_lake.query, duckdb"]
CLI_GOAL_S, HANDLER_GOAL_S = 0.300, 0.400


def timed(cmd: List[str], n: int) -> Tuple[Optional[float], str]:
    """Median wall time of ``n`` fresh runs (after one warm-up for the OS file cache)."""
    import time

    times, error = [], ""
    for i in range(n + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        if proc.returncode != 0:
            error = (proc.stderr.strip().splitlines() or ["failed"])[-1][:160]
            return None, error
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), error


def import_cmd(module: str) -> List[str]:
    """``import a, b`` for module names; a ``dir/file.py`` path is imported from its own directory."""
    if module.endswith(".py"):
        root, name = str(ROOT / Path(module).parent), Path(module).stem
        return [sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r}); import {name}"]
    return [sys.executable, "-c", f"import {module}"]


def top_imports(cmd: List[str], k: int = 6) -> List[Tuple[str, float]]:
    """The k slowest top-level packages by cumulative import time (``-X importtime``)."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, cwd=str(ROOT))
    cumulative: Dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if name.startswith(" ") and not name.startswith("  "):  # depth-1 entries only
            top = name.strip().split(".")[0]
            cumulative[top] = max(cumulative.get(top, 0.0), int(parts[1]) / 1e6)
    return sorted(cumulative.items(), key=lambda kv: -kv[1])[:k]


def cli_python_cmd() -> List[str]:
    # The console script is a tiny wrapper; -X importtime needs the interpreter, same imports.
    return [sys.executable, "-c", "import sys; sys.argv=['binance-lake','--help']; "
            "from binance_lake.cli import main; main()"]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--module", action="append", help="handler modules to import (default: lambdas + glue)")
    args = ap.parse_args(argv)
    n = args.runs or (5 if args.quick else 11)
    rows: List[List[Any]] = []
    data: Dict[str, Any] = {"runs": n}
    bare, _ = timed([sys.executable, "-c", "pass"], n)
    rows.append(["`python -c pass` (interpreter floor)", secs(bare), "", ""])
    cli, err = timed([*cli_command(), "--help"], n)
    rows.append(["`binance-lake --help`", secs(cli), f"< {secs(CLI_GOAL_S)}",
                 goal(cli is not None and cli < CLI_GOAL_S) if cli else f"failed: {err}"])
    data["cli_s"], data["bare_s"], data["handlers"] = cli, bare, {}
    for module in args.module or HANDLERS:
        t, err = timed(import_cmd(module), n)
        data["handlers"][module] = {"s": t, "error": err}
        rows.append([f"cold import `{module}`", secs(t), f"< {secs(HANDLER_GOAL_S)}",
                     goal(t < HANDLER_GOAL_S) if t is not None else f"not measurable: {err}"])
    for modules in CORE_PATHS:
        t, err = timed(import_cmd(modules), n)
        data["handlers"][modules] = {"s": t, "error": err}
        rows.append([f"core path `import {modules}`", secs(t), f"< {secs(HANDLER_GOAL_S)}",
                     goal(t < HANDLER_GOAL_S) if t is not None else f"failed: {err}"])
        if "binance.client" in modules:
            data["binance_client_top_imports"] = top_imports(import_cmd(modules))
    top = top_imports(cli_python_cmd())
    data["cli_top_imports"] = top
    md = "\n".join([
        "## 5. Start-up (fresh processes)", "",
        f"Median of {n} runs after a warm-up; {machine()}.", "",
        table(["what", "median wall", "goal", "result"], rows), "",
        "Slowest imports of `binance-lake --help` (cumulative, `-X importtime`): "
        + ", ".join(f"`{name}` {secs(s)}" for name, s in top) + ".",
        "Slowest imports of the extract path with python-binance: "
        + ", ".join(f"`{name}` {secs(s)}" for name, s in data.get("binance_client_top_imports", [])) + ".",
        "The core keeps python-binance (and with it aiohttp), pyarrow and duckdb out of module scope, "
        "so `--help` and a handler's import stay small; the first Binance request of a cold Lambda "
        "pays the python-binance import (row `binance_lake.jobs, binance.client`).",
    ])
    write_result("startup", md, data)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
