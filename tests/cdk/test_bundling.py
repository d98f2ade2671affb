"""Docker-free bundling: asset hashes, the core wheel and the pinned wheels for Glue. Both Lambda
packages are bundled for real, once, by test_app_synth.py (``python app.py``)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from py_cdk import bundling


def test_lambda_asset_hash_is_stable_and_per_bundle() -> None:
    assert bundling.lambda_asset_hash() == bundling.lambda_asset_hash(bundling.EXTRACT_BUNDLE)
    transform = bundling.lambda_asset_hash(bundling.TRANSFORM_BUNDLE)
    assert transform == bundling.lambda_asset_hash(bundling.TRANSFORM_BUNDLE) != bundling.lambda_asset_hash()


def test_glue_wheels_are_the_pinned_set_for_glue5() -> None:
    names = bundling.glue_wheel_names()
    lines = [line for line in bundling.GLUE_REQUIREMENTS.read_text().splitlines()
             if "==" in line and not line.startswith("#")]
    pins = {line.split("==")[0].lower().replace("-", "_"): line.split("==")[1].strip() for line in lines}
    shipped = {n.split("-")[0].lower(): n.split("-")[1] for n in names}
    assert {k: shipped.get(k) for k in pins} == pins  # exactly the pinned versions
    # Native wheels (if any) are for Glue 5.0's CPython 3.11 on x86_64.
    assert all(n.endswith("-none-any.whl") or ("cp311" in n and "x86_64" in n) for n in names), names
    assert bundling.glue_wheels_dir() == bundling.glue_wheels_dir()  # cached, not downloaded twice


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


@pytest.mark.parametrize("path", ["candles.py", "orders.py", "transform.py", "requirements.txt",
                                  "requirements-transform.txt"])
def test_lambda_sources_exist(path: str) -> None:
    assert (bundling.LAMBDAS_DIR / path).is_file()


# -- what each Lambda package carries of the core (its handlers' import closure) ---------------

_IMPORT_BUNDLE = """
import importlib, json, pathlib, sys
root = pathlib.Path(sys.argv[1])
for handler in sys.argv[2:]:
    importlib.import_module(handler)
