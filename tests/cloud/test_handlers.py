"""The handlers and binance_lake.aws (extract_lambda, transform_lambda, settings) on their own (no state machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import boto3
import pytest

from binance_lake.aws import extract_lambda, glue, metrics, settings, transform_lambda
from binance_lake.errors import BadInputError
from binance_lake.fold import last_closed_candle
from binance_lake.lake import LocalLake, open_lake
from tests.cloud.accounts import orders_settings
from tests.conftest import API_KEY, API_SECRET, NOW_MS

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:binance-AbCdEf"


class FakeSecrets:
    def __init__(self, value: str) -> None:
        self.value, self.calls = value, 0

    def get_secret_value(self, SecretId: str) -> Dict[str, Any]:
        self.calls += 1
        return {"SecretString": self.value}


@pytest.fixture(autouse=True)
def _fresh_secret_cache() -> None:
    extract_lambda.clear_secret_cache()


# -- the extract side stays small ---------------------------------------------------------


def test_handlers_import_without_pyarrow_in_a_fresh_process() -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'lambdas')!r})
        import candles, orders
        heavy = sorted(m for m in ("pyarrow", "duckdb", "binance", "aiohttp") if m in sys.modules)
        print(",".join(heavy))
    """)
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "INFO"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ""  # pyarrow never; python-binance (+aiohttp) only on the first request


# -- configuration ------------------------------------------------------------------------


