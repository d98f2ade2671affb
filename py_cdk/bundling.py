"""Docker-free asset bundling: the Lambda package and the core wheel for Glue.

CDK bundles through ``ILocalBundling`` first and only falls back to Docker when
``try_bundle`` returns False; ours never does, so synth needs no Docker. Asset
hashes are computed from the inputs we actually package (sources + pinned
requirements + target platform), so they change exactly when the bundle would.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_deployment as s3deploy

import binance_lake
from py_cdk.closure import boto3_services, core_closure

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
CORE_DIR = PROJECT_ROOT / "binance_lake"
GLUE_SCRIPTS_DIR = PROJECT_ROOT / "glue_scripts"
_THIS_FILE = Path(__file__).resolve()  # a change in how we bundle must change the hash too
_CLOSURE_FILE = _THIS_FILE.with_name("closure.py")

# One place decides the Lambda runtime; pip resolves wheels for the same version/arch.
# python3.13, not 3.14: CI can only prove the bundle works under the deployed Python where an
# interpreter of that version is available (pyenv here has 3.13.0, no 3.14), so we deploy the
# version we test (tests/runtime). python3.13 on Amazon Linux 2023 is supported until its
# deprecation on 2029-06-30 (block create 2029-07-31, block update 2029-08-31): AWS Lambda
# Developer Guide, "Building Lambda functions with Python" (docs.aws.amazon.com/lambda/latest/dg/
# lambda-python.html), runtime table.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAMBDA_PYTHON_VERSION = "3.13"
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
# AL2023 (glibc 2.34) takes manylinux_2_28 wheels; recent pyarrow publishes no manylinux2014 ones.
PIP_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
PIP_PLATFORM = ",".join(PIP_PLATFORMS)  # part of the asset hash
# The same wheels for x86_64: what the runtime-contract tests can run on this kind of machine
# (tests/runtimes builds a stripped bundle for it). The lock files carry hashes for both.
HOST_PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")

CORE_DIST_NAME = "binance_lake"
CORE_VERSION = binance_lake.__version__  # the one definition (pyproject.toml reads it too)
CORE_WHEEL_NAME = f"{CORE_DIST_NAME}-{CORE_VERSION}-py3-none-any.whl"
_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps -> byte-identical wheels


@dataclass(frozen=True)
class LambdaBundle:
    """One Lambda package: pinned requirements + handler modules + the core modules they import.

    Two bundles on purpose: the extractors stay free of pyarrow (small, fast cold start),
    the transform carries pyarrow. Both pin boto3/botocore instead of using the runtime's
    SDK: the lake's conditional writes (PutObject ``IfNoneMatch``, DeleteObject ``IfMatch``)
    need botocore >= 1.35.70, and the SDK a Lambda runtime includes depends on the runtime
    version and region and is updated by AWS on its own schedule ("Runtime-included SDK
    versions", docs.aws.amazon.com/lambda/latest/dg/lambda-python.html). AWS itself recommends
    it: "we recommend you add all of your function's dependencies to your deployment package,
    even if versions of them are included in the Lambda runtime. This includes the Boto3 SDK"
    (AWS Lambda Developer Guide, "Working with .zip file archives for Python Lambda functions",
    docs.aws.amazon.com/lambda/latest/dg/python-package.html).
    """

    name: str
    requirements: str
    handlers: Tuple[str, ...]

    @property
    def requirements_path(self) -> Path:
        return LAMBDAS_DIR / self.requirements

    @property
    def lock_path(self) -> Path:
        """The pins with their hashes, the whole dependency closure (``python -m py_cdk.lock``)."""
        return lock_file(self.requirements_path)

    def handler_files(self) -> List[Path]:
        return [LAMBDAS_DIR / h for h in self.handlers]

    def core_files(self) -> List[Path]:
        """Only the core modules the handlers import (never the emulator, the CLI or Spark)."""
        return core_closure(self.handler_files())

    def aws_services(self) -> List[str]:
        """The services whose botocore models the package keeps: those its code creates clients for."""
        return sorted(boto3_services([*self.handler_files(), *self.core_files()]))


EXTRACT_BUNDLE = LambdaBundle("extract", "requirements.txt", ("candles.py", "orders.py", "lambda_logging.py"))
TRANSFORM_BUNDLE = LambdaBundle("transform", "requirements-transform.txt", ("transform.py", "lambda_logging.py"))


def _source_files(root: Path, pattern: str = "**/*") -> List[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix != ".pyc")


def _hash_files(files: Iterable[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


def lock_file(requirements: Path) -> Path:
    """``lambdas/requirements.txt`` -> ``lambdas/requirements.lock``."""
    return requirements.with_suffix(".lock")


def lambda_asset_hash(bundle: LambdaBundle = EXTRACT_BUNDLE) -> str:
    """Handlers + the core files they import + the lock file + target platform + how we bundle.

    Over the inputs, not the built directory, and sound because the inputs fix the output: pip
    installs the lock with ``--require-hashes --no-deps --only-binary=:all:``, so every third-party
    byte is one of the wheels whose sha256 the lock names (a re-published or substituted file fails
    the install instead of changing the bundle), the strip rules are in this file, and our own
    files are hashed directly. A hash over the unpacked output would add nothing but churn on
    pip's own bookkeeping files (``RECORD``, ``INSTALLER``) when the build tool's pip changes.
    """
    files = [*bundle.handler_files(), bundle.lock_path]
    return _hash_files(files + bundle.core_files() + [_THIS_FILE, _CLOSURE_FILE], PIP_PLATFORM,
                       LAMBDA_PYTHON_VERSION, bundle.name)


def pip_install_locked(lock: Path, target: Path, platforms: Sequence[str] = PIP_PLATFORMS,
                       python_version: str = LAMBDA_PYTHON_VERSION) -> None:
    """pip-install exactly the locked wheels (sha256-checked) for one platform into ``target``."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--require-hashes", "--no-deps", "-r", str(lock), "--target", str(target),
         *(a for p in platforms for a in ("--platform", p)), "--implementation", "cp",
         "--python-version", python_version, "--only-binary=:all:"],
        capture_output=True, text=True, check=False,
    )
    if pip.returncode:  # pip's stderr is noisy on success (index warnings): show it only on failure
        raise RuntimeError(f"pip install of {lock.name} for the Lambda bundle failed (a hash mismatch means "
                           f"the lock is stale: `python -m py_cdk.lock`):\n{pip.stdout}\n{pip.stderr}")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: useless in Lambda