pyarrow = "pyarrow" in sys.modules  # what the handlers themselves pull in
# Every core module the package carries imports from the package alone (lazy imports included).
for path in sorted((root / "binance_lake").rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
core = sorted(m for m in sys.modules if m == "binance_lake" or m.startswith("binance_lake."))
print(json.dumps({"core": core, "pyarrow": pyarrow,
                  "outside": [m for m in core if not sys.modules[m].__file__.startswith(str(root))]}))
"""


def _bundle_of(bundle: bundling.LambdaBundle, out: Path) -> Path:
    bundling.copy_core_files(bundle.core_files(), out)
    for handler in bundle.handler_files():
        (out / handler.name).write_bytes(handler.read_bytes())
    return out


@pytest.mark.parametrize("bundle", [bundling.EXTRACT_BUNDLE, bundling.TRANSFORM_BUNDLE], ids=lambda b: b.name)
def test_each_lambda_package_carries_exactly_what_its_handlers_import(bundle, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    out = _bundle_of(bundle, tmp_path)
    carried = {p.relative_to(out).as_posix() for p in (out / "binance_lake").rglob("*.py")}
    # Never the emulator (a test double), the CLI or the Spark jobs.
    assert not any(p.startswith(("binance_lake/emulator", "binance_lake/cli", "binance_lake/aws/spark"))
                   for p in carried), carried
    handlers = [h[:-3] for h in bundle.handlers]
    # The package first on the path: a core module it lacks fails to import instead of coming
    # from the checkout (which the dev venv has installed in editable mode).
    proc = subprocess.run([sys.executable, "-c", _IMPORT_BUNDLE, str(out), *handlers], cwd=out,
                          env={**__import__("os").environ, "PYTHONPATH": str(out)},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["outside"] == []  # every core module came from the package
    if bundle is bundling.EXTRACT_BUNDLE:  # the extractors' package has no pyarrow, and needs none
        assert not found["pyarrow"]
        assert not {"binance_lake/fold.py", "binance_lake/lock.py", "binance_lake/jobs/sync.py"} & carried
    else:
        assert {"binance_lake/fold.py", "binance_lake/aws/transform_lambda.py"} <= carried


# -- reproducible bundles: lock files with hashes (issue 18 item 9) ----------------------------


@pytest.mark.parametrize("target", __import__("py_cdk.lock", fromlist=["TARGETS"]).TARGETS,
                         ids=lambda t: t.requirements.name)
def test_each_bundle_has_a_hashed_lock_of_its_pins(target) -> None:
    from py_cdk.lock import locked_versions, normalize

    lock = target.lock_path.read_text()
    pins = {normalize(line.split("==")[0]): line.split("==")[1].split("#")[0].strip()
            for line in target.requirements.read_text().splitlines() if "==" in line and not line.startswith("#")}
    locked = locked_versions(target.lock_path)
    assert {n: locked.get(n) for n in pins} == pins  # every direct pin, at its version
    assert len(locked) > len(pins) or target.requirements.name == "requirements-glue.txt"  # + the closure
    assert "do not edit" in lock.splitlines()[1]
    blocks = lock.split("==")[1:]  # one per package: its version and hashes
    assert len(blocks) == len(locked) and all("--hash=sha256:" in b for b in blocks)


def test_asset_hashes_cover_the_lock_not_the_loose_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    real = bundling._hash_files
    monkeypatch.setattr(bundling, "_hash_files", lambda files, *extra: seen.append(list(files)) or real(files, *extra))
    for bundle in (bundling.EXTRACT_BUNDLE, bundling.TRANSFORM_BUNDLE):
        bundling.lambda_asset_hash(bundle)
        assert bundle.lock_path in seen[-1] and bundle.requirements_path not in seen[-1]
    bundling.glue_wheels_hash()
    assert seen[-1] == [bundling.GLUE_LOCK]


# -- stripped packages (issue 18 item 8) ------------------------------------------------------


def test_strip_removes_what_the_packages_never_import(tmp_path: Path) -> None:
    files = ["pyarrow/tests/test_x.py", "pyarrow/include/arrow/api.h", "pyarrow/libarrow_flight.so.2600",
             "pyarrow/_flight.cpython-313-aarch64-linux-gnu.so", "pyarrow/flight.py", "pyarrow/libarrow_s3.so.2600",
             "pyarrow/_s3fs.cpython-313-aarch64-linux-gnu.so", "pyarrow/lib.pyx", "pyarrow/lib.pxd",
             "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600", "pyarrow/libarrow_python.so.2600.1.0",
             "pyarrow/lib.cpython-313-aarch64-linux-gnu.so", "pyarrow/libarrow_substrait.so.2600",
             "pyarrow/parquet/core.py", "Crypto/SelfTest/x.py", "Crypto/Cipher/AES.pyi", "Crypto/Cipher/AES.py",
             "botocore/data/s3/2006-03-01/service-2.json.gz", "botocore/data/ec2/2016-11-15/service-2.json.gz",
             "botocore/data/endpoints.json", "botocore/data/cloudwatch/2010-08-01/service-2.json.gz"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 10)
    removed = bundling.strip_bundle(tmp_path, ["s3", "cloudwatch"])
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(["pyarrow/libarrow_python.so.2600", "pyarrow/lib.cpython-313-aarch64-linux-gnu.so",
                           "pyarrow/libarrow_substrait.so.2600", "pyarrow/parquet/core.py", "Crypto/Cipher/AES.py",
                           "botocore/data/s3/2006-03-01/service-2.json.gz", "botocore/data/endpoints.json",
                           "botocore/data/cloudwatch/2010-08-01/service-2.json.gz"])
    assert removed == 10 * (len(files) - len(left))


def test_each_package_keeps_the_botocore_models_its_code_uses(tmp_path: Path) -> None:
    from py_cdk.closure import boto3_services

    assert bundling.EXTRACT_BUNDLE.aws_services() == ["s3", "secretsmanager"]
    assert bundling.TRANSFORM_BUNDLE.aws_services() == ["cloudwatch", "s3"]
    dynamic = tmp_path / "dynamic.py"
    dynamic.write_text("import boto3\nname = 'sqs'\nboto3.client(name)\n")
    with pytest.raises(ValueError, match="non-literal service"):
        boto3_services([dynamic])
