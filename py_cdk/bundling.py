"""Docker-free asset bundling: the Lambda package and the core wheel for Glue.

CDK bundles through ``ILocalBundling`` first and only falls back to Docker when
``try_bundle`` returns False; ours never does, so synth needs no Docker. Asset
hashes are computed from the inputs we actually package (sources + pinned
requirements + target platform), so they change exactly when the bundle would.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_deployment as s3deploy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
CORE_DIR = PROJECT_ROOT / "binance_lake"
GLUE_SCRIPTS_DIR = PROJECT_ROOT / "glue_scripts"
_THIS_FILE = Path(__file__).resolve()  # a change in how we bundle must change the hash too

# One place decides the Lambda runtime; pip resolves wheels for the same version/arch.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_PYTHON_VERSION = "3.14"
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_PLATFORM = "manylinux2014_aarch64"

CORE_DIST_NAME = "binance_lake"
CORE_VERSION = "0.1.0"
CORE_WHEEL_NAME = f"{CORE_DIST_NAME}-{CORE_VERSION}-py3-none-any.whl"
_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps -> byte-identical wheels


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


def lambda_asset_hash() -> str:
    """Handlers + core + pinned requirements + target platform."""
    files = _source_files(LAMBDAS_DIR, "*.py") + _source_files(LAMBDAS_DIR, "requirements.txt")
    return _hash_files(files + _source_files(CORE_DIR) + [_THIS_FILE], PIP_PLATFORM, LAMBDA_PYTHON_VERSION)


@jsii.implements(ILocalBundling)
class LambdaLocalBundling:
    """pip-installs the pinned requirements for arm64, then copies handlers and the core."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        out = Path(output_dir)
        requirements = LAMBDAS_DIR / "requirements.txt"
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-compile", "-r", str(requirements), "--target", str(out), "--platform", PIP_PLATFORM,
             "--implementation", "cp", "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:"],
            capture_output=True, text=True, check=False,
        )
        if pip.returncode:  # pip's stderr is noisy on success (index warnings): show it only on failure
            raise RuntimeError(f"pip install for the Lambda bundle failed:\n{pip.stdout}\n{pip.stderr}")
        shutil.rmtree(out / "bin", ignore_errors=True)  # console scripts: useless in Lambda
        for handler in _source_files(LAMBDAS_DIR, "*.py"):
            shutil.copy2(handler, out / handler.name)
        shutil.copytree(CORE_DIR, out / CORE_DIR.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_IGNORED))
        return True


def lambda_code() -> lambda_.Code:
    """The one Lambda package both extractors share (different handlers)."""
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=lambda_asset_hash(),
        bundling=BundlingOptions(
            image=LAMBDA_RUNTIME.bundling_image,  # never pulled: local bundling always succeeds
            command=["bash", "-c", "echo 'Docker bundling is not used; see py_cdk/bundling.py' && exit 1"],
            local=LambdaLocalBundling(),
        ),
    )


# ---------------------------------------------------------------- core wheel for Glue


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _wheel_metadata() -> dict:
    dist_info = f"{CORE_DIST_NAME}-{CORE_VERSION}.dist-info"
    metadata = (f"Metadata-Version: 2.1\nName: {CORE_DIST_NAME}\nVersion: {CORE_VERSION}\n"
                "Requires-Python: >=3.9\nSummary: binance-lake core (deployed to Glue by the CDK app)\n")
    wheel = "Wheel-Version: 1.0\nGenerator: py_cdk.bundling\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return {f"{dist_info}/METADATA": metadata.encode(), f"{dist_info}/WHEEL": wheel.encode()}


def build_core_wheel(output_dir: Path) -> Path:
    """A pure-Python wheel of ``binance_lake`` without pip/setuptools/Docker.

    No dependencies are declared on purpose: Glue provides boto3/pyarrow, and a
    declared dependency would make Glue pip-install from PyPI at every job start.
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