# ---------------------------------------------------------------- what the packages never import
# Removed after pip install, so the cloud assembly stays far below CodePipeline's 256 MB input
# artifact limit for CloudFormation actions ("Quotas in AWS CodePipeline"; sizes in docs/cloud.md).
# Proven by running the handlers from a bundle stripped by these rules (tests/runtimes
# test_lambda_runtimes.py::test_transform_lambda_from_the_stripped_bundle).
STRIP_GLOBS: Tuple[str, ...] = (
    "pyarrow/tests", "pyarrow/include", "pyarrow/src", "pyarrow/_pyarrow_cpp_tests.*",  # tests, C++ sources
    # Arrow Flight (RPC): libarrow_flight alone is 28 MB; nothing links it but _flight and
    # libarrow_python_flight (readelf -d NEEDED). Not imported by ``import pyarrow``.
    "pyarrow/*flight*",
    # pyarrow's own S3 filesystem (libarrow_s3, 16 MB, needed only by _s3fs): the lake uses boto3.
    "pyarrow/_s3fs.*", "pyarrow/libarrow_s3.so*",
    "Crypto/SelfTest",  # pycryptodome's test suite
    # Cython sources, C headers and type stubs: never imported.
    "**/*.pyx", "**/*.pxd", "**/*.pxi", "**/*.pyi", "**/*.h",
)
# Kept on purpose: libarrow_substrait and libarrow_dataset (pyarrow.lib itself NEEDS them),
# libparquet/acero/compute (pyarrow.parquet and pyarrow.compute). Gandiva is not in the wheel.


def _drop(path: Path) -> int:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    return size


