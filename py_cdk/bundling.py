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
from typing import Iterable, List, Optional, Tuple

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_deployment as s3deploy

import binance_lake
from py_cdk.closure import core_closure

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

    def handler_files(self) -> List[Path]:
        return [LAMBDAS_DIR / h for h in self.handlers]

    def core_files(self) -> List[Path]:
        """Only the core modules the handlers import (never the emulator, the CLI or Spark)."""
        return core_closure(self.handler_files())


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


def lambda_asset_hash(bundle: LambdaBundle = EXTRACT_BUNDLE) -> str:
    """Handlers + the core files they import + pinned requirements + target platform."""
    files = [*bundle.handler_files(), bundle.requirements_path]
    return _hash_files(files + bundle.core_files() + [_THIS_FILE, _CLOSURE_FILE], PIP_PLATFORM,
                       LAMBDA_PYTHON_VERSION, bundle.name)


def pip_install_for_lambda(requirements: Path, target: Path) -> None:
    """pip-install pinned wheels for the Lambda platform (arm64, cp3.13) into ``target``."""
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "-r", str(requirements), "--target", str(target),
         *(a for p in PIP_PLATFORMS for a in ("--platform", p)), "--implementation", "cp",
         "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:"],
        capture_output=True, text=True, check=False,
    )
    if pip.returncode:  # pip's stderr is noisy on success (index warnings): show it only on failure
        raise RuntimeError(f"pip install of {requirements.name} for the Lambda bundle failed:\n"
                           f"{pip.stdout}\n{pip.stderr}")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: useless in Lambda


@jsii.implements(ILocalBundling)
class LambdaLocalBundling:
    """pip-installs the bundle's pinned requirements for arm64, then copies its handlers and the core
    modules they import (their import closure)."""

    def __init__(self, bundle: LambdaBundle = EXTRACT_BUNDLE) -> None:
        self.bundle = bundle

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        out = Path(output_dir)
        pip_install_for_lambda(self.bundle.requirements_path, out)
        for handler in self.bundle.handler_files():
            shutil.copy2(handler, out / handler.name)
        copy_core_files(self.bundle.core_files(), out)
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


def glue_wheels_hash() -> str:
    return _hash_files([GLUE_REQUIREMENTS], *GLUE_PLATFORMS, GLUE_PYTHON_VERSION)


def glue_wheels_dir() -> Path:
    """The pinned third-party wheels for the Glue Spark jobs, downloaded at synth time.

    ``pip download --only-binary=:all:`` for Glue 5.0's platform from
    ``glue_scripts/requirements-glue.txt`` (direct pins + their dependencies). The jobs then
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
         *(a for p in GLUE_PLATFORMS for a in ("--platform", p)), "--implementation", "cp",
         "--python-version", GLUE_PYTHON_VERSION, "-r", str(GLUE_REQUIREMENTS), "-d", str(partial)],
        capture_output=True, text=True, check=False)
    if pip.returncode:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"pip download of {GLUE_REQUIREMENTS.name} for Glue failed:\n{pip.stdout}\n{pip.stderr}")
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
