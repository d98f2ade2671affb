"""Docker-free bundling: the Lambda package (for real, once) and the core wheel for Glue."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from py_cdk import bundling


def test_lambda_bundles_without_docker(tmp_path: Path) -> None:
    """Synthesizes a one-function app with bundling ON: pip for arm64/cp3.14, then handlers + core."""
    app = cdk.App(outdir=str(tmp_path / "out"))
    stack = cdk.Stack(app, "Bundle")
    lambda_.Function(stack, "Fn", runtime=bundling.LAMBDA_RUNTIME, architecture=bundling.LAMBDA_ARCHITECTURE,
                     handler="candles.handler", code=bundling.lambda_code())
    app.synth()
    (bundle,) = [p for p in (tmp_path / "out").glob("asset.*") if p.is_dir()]
    assert (bundle / "candles.py").is_file() and (bundle / "orders.py").is_file()
    assert (bundle / "binance_lake" / "schema.py").is_file()
    assert (bundle / "binance").is_dir() and (bundle / "aws_lambda_powertools").is_dir()
    assert not (bundle / "bin").exists() and not (bundle / "requirements.txt").exists()
    # Compiled wheels were resolved for the Lambda platform, not this machine's.
    native = [p.name for p in bundle.rglob("*.so")]
    assert native and all("aarch64" in n or "abi3" in n for n in native), native[:5]
    assert not list(bundle.rglob("__pycache__"))


def test_lambda_asset_hash_is_stable() -> None:
    assert bundling.lambda_asset_hash() == bundling.lambda_asset_hash()


def _wheel(tmp_path: Path) -> Path:
    return bundling.build_core_wheel(tmp_path)


def test_core_wheel_is_a_valid_deterministic_wheel(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _wheel(tmp_path / "a"), _wheel(tmp_path / "b")
    assert first.name == "binance_lake-0.1.0-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert "binance_lake/schema.py" in names
        assert not any("__pycache__" in n for n in names)
        record = zf.read("binance_lake-0.1.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, _size = line.rsplit(",", 2)
            if digest:
                expected = base64.urlsafe_b64encode(hashlib.sha256(zf.read(name)).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}", name
        assert "Tag: py3-none-any" in zf.read("binance_lake-0.1.0.dist-info/WHEEL").decode()


@pytest.mark.parametrize("path", ["candles.py", "orders.py", "requirements.txt"])
def test_lambda_sources_exist(path: str) -> None:
    assert (bundling.LAMBDAS_DIR / path).is_file()
