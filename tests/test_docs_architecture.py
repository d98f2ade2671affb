"""docs/architecture.md cannot drift: every module path and dotted name it gives must exist."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import List, Optional, Set

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"

# binance_lake/fold.py, binance_lake/jobs/, binance_lake/sources/rest/client.py (not "binance_lake/...")
PATH = re.compile(r"\bbinance_lake(?:/[A-Za-z_][A-Za-z0-9_]*)+(?:\.py)?/?")
# binance_lake.fold.read_partition, binance_lake.jobs.sync.rebuild
DOTTED = re.compile(r"\bbinance_lake(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
TEST_FILE = re.compile(r"\btests/[A-Za-z0-9_/]+\.py\b")


@cache
def top_level_names(module: Path) -> Set[str]:
    names: Set[str] = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def path_problem(text: str) -> Optional[str]:
    path = REPO / text.rstrip("/")
    if text.endswith("/") and not path.is_dir():
        return f"{text}: no such package directory"
    if not text.endswith("/") and not (path.is_file() or path.is_dir()):
        return f"{text}: no such file"
    return None


def dotted_problem(name: str) -> Optional[str]:
    """``binance_lake.a.b.c``: the longest prefix that is a module, then a name defined at its top level."""
    parts = name.split(".")
    base = REPO
    for i, part in enumerate(parts):
        package, module = base / part, base / f"{part}.py"
        if (package / "__init__.py").is_file():
            base = package
            continue
        if module.is_file():
            rest = parts[i + 1:]
            if rest and rest[0] not in top_level_names(module):
                return f"{name}: {'.'.join(parts[:i + 1])} defines no {rest[0]!r}"
            return None
        if i == 0:
            return f"{name}: no package {part}"
        init = base / "__init__.py"
        if part in top_level_names(init):
            return None
        return f"{name}: {'.'.join(parts[:i])} has no module or name {part!r}"
    return None


def problems(text: str) -> List[str]:
    found = [path_problem(p) for p in set(PATH.findall(text)) | set(TEST_FILE.findall(text))]
    found += [dotted_problem(n) for n in set(DOTTED.findall(text))]
    return sorted(p for p in found if p)


def test_every_module_named_in_the_architecture_doc_exists():
    text = DOC.read_text(encoding="utf-8")
    named = set(PATH.findall(text)) | set(DOTTED.findall(text))
    assert len(named) >= 20, f"the doc names only {sorted(named)}: did the extraction break?"
    assert problems(text) == []


def test_the_check_catches_a_renamed_module_or_function():
    assert problems("see `binance_lake/transform.py`") == ["binance_lake/transform.py: no such file"]
    assert problems("see `binance_lake/nowhere/`") == ["binance_lake/nowhere/: no such package directory"]
    assert problems("call binance_lake.fold.no_such_function") == [
        "binance_lake.fold.no_such_function: binance_lake.fold defines no 'no_such_function'"]
    assert problems("see binance_lake.nowhere") == [
        "binance_lake.nowhere: binance_lake has no module or name 'nowhere'"]
    assert problems("see tests/test_gone.py") == ["tests/test_gone.py: no such file"]
    assert problems("binance_lake/fold.py binance_lake.jobs.sync.rebuild binance_lake/aws/") == []


def test_readme_links_the_architecture_doc():
    assert "docs/architecture.md" in (REPO / "README.md").read_text(encoding="utf-8")
