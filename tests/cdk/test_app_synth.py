"""``python app.py`` synthesizes without the CDK CLI (cdk.json's context read like the CLI does),
bundling both Lambda packages for real: pyarrow only in the transform's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from py_cdk.application import app_options

from .support import ROOT, cdk_json_context


def test_app_options_mimic_the_cli() -> None:
    assert app_options({"CDK_CONTEXT_JSON": "{}"}) == {}  # the CLI passes the context itself
    options = app_options({})
    assert options["context"] == cdk_json_context() and options["outdir"] == str(ROOT / "cdk.out")
    assert "outdir" not in app_options({"CDK_OUTDIR": "elsewhere"})


@pytest.fixture(scope="module")
def app_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("app-out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDK_", "CONTEXT_OVERFLOW"))}
    env.update(CDK_OUTDIR=str(out), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    run = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=False, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return out


def test_python_app_py_synthesizes_every_stack(app_out: Path) -> None:
    templates = sorted(p.name for p in app_out.rglob("*.template.json"))
    assert len(templates) == 3, templates  # pipeline + Beta + Prod


def test_bundles_are_split(app_out: Path) -> None:
    bundles = [p for p in app_out.glob("asset.*") if p.is_dir() and (p / "lambda_logging.py").exists()]
    by_handler = {("transform" if (p / "transform.py").exists() else "extract"): p for p in bundles}
    assert sorted(by_handler) == ["extract", "transform"], bundles
    transform, extract = by_handler["transform"], by_handler["extract"]
    assert (transform / "pyarrow").is_dir() and not (extract / "pyarrow").exists()
    assert (transform / "boto3").is_dir() and (extract / "boto3").is_dir()
    assert not (transform / "binance").exists()  # no Binance client in the transform
    native = [p.name for p in (transform / "pyarrow").glob("*.so*")]
    assert native and all("aarch64" in n or "cpython-313" in n or ".so." in n or n.endswith(".so")
                          for n in native)
    assert list((transform / "pyarrow").glob("lib.cpython-313-aarch64-linux-gnu.so")), native[:5]
    assert (extract / "candles.py").is_file() and (extract / "orders.py").is_file()
    assert (extract / "binance").is_dir() and (extract / "aws_lambda_powertools").is_dir()
    for bundle in (extract, transform):
        assert (bundle / "binance_lake" / "schema.py").is_file()
        assert not (bundle / "bin").exists() and not list(bundle.glob("requirements*.txt"))
        assert not list(bundle.rglob("__pycache__"))
        # Compiled wheels were resolved for the Lambda platform (arm64), not this machine's.
        so = [p.name for p in bundle.rglob("*.so") if "x86_64" in p.name]
        assert so == [], so[:5]
        # boto3/botocore come from the pinned requirements, not the runtime's SDK.
        req = "requirements.txt" if bundle is extract else "requirements-transform.txt"
        pins = dict(line.split("==") for line in (ROOT / "lambdas" / req).read_text().splitlines()
                    if "==" in line and not line.startswith("#"))
        assert (bundle / f"botocore-{pins['botocore'].strip()}.dist-info").is_dir()


def test_cloud_assembly_fits_codepipeline_with_room(app_out: Path) -> None:
    """cdk.out is one input artifact of the CloudFormation actions (256 MB cap, issue 18 item 8):
    the stripped packages keep it under our budget, and docs/cloud.md shows the current sizes."""
    from py_cdk import assembly_size

    sizes = assembly_size.measure(app_out)
    total = sum(s.unzipped for s in sizes) / assembly_size.MB
    assert total <= assembly_size.BUDGET_MB < assembly_size.LIMIT_MB, assembly_size.table(sizes)
    documented = assembly_size.documented()
    measured = {s.what: (s.unzipped / assembly_size.MB, s.zipped / assembly_size.MB) for s in sizes}
    assert set(documented) - {"**whole cloud assembly**"} == set(measured), (
        "docs/cloud.md's assembly table is stale: run `python -m py_cdk.assembly_size`")
    stale = {k: (documented[k], v) for k, v in measured.items()
             if any(abs(d - m) > 0.5 for d, m in zip(documented[k], v))}
    assert stale == {}, f"docs/cloud.md's assembly table is stale (run `python -m py_cdk.assembly_size`): {stale}"
    # No asset carries what the packages never import.
    transform = next(p for p in app_out.glob("asset.*") if (p / "transform.py").exists())
    assert not list((transform / "pyarrow").glob("libarrow_flight*")) and not (transform / "pyarrow" / "tests").exists()
