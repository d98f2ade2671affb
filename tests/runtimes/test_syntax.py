"""Each runtime's import closure uses no syntax or standard library newer than its Python.

The closures come from the deployed entry points (Lambda handlers, Glue scripts) with
``modulefinder``, which also follows imports inside functions. vermin checks them against
the runtime's version; the whole core against ``requires-python`` of pyproject.toml (the
local CLI). A control file proves each check does catch newer code.
"""

from __future__ import annotations

import modulefinder
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from tests.runtimes.venvs import GLUE_PYTHON, LAMBDA_PYTHON, REPO

# (runtime, Python it runs, entry points, a module that must be in the closure)
RUNTIMES = [
    ("lambda-extract", LAMBDA_PYTHON, ["lambdas/candles.py", "lambdas/orders.py"],
     "binance_lake/sources/rest/candles.py"),
    ("lambda-transform", LAMBDA_PYTHON, ["lambdas/transform.py"], "binance_lake/fold.py"),
    ("glue5-backfill", GLUE_PYTHON, ["glue_scripts/backfill_spark.py"], "binance_lake/sources/archive.py"),
    ("glue5-verify", GLUE_PYTHON, ["glue_scripts/verify_spark.py"], "binance_lake/verify.py"),
]
# Code that needs a newer Python than the target: 3.12's itertools.batched, 3.14's annotationlib.
NEWER = {"3.9": "from itertools import pairwise\n", "3.11": "from itertools import batched\n",
         "3.13": "import annotationlib\n"}


def closure(entries: List[str]) -> List[Path]:
    finder = modulefinder.ModuleFinder(path=[str(REPO), str(REPO / "lambdas")])
    for entry in entries:
        finder.run_script(str(REPO / entry))
    ours = {Path(m.__file__) for name, m in finder.modules.items() if m.__file__
            and Path(m.__file__).resolve().is_relative_to(REPO) and ".venv" not in Path(m.__file__).parts}
    return sorted(ours | {REPO / e for e in entries})


def vermin(target: str, *paths: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("vermin")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vermin"]
    return subprocess.run([*cmd, f"-t={target}-", "--no-tips", "--violations", *map(str, paths)],
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("name,python,entries,must", RUNTIMES, ids=[r[0] for r in RUNTIMES])
def test_runtime_closure_fits_its_python(name: str, python: str, entries: List[str], must: str,
                                         tmp_path: Path) -> None:
    files = closure(entries)
    assert REPO / must in files, f"{name}: modulefinder missed {must}"
    result = vermin(python, *files)
    assert result.returncode == 0, f"{name} needs a newer Python than {python}:\n{result.stdout}{result.stderr}"
    control = tmp_path / "newer.py"
    control.write_text(NEWER[python])
    assert vermin(python, control).returncode != 0


def test_core_fits_requires_python(tmp_path: Path) -> None:
    declared = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)"', (REPO / "pyproject.toml").read_text())
    assert declared, "pyproject.toml declares requires-python"
    target = declared.group(1)
    result = vermin(target, REPO / "binance_lake")
    assert result.returncode == 0, result.stdout + result.stderr
    control = tmp_path / "newer.py"
    control.write_text(NEWER[target])
    assert vermin(target, control).returncode != 0
