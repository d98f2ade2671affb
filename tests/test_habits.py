"""Habits that keep the code so: the README's one-line test command lints and type-checks, CI runs
exactly that line, and what pyproject/requirements declare for the tests is used."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt -e . && "


def _readme_test_command() -> str:
    [line] = [ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith(PREFIX)]
    return line


def test_readme_test_command_lints_type_checks_and_tests():
    steps = _readme_test_command()[len(PREFIX):].split(" && ")
    assert steps == [".venv/bin/ruff check .", ".venv/bin/mypy", ".venv/bin/python -m pytest -q"]


def test_ci_runs_exactly_the_readme_command():
    lines = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == _readme_test_command()


def test_mypy_checks_the_core_and_the_tools_are_pinned():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["tool"]["mypy"]["files"] == ["binance_lake"]
    pins = dict(re.findall(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", (REPO / "requirements-dev.txt").read_text(), re.M))
    assert {"ruff", "mypy"} <= pins.keys()


def test_declared_markers_are_used_and_xdist_is_not_pinned_unused():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    markers = [m.split(":")[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]]
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("*.py"))
    for marker in markers:
        assert f"mark.{marker}" in sources, f"marker {marker!r} is declared but no test uses it"
    if "pytest-xdist" in (REPO / "requirements-dev.txt").read_text():
        assert "-n " in _readme_test_command(), "pytest-xdist is pinned but nothing runs it"
