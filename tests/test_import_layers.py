"""The core's layers hold: `lint-imports` checks the contracts in pyproject.toml [tool.importlinter]
(entry points -> jobs -> verify/export -> fold/query -> sources -> columns -> storage -> base; the
extract side never imports pyarrow; the core never imports aws/cli/emulator; no import cycle)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _lint_imports(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_every_import_contract_is_kept() -> None:
    proc = _lint_imports()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 kept, 0 broken" in proc.stdout


def test_a_layer_violation_is_caught(tmp_path: Path) -> None:
    """The contracts bite: a copy of the core where the layout module imports the fold breaks them."""
    shutil.copytree(REPO / "binance_lake", tmp_path / "binance_lake", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    layout = tmp_path / "binance_lake" / "layout.py"
    layout.write_text(layout.read_text() + "\nfrom binance_lake import fold  # noqa\n")
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command(['--no-cache']))"],
                          cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert "binance_lake.layout -> binance_lake.fold" in proc.stdout