LAMBDA_ENV = {"POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "INFO"}


def test_settings_name_the_missing_variable() -> None:
    env = {**LAMBDA_ENV, "LAKE_URI": "s3://b", "SYMBOLS": "BTCUSDT, ETHUSDT", "INTERVALS": "1m",
           "BINANCE_BASE_URL": "https://api.binance.com"}
    s = settings.ExtractSettings.from_env(env)
    assert s.symbols == ["BTCUSDT", "ETHUSDT"] and not hasattr(s, "secret_arn")
    with pytest.raises(BadInputError, match="LAKE_URI"):
        settings.ExtractSettings.from_env({k: v for k, v in env.items() if k != "LAKE_URI"})
    with pytest.raises(BadInputError, match="BINANCE_SECRET_ARN"):  # the orders extractor needs its secret
        settings.OrdersSettings.from_env(env)
    assert settings.OrdersSettings.from_env({**env, "BINANCE_SECRET_ARN": ARN}).secret_arn == ARN


def test_correlation_id_prefers_the_execution() -> None:
    assert settings.correlation_id({"execution_id": "arn:exec"}, "req-1") == "arn:exec"
    assert settings.correlation_id({"running": 1}, "req-1") == "req-1"


# -- the API key secret -------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"api_key": "", "api_secret": ""}', "", '{"api_key": null}'])
def test_unfilled_secret_means_skip(raw: str) -> None:
    assert extract_lambda.read_api_key(ARN, FakeSecrets(raw)) is None


@pytest.mark.parametrize("raw, problem", [
    (f'{{"api_key": "{API_KEY}"}}', "no api_secret"),
    (f"{API_KEY}:{API_SECRET}", "not JSON"),
    (f'["{API_KEY}"]', "not a JSON object"),
])
def test_malformed_secret_is_a_clear_error_that_never_echoes_it(raw: str, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem) as err:
        extract_lambda.read_api_key(ARN, FakeSecrets(raw))
    assert API_KEY not in str(err.value) and API_SECRET not in str(err.value)


def test_filled_secret_is_cached_but_an_empty_one_is_not() -> None:
    empty = FakeSecrets('{"api_key": "", "api_secret": ""}')
    assert extract_lambda.read_api_key(ARN, empty) is None and extract_lambda.read_api_key(ARN, empty) is None
    assert empty.calls == 2  # the run after the operator fills it must see it
    filled = FakeSecrets(json.dumps({"api_key": API_KEY, "api_secret": API_SECRET}))
    clock = [0.0]
    for _ in range(3):
        assert extract_lambda.read_api_key(ARN, filled, clock=lambda: clock[0]) == (API_KEY, API_SECRET)
    assert filled.calls == 1
    clock[0] = extract_lambda.SECRET_TTL_S + 1  # a rotated key is picked up after the TTL
    extract_lambda.read_api_key(ARN, filled, clock=lambda: clock[0])
    assert filled.calls == 2


def test_orders_skip_with_an_empty_secret_and_touch_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = orders_settings(str(tmp_path / "lake"), ["BTCUSDT"], "http://127.0.0.1:9", ARN)
    summary = extract_lambda.extract_orders(config, LocalLake(config.lake_uri), FakeSecrets(""))
    assert summary["skipped"] == "secret not filled in"
    assert "not filled in yet" in caplog.text and not (tmp_path / "lake").exists()


# -- Glue arguments, transform and freshness ----------------------------------------------


def test_every_configured_interval_is_verified(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Issue 18 item 10: with "1m,5m" deployed, the verify job verified 1m only (``--intervals``
    and ``--tables`` were passed and never read). Orders have no interval: verified once."""
    from binance_lake.aws import spark

    calls: list = []

    class Report:
        report_key = "curated/_verify/x.json"

        def __init__(self, interval: str) -> None:
            self.interval = interval

        def summary(self) -> Dict[str, int]:
            return {"repaired": 0, "mismatch": 0, "raw_missing": 0, "with_gaps": 0,
                    "unrepaired": 1 if self.interval == "5m" else 0}

        def line(self) -> str:
            return self.interval

    monkeypatch.setattr(spark, "verify_spark", lambda _s, lake_uri, symbols, interval, dates, opts, tables:
                        calls.append((interval, list(tables), opts.run_id)) or Report(interval))
    monkeypatch.setattr("binance_lake.verify.exit_code", lambda report: int(report.interval == "5m"))
    published: list = []
    monkeypatch.setattr(spark, "publish_verify", lambda totals, cw: published.append(totals))
    argv = ["--lake_uri", "s3://b", "--symbols", "BTCUSDT", "--intervals", "1m,5m", "--tables", "candles,orders",
            "--days_back", "1", "--JOB_RUN_ID", "jr_1", "--against_archive", "false", "--archive_url", "https://x",
            "--archive_lag_days", "2"]
    assert spark.verify_glue_main(argv, cloudwatch=object(), spark=object(), now_ms=1_709_424_000_000) == 1
    assert calls == [("1m", ["candles", "orders"], "jr_1-1m"), ("5m", ["candles"], "jr_1-5m")]
    assert published == [{"repaired": 0, "mismatch": 0, "raw_missing": 0, "unrepaired": 1, "with_gaps": 0}]


def test_every_configured_interval_is_backfilled(monkeypatch: pytest.MonkeyPatch) -> None:
    from binance_lake.aws import spark

    calls: list = []
    monkeypatch.setattr(spark, "backfill_spark", lambda _s, lake_uri, symbols, start, end, cfg, interval:
                        calls.append((symbols, interval, cfg.base_url, start)) or [])
    argv = ["--lake_uri", "s3://b", "--symbols", "BTCUSDT,ETHUSDT", "--intervals", "1m,5m", "--archive_url",
            "http://127.0.0.1:9", "--start", "2024-01"]
    assert spark.glue_main(argv, spark=object()) == 0
    assert [c[1] for c in calls] == ["1m", "5m"]
    assert all(c[0] == ["BTCUSDT", "ETHUSDT"] and c[2] == "http://127.0.0.1:9" and c[3] == 1_704_067_200_000
               for c in calls)


def test_parse_glue_args_like_glue_passes_them() -> None:
    argv = ["--JOB_ID", "j_1", "--lake_uri", "s3://b/p", "--symbols=BTCUSDT,ETHUSDT", "--enable-metrics",
            "--tables", "candles,orders", "--JOB_RUN_ID", "jr_1"]
    args = glue.parse_glue_args(argv, ["lake_uri", "symbols", "tables"], {"interval": "1m"})
    assert args["lake_uri"] == "s3://b/p" and args["symbols"] == "BTCUSDT,ETHUSDT" and args["interval"] == "1m"
    assert args["enable-metrics"] == "" and args["JOB_RUN_ID"] == "jr_1"
    with pytest.raises(BadInputError, match="--tables"):
        glue.parse_glue_args(["--lake_uri", "x", "--symbols", "BTCUSDT"], ["lake_uri", "symbols", "tables"])


class FakeCloudWatch:
    def __init__(self) -> None:
        self.calls: List[Dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_transform_job_curates_pending_raw_and_publishes_freshness(tmp_path: Path, client, emulator) -> None:
    from binance_lake.jobs import sync

    lake = LocalLake(str(tmp_path / "lake"))
    sync.sync_candles(client, lake, "BTCUSDT", transform=False)  # what the Lambda does
    assert last_closed_candle(lake, "BTCUSDT") is None and lake.list_keys("raw/_pending")
    cw = FakeCloudWatch()
    config = settings.TransformSettings.from_env({**LAMBDA_ENV, "LAKE_URI": lake.uri, "SYMBOLS": "BTCUSDT",
                                                  "TABLES": "candles,orders", "INTERVALS": "1m"})
    summary = transform_lambda.transform_increment(config, lake, cw, now_ms=NOW_MS)
    assert summary["transform"]["rows_written"] == 1440 and lake.list_keys("raw/_pending") == []
    # NOW_MS is 30 s into the open 00:00 candle; the last closed one closed at 23:59:59.999.
    assert summary["minutes_since_last_closed_candle"] == {"BTCUSDT": 0.5}
    assert summary["stalest_minutes_behind"] == 0.5 and summary["no_candle"] == []
    close = NOW_MS // 60000 * 60000 - 1
    assert summary["freshness"] == [{"symbol": "BTCUSDT", "interval": "1m", "last_close_ms": close,
                                     "minutes_since_close": 0.5, "minutes_behind": 0.5}]
    (call,) = cw.calls
    assert call["Namespace"] == "BinanceLake"
    (datum,) = call["MetricData"]
    assert datum["MetricName"] == "StalestCandleMinutesBehind" and datum["Value"] == 0.5
    assert "Dimensions" not in datum  # one metric whatever the number of symbols
    # The next tick has nothing pending: the figure comes from the state, nothing curated is listed.
    lake.list_children = _refuse  # type: ignore[method-assign]
    again = transform_lambda.transform_increment(config, lake, FakeCloudWatch(), now_ms=NOW_MS + 120_000)
    assert again["minutes_since_last_closed_candle"] == {"BTCUSDT": 2.5}
    assert again["freshness_sources"] == {"tick": 0, "state": 1, "curated": 0}


def _refuse(*args: Any) -> Any:
    raise AssertionError(f"curated listed although the freshness state holds every symbol: {args}")


def test_no_candles_no_metric(tmp_path: Path) -> None:
    cw = FakeCloudWatch()  # missing data is what the alarm treats as breaching
    rows = [{"symbol": "BTCUSDT", "interval": "1m", "last_close_ms": NOW_MS - 1, "minutes_behind": 0.0},
            {"symbol": "ETHUSDT", "interval": "1m", "last_close_ms": None}]
    assert metrics.publish_stalest(rows, cw, NOW_MS) is None and metrics.publish_stalest([], cw, NOW_MS) is None
    assert cw.calls == []


# -- the transform Lambda: settings, and a rehearsal against a moto S3 lake -----------------


def test_transform_settings_from_the_cdk_environment() -> None:
    env = {**LAMBDA_ENV, "LAKE_URI": "s3://b", "SYMBOLS": "BTCUSDT,ETHUSDT", "TABLES": "candles,orders",
           "INTERVALS": "1m,5m"}
    s = settings.TransformSettings.from_env(env)
    assert (s.symbols, s.tables, s.intervals) == (["BTCUSDT", "ETHUSDT"], ["candles", "orders"], ["1m", "5m"])
    assert settings.TransformSettings.parse(s.render()) == s  # what the CDK renders is what the Lambda reads
    with pytest.raises(BadInputError, match="SYMBOLS"):
        settings.TransformSettings.from_env({k: v for k, v in env.items() if k != "SYMBOLS"})
    with pytest.raises(BadInputError, match="fills"):
        settings.TransformSettings.from_env({**env, "TABLES": "candles,fills"})


@pytest.mark.parametrize("missing", ["INTERVALS", "TABLES", "LOG_LEVEL"])
def test_a_missing_setting_is_an_error_never_a_default(missing: str) -> None:
    """Before issue 18, a missing INTERVALS silently meant 1m and a missing TABLES every table."""
    env = {**LAMBDA_ENV, "LAKE_URI": "s3://b", "SYMBOLS": "BTCUSDT", "TABLES": "candles", "INTERVALS": "1m,5m"}
    for value in (None, ""):
        broken = {k: v for k, v in env.items() if k != missing} | ({missing: value} if value is not None else {})
        with pytest.raises(BadInputError, match=f"{missing} is not set"):
            settings.TransformSettings.from_env(broken)


def test_extract_settings_take_every_interval() -> None:
    env = {**LAMBDA_ENV, "LAKE_URI": "s3://b", "SYMBOLS": "BTCUSDT", "INTERVALS": "1m,5m",
           "BINANCE_BASE_URL": "https://x"}
    s = settings.ExtractSettings.from_env(env)
    assert s.interval == "1m" and s.candle_intervals() == ["1m", "5m"]
    with pytest.raises(BadInputError, match="INTERVALS is not set"):  # the old INTERVAL is not read any more
        settings.ExtractSettings.from_env({k: v for k, v in env.items() if k != "INTERVALS"} | {"INTERVAL": "5m"})


def test_glue_settings_from_the_job_arguments() -> None:
    argv = ["--JOB_ID", "j", "--lake_uri", "s3://b", "--symbols", "BTCUSDT,ETHUSDT", "--intervals", "1m,5m",
            "--tables", "candles,orders", "--days_back", "2", "--start", "2026-01-01"]
    with pytest.raises(BadInputError, match="--against_archive is not set"):
        settings.VerifySettings.from_args(argv)
    with pytest.raises(BadInputError, match="--archive_url is not set"):
        settings.BackfillSettings.from_args(argv)
    argv += ["--against_archive", "true", "--archive_url", "https://data.binance.vision", "--archive_lag_days", "2"]
    verify, args = settings.VerifySettings.from_args(argv)
    assert (verify.intervals, verify.tables, verify.days_back) == (["1m", "5m"], ["candles", "orders"], 2)
    assert (verify.against_archive, verify.archive_lag_days) == (True, 2)
    assert args["start"] == "2026-01-01"  # per-run options stay available
    assert settings.VerifySettings.parse(verify.render()) == verify
    with pytest.raises(BadInputError, match="--days_back: not a whole number"):
        settings.VerifySettings.from_args([*argv, "--days_back", "one"])
    # The archive comparison's settings: "false" is a value (rendered, parsed), anything else an error.
    off = settings.VerifySettings.from_args([*argv, "--against_archive", "false"])[0]
    assert off.against_archive is False and off.render()["--against_archive"] == "false"
    with pytest.raises(BadInputError, match="--against_archive: not true or false: 'yes'"):
        settings.VerifySettings.from_args([*argv, "--against_archive", "yes"])
    with pytest.raises(BadInputError, match="--archive_lag_days must be 0 or more"):
        settings.VerifySettings.from_args([*argv, "--archive_lag_days", "-1"])
    with pytest.raises(BadInputError, match="--archive_url must not contain credentials"):
        settings.VerifySettings.from_args([*argv, "--archive_url", "https://u:pw@data.binance.vision"])


def test_transform_handler_imports_only_what_its_bundle_has() -> None:
    """The transform bundle is the only one with pyarrow; its handler needs no python-binance."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'lambdas')!r})
        import transform
        print(",".join(sorted(m for m in ("binance", "aiohttp", "duckdb") if m in sys.modules)))
    """)
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "INFO"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ""
    def pins(name: str) -> set:
        lines = (ROOT / "lambdas" / name).read_text().splitlines()
        return {line.split("==")[0] for line in lines if "==" in line and not line.startswith("#")}

    assert {"pyarrow", "boto3", "botocore"} <= pins("requirements-transform.txt")
    assert "python-binance" not in pins("requirements-transform.txt")
    assert "pyarrow" not in pins("requirements.txt") and {"boto3", "botocore"} <= pins("requirements.txt")


HANDLER_RUN = """
import json, sys, types
sys.path.insert(0, {lambdas!r})
import transform
ctx = types.SimpleNamespace(function_name="transform", memory_limit_in_mb=1024, aws_request_id="req-1",
                            invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:transform")
print(json.dumps(transform.handler({{"execution_id": "exec-1"}}, ctx)))
"""


def test_transform_lambda_rehearsal_against_moto_server(tmp_path: Path, client, emulator) -> None:
    """The transform handler in a fresh process, with the template's environment, on a moto S3 lake."""
    from moto.server import ThreadedMotoServer

    from binance_lake.jobs import sync

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
               "LAKE_URI": "s3://rehearsal/lake", "SYMBOLS": "BTCUSDT", "TABLES": "candles,orders",
               "INTERVALS": "1m", "POWERTOOLS_SERVICE_NAME": "binance-lake", "LOG_LEVEL": "INFO"}
        env.pop("AWS_SESSION_TOKEN", None)
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name="eu-west-1")
        s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        s3.create_bucket(Bucket="rehearsal", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        lake = open_lake("s3://rehearsal/lake", s3)
        sync.sync_candles(client, lake, "BTCUSDT", transform=False)
        run = subprocess.run([sys.executable, "-c", HANDLER_RUN.format(lambdas=str(ROOT / "lambdas"))], env=env,
                             capture_output=True, text=True, check=False, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        assert lines[-1]["transform"]["rows_written"] == 1440
        done = [line for line in lines if line.get("message") == "transform done"]
        assert done and done[0]["correlation_id"] == "exec-1"
        # The per-symbol figures are a JSON list in the log line (what docs/cloud.md's query unnests).
        assert [(f["symbol"], f["interval"]) for f in done[0]["freshness"]] == [("BTCUSDT", "1m")]
        assert done[0]["stalest_minutes_behind"] == done[0]["freshness"][0]["minutes_behind"]
        assert lake.exists("curated/_state/freshness.json")
        assert last_closed_candle(lake, "BTCUSDT") == NOW_MS // 60000 * 60000 - 1
        assert lake.list_keys("raw/_pending") == []
        cw = session.client("cloudwatch", endpoint_url=env["AWS_ENDPOINT_URL"])
        assert [m["MetricName"] for m in cw.list_metrics(Namespace="BinanceLake")["Metrics"]] == [
            "StalestCandleMinutesBehind"]
    finally:
        server.stop()
