"""The Lambda bundles' code paths under python3.13 and exactly their pinned packages.

Each test runs the core in a venv built from the bundle's own requirements file (the file
py_cdk/bundling.py installs into the package), against moto_server S3 and the Binance
emulator served from the dev venv on 127.0.0.1. A pin bumped to a version that breaks the
core (e.g. boto3 1.34, whose botocore rejects ``PutObject(IfNoneMatch=...)``) fails here.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from binance_lake.emulator import Emulator
from binance_lake.fold import transform_pending
from binance_lake.jobs import sync
from binance_lake.lake import LocalLake, S3Lake, open_lake
from binance_lake.layout import lock_key
from binance_lake.sources.rest.client import BinanceClient, ClientConfig
from py_cdk import bundling
from tests.conftest import API_KEY, API_SECRET, NOW_MS
from tests.runtimes.conftest import MotoS3
from tests.runtimes.venvs import (
    LAMBDA_EXTRACT,
    LAMBDA_PYTHON,
    LAMBDA_TRANSFORM,
    RuntimeEnv,
    ensure_env,
    pins,
    python_env,
    require_python,
)

pytestmark = pytest.mark.runtime

RUNNER = str(Path(__file__).with_name("runner.py"))
SYMBOL = "SOLUSDT"
LISTED = NOW_MS - 36 * 3_600_000  # a day and a half of 1m candles: two UTC days, small and fast
MS_PER_MINUTE = 60_000


def run(env: RuntimeEnv, bundle: Path, command: str, args: Dict[str, Any], **extra: str) -> Any:
    proc = env.run([RUNNER, command, json.dumps(args)], env=python_env(bundle, **extra), timeout=300)
    assert proc.returncode == 0, f"{command} failed under {env.spec.name}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    emu = Emulator(now_ms=NOW_MS, seed=7)
    emu.add_api_key(API_KEY, API_SECRET)
    emu.add_symbol(SYMBOL, listed_at_ms=LISTED)
    emu.generate_orders(SYMBOL, 40, LISTED, NOW_MS - MS_PER_MINUTE, seed=5)
    with emu.serve() as url:
        yield url


def client(base_url: str) -> BinanceClient:
    return BinanceClient(ClientConfig(base_url=base_url, api_key=API_KEY, api_secret=API_SECRET, timeout_s=5.0,
                                      backoff_base_s=0.01, backoff_cap_s=0.05))


def curated(lake: S3Lake) -> Dict[str, pa.Table]:
    return {k: pq.read_table(io.BytesIO(lake.read_bytes(k))) for k in lake.list_keys("curated")
            if k.endswith(".parquet")}


def plant_expired_lock(lake: S3Lake, table: str) -> None:
    """A dead run's lock: the transform must take it over with DeleteObject(IfMatch=etag)."""
    body = {"owner": "dead", "host": "gone", "pid": 1, "expires_at": time.time() - 60}
    lake.write_bytes(lock_key(table, SYMBOL), json.dumps(body).encode())


def versions(env: RuntimeEnv, bundle: Path, names: List[str], modules: List[str]) -> Dict[str, Any]:
    return run(env, bundle, "versions", {"distributions": names, "modules": modules})