def _shared_library_copies(root: Path) -> List[Path]:
    """``libX.so`` and ``libX.so.N.M.K`` next to ``libX.so.N``: wheels cannot hold symlinks, so pip
    writes three full copies of one library; the loader opens only the SONAME (``libX.so.N``)."""
    copies = []
    for lib in root.rglob("lib*.so.*"):
        name, _, version = lib.name.partition(".so.")
        if "." in version:  # libX.so.N.M.K
            continue
        for twin in (lib.with_name(f"{name}.so"), *lib.parent.glob(f"{name}.so.{version}.*")):
            if twin.is_file():
                copies.append(twin)
    return sorted(set(copies))


def strip_bundle(root: Path, aws_services: Iterable[str]) -> int:
    """Remove what the package never imports; the number of bytes removed.

    botocore keeps only the models of ``aws_services`` (its top-level endpoint/partition/retry
    files stay): 400+ service models are ~28 MB of each package.
    """
    removed = 0
    for pattern in STRIP_GLOBS:
        for path in sorted(root.glob(pattern), reverse=True):
            if path.exists():
                removed += _drop(path)
    for copy in _shared_library_copies(root):
        removed += _drop(copy)
    models = root / "botocore" / "data"
    keep = set(aws_services)
    if models.is_dir():
        for service in models.iterdir():
            if service.is_dir() and service.name not in keep:
                removed += _drop(service)
    return removed


def build_lambda_bundle(bundle: LambdaBundle, out: Path, platforms: Sequence[str] = PIP_PLATFORMS) -> Path:
    """The package of ``bundle`` in ``out``: locked wheels, stripped, then handlers and their core files."""
    pip_install_locked(bundle.lock_path, out, platforms)
    strip_bundle(out, bundle.aws_services())
    for handler in bundle.handler_files():
        shutil.copy2(handler, out / handler.name)
    copy_core_files(bundle.core_files(), out)
    return out


@jsii.implements(ILocalBundling)
class LambdaLocalBundling:
    """pip-installs the bundle's locked wheels for arm64, strips what it never imports, then copies
    its handlers and the core modules they import (their import closure)."""

    def __init__(self, bundle: LambdaBundle = EXTRACT_BUNDLE) -> None:
        self.bundle = bundle

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        build_lambda_bundle(self.bundle, Path(output_dir))
        return True


def copy_core_files(files: Iterable[Path], out: Path) -> None:
    """The given core files at their package paths under ``out``."""
    for path in files:
        target = out / path.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def lambda_code(bundle: LambdaBundle = EXTRACT_BUNDLE) -> lambda_.Code:
    """The package of one bundle (the extractors share one, with different handlers)."""
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=lambda_asset_hash(bundle),
        bundling=BundlingOptions(
            image=LAMBDA_RUNTIME.bundling_image,  # never pulled: local bundling always succeeds
            command=["bash", "-c", "echo 'Docker bundling is not used; see py_cdk/bundling.py' && exit 1"],
            local=LambdaLocalBundling(bundle),
        ),
    )


# ---------------------------------------------------------------- core wheel for Glue


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _wheel_metadata() -> dict:
    dist_info = f"{CORE_DIST_NAME}-{CORE_VERSION}.dist-info"
    metadata = (f"Metadata-Version: 2.1\nName: {CORE_DIST_NAME}\nVersion: {CORE_VERSION}\n"
                "Requires-Python: >=3.11\nSummary: binance-lake core (deployed to Glue by the CDK app)\n")
    wheel = "Wheel-Version: 1.0\nGenerator: py_cdk.bundling\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return {f"{dist_info}/METADATA": metadata.encode(), f"{dist_info}/WHEEL": wheel.encode()}


def build_core_wheel(output_dir: Path) -> Path:
    """A pure-Python wheel of ``binance_lake`` without pip/setuptools/Docker.

    No dependencies are declared on purpose: the pinned third-party wheels (pyarrow,
    boto3, ...) are uploaded next to it (``glue_wheels``), and a declared dependency
    would make Glue's pip look for it on PyPI at every job start.
    """
    entries = {f"{CORE_DIR.name}/{p.relative_to(CORE_DIR).as_posix()}": p.read_bytes()
               for p in _source_files(CORE_DIR)}
    entries.update(_wheel_metadata())
    record_name = f"{CORE_DIST_NAME}-{CORE_VERSION}.dist-info/RECORD"
    record = "\n".join([*(_record_line(n, d) for n, d in entries.items()), f"{record_name},,"]) + "\n"
    entries[record_name] = record.encode()
    wheel_path = output_dir / CORE_WHEEL_NAME
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return wheel_path


