"""Virtual environments that reproduce a deployed runtime, built once per requirements hash.

A runtime test runs the core under exactly the interpreter version and library pins of a
deployed runtime (docs/runtimes.md). Its venv is built from the requirements files the
deployment itself reads (single source: bump a pin there and the next test run builds the
new set and runs the core under it). Building costs a pip install from the registry, so the
venv is cached under ``.venv/runtime-envs/<name>-<hash>`` (gitignored), keyed by the
interpreter version and the content of every requirements file it was built from; a file
lock makes concurrent pytest processes build it once.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from py_cdk.closure import core_closure

REPO = Path(__file__).resolve().parents[2]
CACHE_ENV = "BINANCE_LAKE_RUNTIME_ENVS"  # override the cache directory (e.g. a CI cache path)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or REPO / ".venv" / "runtime-envs")


def _version_of(exe: str) -> Optional[str]:
    """``3.13.0`` if ``exe`` runs; None for a missing binary or a pyenv shim of an inactive version."""
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _pyenv_roots() -> List[Path]:
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30, check=False)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    return roots


def find_python(minor: str) -> Optional[Tuple[str, str]]:
    """(path, full version) of a working ``python<minor>`` (e.g. "3.13"), or None.

    PATH first (a pyenv shim of a version that is not active fails to run and is skipped),
    then pyenv's versions directory.
    """
    candidates = [shutil.which(f"python{minor}") or ""]
    for root in _pyenv_roots():
        candidates += sorted(glob.glob(str(root / "versions" / f"{minor}*" / "bin" / f"python{minor}")), reverse=True)
    for exe in candidates:
        version = _version_of(exe) if exe else None
        if version and version.startswith(minor + "."):
            return exe, version
    return None


def require_python(minor: str) -> Tuple[str, str]:
    """The interpreter, or skip (locally) / fail (CI=true): CI must test the deployed contract."""
    found = find_python(minor)
    if found:
        return found
    reason = (f"no Python {minor} interpreter (python{minor} on PATH or in pyenv's versions): the runtime "
              f"contract tests need it; install it, e.g. `pyenv install {minor}` (docs/runtimes.md)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Step:
    """One ``pip install`` into the venv: a requirements file (repo-relative) or literal specs."""

    requirements: Optional[str] = None
    specs: Tuple[str, ...] = ()
    no_deps: bool = False
    only_binary: bool = True  # wheels only, as the deployments install (pyspark is an sdist: False)

    def args(self) -> List[str]:
        args = ["--no-deps"] if self.no_deps else []
        args += ["--only-binary=:all:"] if self.only_binary else []
        if self.requirements:
            args += ["-r", str(REPO / self.requirements)]
        return args + list(self.specs)

    def fingerprint(self) -> str:
        body = (REPO / self.requirements).read_text() if self.requirements else ""
        return repr((self.requirements, body, self.specs, self.no_deps, self.only_binary))


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    python: str  # minor version, e.g. "3.13"
    steps: Tuple[Step, ...]


@dataclass(frozen=True)
class RuntimeEnv:
    spec: RuntimeSpec
    path: Path
    python_version: str

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def run(self, args: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 300,
            cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        # -s: no user site-packages; cwd away from the checkout (``-m``/``-c`` put cwd on sys.path):
        # only the venv and the PYTHONPATH the caller gives are importable.
        return subprocess.run([str(self.python), "-s", *args], env=env, cwd=cwd or self.path, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def installed(self) -> Dict[str, str]:
        """{normalised distribution name: version} of everything in the venv."""
        code = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name'].lower()"
                ".replace('_', '-'): d.version for d in m.distributions()}))")
        out = self.run(["-c", code])
        assert out.returncode == 0, out.stderr
        import json

        return json.loads(out.stdout)


def _key(spec: RuntimeSpec, version: str) -> str:
    digest = hashlib.sha256(repr((spec.name, version, [s.fingerprint() for s in spec.steps])).encode())
    return digest.hexdigest()[:16]


def ensure_env(spec: RuntimeSpec) -> RuntimeEnv:
    """The cached venv for ``spec``, built (under a file lock) if missing."""
    exe, version = require_python(spec.python)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{spec.name}-{_key(spec, version)}"
    with open(root / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / ".complete").exists():
            _build(spec, exe, path)
    return RuntimeEnv(spec, path, version)


def _build(spec: RuntimeSpec, exe: str, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)  # a build that died half-way
    _check(subprocess.run([exe, "-m", "venv", str(path)], capture_output=True, text=True, check=False),
           f"creating the {spec.name} venv")
    python = str(path / "bin" / "python")
    for step in spec.steps:
        pip = subprocess.run([python, "-s", "-m", "pip", "install", "--quiet", "--no-input",
                              "--disable-pip-version-check", *step.args()],
                             capture_output=True, text=True, check=False, timeout=900)
        _check(pip, f"pip install {' '.join(step.args())} into the {spec.name} venv")
    (path / ".complete").write_text("")


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def pins(requirements: str) -> Dict[str, str]:
    """{name: version} of the ``name==version`` lines of a repo requirements file."""
    out = {}
    for line in (REPO / requirements).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def bundle_dir(target: Path, handlers: Sequence[str] = ()) -> Path:
    """What a deployment package carries of ours: with handlers, those modules and exactly the
    core files they import (as py_cdk/bundling.py packages a Lambda); without, the whole core
    (the Glue jobs' core wheel)."""
    if not handlers:
        shutil.copytree(REPO / "binance_lake", target / "binance_lake",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return target
    entries = [REPO / "lambdas" / name for name in handlers]
    for path in core_closure(entries):
        (target / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.relative_to(REPO))
    for entry in entries:
        shutil.copy2(entry, target / entry.name)
    return target


def python_env(pythonpath: Path, **extra: str) -> Dict[str, str]:
    """A clean environment for a runtime process: no dev venv, no real AWS credentials."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "JAVA_HOME")}
    return {**keep, "PYTHONPATH": str(pythonpath), "PYTHONNOUSERSITE": "1", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1", **extra}


DEV_PYTHON = sys.executable


# -- the deployed runtimes (docs/runtimes.md) ---------------------------------------------------

LAMBDA_PYTHON = "3.13"  # py_cdk/bundling.py: lambda_.Runtime.PYTHON_3_13, arm64
GLUE_PYTHON = "3.11"  # Glue 5.0 (tests/runtimes/glue5-provided.txt names the source)
GLUE_PROVIDED = "tests/runtimes/glue5-provided.txt"
GLUE_REQUIREMENTS = "glue_scripts/requirements-glue.txt"
GLUE_SPARK = "pyspark==3.5.4"  # Glue 5.0 runs Spark 3.5.4 (AWS Glue release notes, "AWS Glue 5.0")

# The Lambda venvs install the bundles' lock files (every wheel sha256-checked; the locks carry the
# x86_64 hashes of the same versions), so the contract is tested on exactly the deployed closure.
LAMBDA_EXTRACT = RuntimeSpec("lambda-extract", LAMBDA_PYTHON, (Step("lambdas/requirements.lock"),))
LAMBDA_TRANSFORM = RuntimeSpec("lambda-transform", LAMBDA_PYTHON, (Step("lambdas/requirements-transform.lock"),))
# Glue 5.0 with nothing of ours: what the job would run on without --additional-python-modules.
GLUE5_STOCK = RuntimeSpec("glue5-stock", GLUE_PYTHON, (Step(GLUE_PROVIDED, no_deps=True),))
# Glue 5.0 as deployed: the preinstalled set, Spark, then our pinned wheels over it (--no-deps:
# requirements-glue.txt pins its whole closure, which is what the jobs install from S3).
GLUE5 = RuntimeSpec("glue5", GLUE_PYTHON, (Step(GLUE_PROVIDED, no_deps=True),
                                           Step(specs=(GLUE_SPARK,), only_binary=False),
                                           Step(GLUE_REQUIREMENTS, no_deps=True)))