def test_transform_lambda_under_python313_and_its_pins(moto_s3: MotoS3, emulator: str, lambda_bundle: Path) -> None:
    env = ensure_env(LAMBDA_TRANSFORM)
    pinned = pins("lambdas/requirements-transform.txt")
    found = versions(env, lambda_bundle, sorted(pinned), [])
    assert found["python"].startswith("3.13.")
    assert {n: found[n] for n in pinned} == pinned  # the venv is exactly the bundle's pinned set

    bucket = moto_s3.bucket("runtime-transform")
    ours, dev = (open_lake(f"s3://{bucket}/{name}", moto_s3.client) for name in ("lambda", "dev"))
    # Raw ticks extracted in the dev venv, then copied byte for byte: both lakes hold the same raw.
    extracted = sync.sync_candles(client(emulator), dev, SYMBOL, transform=False)["rows"]
    orders = sync.sync_orders(client(emulator), dev, SYMBOL, transform=False)["rows"]
    for key in dev.list_keys(""):
        ours.write_bytes(key, dev.read_bytes(key))
    for lake in (ours, dev):
        plant_expired_lock(lake, "candles")
    assert ours.list_keys("raw/_pending") == dev.list_keys("raw/_pending") != []

    # The transform Lambda's handler under python3.13 (Powertools, the bundle's boto3 -> moto).
    summary = run(env, lambda_bundle, "handler", {"module": "transform", "env": {
        "LAKE_URI": f"s3://{bucket}/lambda", "SYMBOLS": SYMBOL, "TABLES": "candles,orders", "INTERVALS": "1m",
        "LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "transform", "POWERTOOLS_METRICS_NAMESPACE": "BinanceLake"}},
        AWS_ENDPOINT_URL=moto_s3.endpoint)
    transform_pending(dev, ["candles", "orders"], [SYMBOL])  # the same transform in the dev venv

    assert summary["transform"]  # the handler ran the transform (not a no-op)
    mine, theirs = curated(ours), curated(dev)
    assert sorted(mine) == sorted(theirs)
    assert any("candles/" in k for k in mine) and any("orders/" in k for k in mine)
    for key, table in mine.items():
        assert table.schema == theirs[key].schema, key  # decimal128 / date32 / timestamp types
        assert table.equals(theirs[key]), key
    candles = pa.concat_tables(t for k, t in mine.items() if "candles/" in k)
    assert candles.num_rows == extracted >= 1440 and orders == 40
    assert pa.types.is_decimal(candles.schema.field("open_price").type)
    # The dead run's lock was taken over (DeleteObject IfMatch) and released; nothing pending.
    assert ours.list_keys("curated/_locks") == [] and ours.list_keys("raw/_pending") == []


@pytest.fixture(scope="module")
def stripped_transform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transform package exactly as py_cdk/bundling.py builds it (locked wheels, stripped,
    handlers + core closure), for x86_64 instead of arm64 so that this machine can run it."""
    out = tmp_path_factory.mktemp("stripped-transform")
    return bundling.build_lambda_bundle(bundling.TRANSFORM_BUNDLE, out, bundling.HOST_PIP_PLATFORMS)


def run_bare(bundle: Path, command: str, args: Dict[str, Any], **extra: str) -> Any:
    """runner.py under a bare python3.13 with ``-S`` (no site-packages at all): only the standard
    library and the package itself are importable, as in the deployed function."""
    exe, _ = require_python(LAMBDA_PYTHON)
    proc = subprocess.run([exe, "-S", RUNNER, command, json.dumps(args)], env=python_env(bundle, **extra),
                          cwd=bundle, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{command} failed from the stripped bundle:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.splitlines()[-1])


def test_transform_lambda_from_the_stripped_bundle(moto_s3: MotoS3, emulator: str, stripped_transform: Path) -> None:
    """What py_cdk/bundling.py strips (pyarrow's Flight/S3 libraries, tests, headers, duplicate
    library copies, unused botocore models) is never needed: the handler curates from it."""
    pyarrow_dir = stripped_transform / "pyarrow"
    assert not list(pyarrow_dir.glob("*flight*")) and not (pyarrow_dir / "tests").exists()  # stripped indeed
    assert sorted(p.name for p in (stripped_transform / "botocore" / "data").iterdir() if p.is_dir()) == \
        bundling.TRANSFORM_BUNDLE.aws_services()
    found = run_bare(stripped_transform, "versions", {"distributions": ["pyarrow"], "modules": ["pyarrow.parquet"]})
    assert found["python"].startswith("3.13.") and found["importable"] == {"pyarrow.parquet": True}

    bucket = moto_s3.bucket("runtime-stripped")
    ours, dev = (open_lake(f"s3://{bucket}/{name}", moto_s3.client) for name in ("lambda", "dev"))
    sync.sync_candles(client(emulator), dev, SYMBOL, transform=False)
    sync.sync_orders(client(emulator), dev, SYMBOL, transform=False)
    for key in dev.list_keys(""):
        ours.write_bytes(key, dev.read_bytes(key))
    summary = run_bare(stripped_transform, "handler", {"module": "transform", "env": {
        "LAKE_URI": f"s3://{bucket}/lambda", "SYMBOLS": SYMBOL, "TABLES": "candles,orders", "INTERVALS": "1m",
        "POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "INFO"}}, AWS_ENDPOINT_URL=moto_s3.endpoint)
    transform_pending(dev, ["candles", "orders"], [SYMBOL])
    assert summary["transform"]
    mine, theirs = curated(ours), curated(dev)
    assert sorted(mine) == sorted(theirs) and any("orders/" in k for k in mine)
    for key, table in mine.items():
        assert table.equals(theirs[key]), key


def test_extract_lambda_under_python313_and_its_pins(moto_s3: MotoS3, emulator: str, lambda_bundle: Path,
                                                    tmp_path: Path) -> None:
    env = ensure_env(LAMBDA_EXTRACT)
    pinned = pins("lambdas/requirements.txt")
    found = versions(env, lambda_bundle, sorted(pinned),
                     ["pyarrow", "binance_lake.aws.extract_lambda", "binance_lake.sources.rest.candles"])
    assert found["python"].startswith("3.13.")
    assert {n: found[n] for n in pinned} == pinned
    # The extractor package stays small: no pyarrow, and the code it runs does not need it.
    assert found["importable"] == {"pyarrow": False, "binance_lake.aws.extract_lambda": True,
                                   "binance_lake.sources.rest.candles": True}

    bucket = moto_s3.bucket("runtime-extract")
    summary = run(env, lambda_bundle, "handler", {"module": "candles", "env": {
        "LAKE_URI": f"s3://{bucket}/lake", "SYMBOLS": SYMBOL, "INTERVALS": "1m", "LOG_LEVEL": "INFO",
        "BINANCE_BASE_URL": emulator, "POWERTOOLS_SERVICE_NAME": "candles"}}, AWS_ENDPOINT_URL=moto_s3.endpoint)

    lake = open_lake(f"s3://{bucket}/lake", moto_s3.client)
    raw = lake.list_keys("raw/klines")
    assert raw and all(SYMBOL in k for k in raw)
    # Raw files are written with PutObject(IfNoneMatch="*") by the bundle's botocore.
    opens = sorted(row[0] for k in raw for row in json.loads(lake.read_bytes(k))["data"])
    # The same extract in the dev venv (same emulator, same clock) fetches the same candles.
    dev = LocalLake(str(tmp_path / "dev"))
    sync.sync_candles(client(emulator), dev, SYMBOL, transform=False)
    dev_opens = sorted(row[0] for k in dev.list_keys("raw/klines")
                       for row in json.loads(dev.read_bytes(k))["data"])
    assert summary["rows"] == len(opens) == len(dev_opens) >= 1440
    assert opens == dev_opens
    assert all(b - a == MS_PER_MINUTE for a, b in zip(opens, opens[1:]))  # no hole, no duplicate
    assert [pending_raw(k) for k in lake.list_keys("raw/_pending/klines")] == sorted(raw)


def pending_raw(key: str) -> str:
    return "raw/" + key[len("raw/_pending/"):]


@pytest.fixture(scope="module")
def stripped_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stripped-extract")
    return bundling.build_lambda_bundle(bundling.EXTRACT_BUNDLE, out, bundling.HOST_PIP_PLATFORMS)


def test_extractors_from_the_stripped_bundle(moto_s3: MotoS3, emulator: str, stripped_extract: Path) -> None:
    """Both extractor handlers run from the stripped package: candles (S3 model, python-binance) and
    orders (the Secrets Manager model kept for it, the signed endpoints)."""
    assert not (stripped_extract / "Crypto" / "SelfTest").exists()
    assert sorted(p.name for p in (stripped_extract / "botocore" / "data").iterdir() if p.is_dir()) == \
        ["s3", "secretsmanager"]
    import boto3

    secrets = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="eu-west-1").client("secretsmanager", endpoint_url=moto_s3.endpoint)
    arn = secrets.create_secret(Name="stripped-extract", SecretString=json.dumps(
        {"api_key": API_KEY, "api_secret": API_SECRET}))["ARN"]
    bucket = moto_s3.bucket("runtime-stripped-extract")
    env = {"LAKE_URI": f"s3://{bucket}/lake", "SYMBOLS": SYMBOL, "INTERVALS": "1m", "LOG_LEVEL": "INFO",
           "BINANCE_BASE_URL": emulator, "POWERTOOLS_SERVICE_NAME": "binance-lake"}
    candles = run_bare(stripped_extract, "handler", {"module": "candles", "env": env},
                       AWS_ENDPOINT_URL=moto_s3.endpoint)
    orders = run_bare(stripped_extract, "handler", {"module": "orders", "env": {**env, "BINANCE_SECRET_ARN": arn}},
                      AWS_ENDPOINT_URL=moto_s3.endpoint)
    assert candles["rows"] >= 1440 and orders["rows"] == 40
    lake = open_lake(f"s3://{bucket}/lake", moto_s3.client)
    assert lake.list_keys("raw/klines") and lake.list_keys("raw/orders")