@jsii.implements(ILocalBundling)
class CoreWheelLocalBundling:
    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        build_core_wheel(Path(output_dir))
        return True


def core_wheel_source(exclude: Optional[List[str]] = None) -> s3deploy.ISource:
    """Deployment source holding exactly one file, ``binance_lake-<version>-py3-none-any.whl``.

    Glue installs ``.whl`` files with pip, and pip insists on a real wheel file name,
    which a plain CDK asset key (``<hash>.whl``) is not: hence a BucketDeployment.
    """
    return s3deploy.Source.asset(
        str(CORE_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=_hash_files([*_source_files(CORE_DIR), _THIS_FILE], CORE_WHEEL_NAME),
        bundling=BundlingOptions(
            image=DockerImage.from_registry("none"),  # never used: local bundling always succeeds
            local=CoreWheelLocalBundling(),
        ),
        exclude=exclude,
    )


# ---------------------------------------------------------------- pinned wheels for Glue 5.0

GLUE_REQUIREMENTS = GLUE_SCRIPTS_DIR / "requirements-glue.txt"
# Glue 5.0: Python 3.11 on Amazon Linux 2023 (x86_64 workers, glibc 2.34), per the Glue docs'
# version table ("AWS Glue versions"); manylinux_2_28 wheels run there.
GLUE_PYTHON_VERSION = "3.11"
GLUE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")


def _wheel_cache_root() -> Path:
    # Outside the repo: a user cache keyed by the pinned file, so tests and repeated synths
    # download once (pip's own cache makes a cold miss cheap too).
    return Path(os.environ.get("BINANCE_LAKE_WHEEL_CACHE") or Path.home() / ".cache" / "binance-lake" / "wheels")


GLUE_LOCK = lock_file(GLUE_REQUIREMENTS)


def glue_wheels_hash() -> str:
    """Over the lock (sha256 of every wheel): the uploaded files are exactly the ones it names."""
    return _hash_files([GLUE_LOCK], *GLUE_PLATFORMS, GLUE_PYTHON_VERSION)


def glue_wheels_dir() -> Path:
    """The pinned third-party wheels for the Glue Spark jobs, downloaded at synth time.

    ``pip download --only-binary=:all: --require-hashes`` for Glue 5.0's platform from
    ``glue_scripts/requirements-glue.lock`` (the pins of ``requirements-glue.txt`` with hashes). The jobs then
    install exactly these files from S3 (``--additional-python-modules``) and never reach
    PyPI at run time.
    """
    target = _wheel_cache_root() / f"glue-{glue_wheels_hash()[:16]}"
    done = target / ".complete"
    if done.exists():
        return target
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
         "--require-hashes", "--no-deps", *(a for p in GLUE_PLATFORMS for a in ("--platform", p)),
         "--implementation", "cp", "--python-version", GLUE_PYTHON_VERSION, "-r", str(GLUE_LOCK), "-d", str(partial)],
        capture_output=True, text=True, check=False)
    if pip.returncode:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"pip download of {GLUE_LOCK.name} for Glue failed:\n{pip.stdout}\n{pip.stderr}")
    (partial / ".complete").write_text("")
    if target.exists():  # another process finished first: theirs is identical
        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.rename(target)
    return target


def glue_wheel_names() -> List[str]:
    return sorted(p.name for p in glue_wheels_dir().glob("*.whl"))


def glue_wheels_source() -> s3deploy.ISource:
    """Deployment source with the pinned wheels (real wheel file names, which pip requires)."""
    return s3deploy.Source.asset(str(glue_wheels_dir()), asset_hash_type=AssetHashType.CUSTOM,
                                 asset_hash=glue_wheels_hash(), exclude=[".complete"])
