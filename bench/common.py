"""Shared helpers for the benchmarks: timing, fresh processes, result sections.

Each benchmark writes ``bench/results/<name>.md`` (a section of docs/benchmarks.md) and
``bench/results/<name>.json`` (the raw figures, read by docs/cost.md's inputs and by
run_all.py). Nothing here asserts a timing: benchmarks report, tests check behaviour.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


def cli_command() -> List[str]:
    """The installed ``binance-lake`` console script next to this interpreter."""
    script = BIN / "binance-lake"
    return [str(script)] if script.exists() else [sys.executable, "-m", "binance_lake.cli"]


def run_timed(cmd: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None
              ) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of a fresh process, and its result (raises with stderr if it failed)."""
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=str(cwd or ROOT))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc


def last_json_line(text: str) -> Dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON summary in output: {text[-500:]}")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def write_result(name: str, markdown: str, data: Dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return RESULTS / f"{name}.md"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def secs(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def goal(ok: bool) -> str:
    return "met" if ok else "**missed**"
