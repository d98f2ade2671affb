"""Which files of the core a deployment package needs: the import closure of its entry points.

Standard library only (the runtime-contract tests use it too). Every ``import`` and
``from ... import`` of ``binance_lake`` in a file counts, at module level or inside a
function (a lazy import still runs in production), and importing ``binance_lake.a.b`` also
runs the ``__init__`` of ``binance_lake`` and ``binance_lake.a``. Third-party imports are
the requirements' business, not the closure's.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Set

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORE_PACKAGE = "binance_lake"
CORE_DIR = PROJECT_ROOT / CORE_PACKAGE


def module_file(name: str) -> Optional[Path]:
    """``binance_lake.aws.settings`` -> its file (module or package ``__init__``), if it exists."""
    parts = name.split(".")
    if parts[0] != CORE_PACKAGE:
        return None
    base = CORE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    rel = path.resolve().relative_to(PROJECT_ROOT).with_suffix("")
    return ".".join(rel.parts[:-1])  # a module's package; an __init__'s package is its directory


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but the bodies of ``if TYPE_CHECKING:``: those imports never run (annotations
    only), like import-linter's ``exclude_type_checking_imports`` in pyproject.toml."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imported_names(path: Path) -> Set[str]:
    """Every module name ``path`` may import (``from a import b`` gives ``a`` and ``a.b``)."""
    names: Set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the file's package
                package = _package_of(path).split(".")
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def core_closure(entry_files: Iterable[Path]) -> List[Path]:
    """The core files the entry points import, directly or through each other, sorted."""
    found: Set[Path] = set()
    todo = [Path(p) for p in entry_files]
    while todo:
        for name in imported_names(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c runs a/__init__, a/b/__init__, then a/b/c
                path = module_file(".".join(parts[:i]))
                if path is not None and path not in found:
                    found.add(path)
                    todo.append(path)
    return sorted(found)


def boto3_services(files: Iterable[Path]) -> Set[str]:
    """The AWS services the files create clients for: ``boto3.client("s3")`` gives ``s3``.

    The Lambda bundles keep only these services' botocore models (py_cdk/bundling.py), so a
    client whose service is not a string literal is an error here, not a model missing at run time.
    """
    services: Set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(Path(path).read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "client" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("boto3", "session")):
                continue
            first = node.args[0] if node.args else next((k.value for k in node.keywords
                                                         if k.arg == "service_name"), None)
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                raise ValueError(f"{path}:{node.lineno}: boto3 client for a non-literal service; the "
                                 "bundles keep only the botocore models of services named literally")
            services.add(first.value)
    return services
