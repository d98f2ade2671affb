"""Lambda package size, cold import time and memory of the extractor and transform handlers.

    .venv/bin/python bench/cloud_lambda.py            # all three, prints JSON
    .venv/bin/python bench/cloud_lambda.py --only size

* size: each asset exactly as the CDK bundles it (``py_cdk.bundling.LambdaLocalBundling``:
  the bundle's lock file for arm64/cp3.13, stripped of what it never imports, + its handlers +
  core; the whole cloud assembly per asset: ``python -m py_cdk.assembly_size``), unzipped and
  zipped (deflate, as the CDK zips assets): the extract bundle (candles, orders) and the
  transform bundle (pyarrow + boto3).
* import: ``import candles`` / ``orders`` / ``transform`` in a fresh interpreter, N times,
  median and min; plus what the first invocation imports lazily (boto3, python-binance,
  pyarrow + the core transform). Measured with this venv's interpreter and packages (same
  pins), not on arm64/3.13.
* memory: peak RSS of a fresh process that imports a handler and runs one invocation
  (candles: a 24 h catch-up; orders: 1000 orders; transform: curating that catch-up, then a
  typical 5-minute tick in another fresh process) against the emulator (own process) and
  ``moto_server`` (own process, reached through ``AWS_ENDPOINT_URL``), so the figure is
  the handler's, not the fakes'.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOW_MS = 1709424030000
KEY, SECRET = "bench-key-0123456789", "bench-secret-abcdefghij"


def package_size() -> Dict[str, Any]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from py_cdk.bundling import EXTRACT_BUNDLE, TRANSFORM_BUNDLE

    return {b.name: _bundle_size(b) for b in (EXTRACT_BUNDLE, TRANSFORM_BUNDLE)}


def _bundle_size(bundle: Any) -> Dict[str, Any]:
    from py_cdk.bundling import LambdaLocalBundling

    out = Path(tempfile.mkdtemp(prefix="lambda-bundle-"))
    try:
        LambdaLocalBundling(bundle).try_bundle(str(out), image=None)
        files = [p for p in out.rglob("*") if p.is_file()]
        archive = out.parent / f"{out.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(out))
        by_top: Dict[str, int] = {}
        for p in files:
            top = p.relative_to(out).parts[0]
            by_top[top] = by_top.get(top, 0) + p.stat().st_size
        largest = sorted(by_top.items(), key=lambda kv: -kv[1])[:6]
        result = {"unzipped_mb": round(sum(p.stat().st_size for p in files) / 2**20, 2),
                  "zipped_mb": round(archive.stat().st_size / 2**20, 2), "files": len(files),
                  "largest": [(k, round(v / 2**20, 2)) for k, v in largest]}
        archive.unlink()
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _fresh(code: str, env: Dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                          cwd=str(ROOT / "lambdas")).stdout.strip()


def import_times(runs: int = 7) -> Dict[str, Any]:
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "INFO",
           "PYTHONDONTWRITEBYTECODE": "0"}
    timer = ("import sys, time; sys.path.insert(0, '.'); t = time.perf_counter(); import {mod}; "
             "print(round((time.perf_counter() - t) * 1000, 1))")
    out: Dict[str, Any] = {}
    _fresh(timer.format(mod="candles, orders, transform"), env)  # warm the bytecode cache, as a deployed package has
    for mod in ("candles", "orders", "transform", "boto3", "binance.client",
                "binance_lake.fold"):  # the last: pyarrow + the core transform, imported on the first run
        samples = [float(_fresh(timer.format(mod=mod), env)) for _ in range(runs)]
        out[mod] = {"median_ms": statistics.median(samples), "min_ms": min(samples)}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


INVOKE = """
import json, resource, sys, time, types
sys.path.insert(0, '.')
t = time.perf_counter()
import {mod}
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ctx = types.SimpleNamespace(function_name='bench', memory_limit_in_mb=512, aws_request_id='r',
                            invoked_function_arn='arn:aws:lambda:eu-west-1:123456789012:function:bench')
t = time.perf_counter()
summary = {mod}.handler({{'execution_id': 'bench'}}, ctx)
seconds = time.perf_counter() - t
rows = summary['rows'] if 'rows' in summary else summary['transform']['rows_written']
print(json.dumps({{'rss_after_import_mb': round(imported, 1),
                  'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  'invoke_s': round(seconds, 2), 'rows': rows}}))
"""


def memory() -> Dict[str, Any]:
    import boto3

    from bench.emuproc import EmulatorProcess

    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "eu-west-1"}
        session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="eu-west-1")
        for _ in range(100):
            try:
                session.client("s3", endpoint_url=endpoint).list_buckets()
                break
            except Exception:
                time.sleep(0.1)
        session.client("s3", endpoint_url=endpoint).create_bucket(
            Bucket="bench-lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        arn = session.client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name="bench", SecretString=json.dumps({"api_key": KEY, "api_secret": SECRET}))["ARN"]
        with EmulatorProcess(now_ms=NOW_MS) as emu:
            emu.call("add_api_key", KEY, SECRET)
            emu.call("generate_orders", "BTCUSDT", 1000, NOW_MS - 20 * 3600 * 1000, NOW_MS - 60000, seed=1)
            env = {**os.environ, **aws, "LAKE_URI": "s3://bench-lake", "SYMBOLS": "BTCUSDT", "INTERVALS": "1m",
                   "TABLES": "candles,orders", "BINANCE_BASE_URL": emu.base_url, "BINANCE_SECRET_ARN": arn,
                   "POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "WARNING"}

            def run(mod: str) -> Dict[str, Any]:
                return json.loads(_fresh(INVOKE.format(mod=mod), env).splitlines()[-1])

            out = {mod: run(mod) for mod in ("candles", "orders")}
            out["transform_catch_up"] = run("transform")  # 1440 candles + 1000 orders, cold
            emu.call("advance", 5 * 60 * 1000)  # one tick later: 5 candles, the open orders again
            run("candles")
            run("orders")
            out["transform_tick"] = run("transform")
            return out
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["size", "import", "memory"])
    args = parser.parse_args(argv)
    report: Dict[str, Any] = {}
    if args.only in (None, "size"):
        report["size"] = package_size()
    if args.only in (None, "import"):
        report["import"] = import_times()
    if args.only in (None, "memory"):
        report["memory"] = memory()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
