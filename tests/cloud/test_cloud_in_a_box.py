"""The scheduled run end to end: the synthesized state machine in moto, the real handlers
(extractors, then the transform Lambda) in-process, Binance emulated, over several 5-minute
ticks of emulated time."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List

import boto3
import pyarrow.parquet as pq

from binance_lake.emulator import Emulator, Fault
from binance_lake.lake import S3Lake, open_lake
from binance_lake.schema import TABLES
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.cloud.box import CloudBox, Tick
from tests.conftest import API_KEY, API_SECRET, NOW_MS
from tests.helpers import candle_tuples, dec, order_rows, truth_tuples

SYMBOL = "BTCUSDT"
TICK_MS = 5 * MS_PER_MINUTE
FIRST_CANDLE = (NOW_MS - MS_PER_DAY) // MS_PER_MINUTE * MS_PER_MINUTE  # empty lake: the last 24 hours
GLUE_TYPES = {"decimal128(38, 8)": "decimal(38,8)", "timestamp[ms, tz=UTC]": "timestamp", "int64": "bigint",
              "string": "string", "bool": "boolean"}


def lake_of(box: CloudBox) -> S3Lake:
    return open_lake(f"s3://{box.lake_bucket}")  # type: ignore[return-value]


def assert_candles_exact(box: CloudBox, emu: Emulator) -> None:
    closed_end = emu.now_ms() // MS_PER_MINUTE * MS_PER_MINUTE
    stored = candle_tuples(lake_of(box))  # type: ignore[arg-type]
    assert len({(r[0], r[1]) for r in stored}) == len(stored), "duplicate candles in curated"
    assert stored == truth_tuples(SYMBOL, emu.klines(SYMBOL, "1m", FIRST_CANDLE, closed_end))


def assert_orders_exact(box: CloudBox, emu: Emulator) -> None:
    stored = order_rows(lake_of(box))  # type: ignore[arg-type]
    truth = emu.orders(SYMBOL)
    assert sorted(stored) == [o["orderId"] for o in truth]  # dict keys: a duplicate would be lost, so count rows too
    assert sum(pq.read_metadata(io.BytesIO(lake_of(box).read_bytes(k))).num_rows
               for k in lake_of(box).list_keys("curated/orders") if k.endswith(".parquet")) == len(truth)
    for o in truth:
        row = stored[o["orderId"]]
        assert (row["symbol"], row["status"], row["type"], row["side"]) == (o["symbol"], o["status"], o["type"],
                                                                            o["side"])
        assert (dec(row["price"]), dec(row["orig_qty"]), dec(row["executed_qty"])) == \
               (dec(o["price"]), dec(o["origQty"]), dec(o["executedQty"]))
        assert int(row["update_time"].timestamp() * 1000) == o["updateTime"]


def open_order_ids(emu: Emulator) -> List[int]:
    return [o["orderId"] for o in emu.orders(SYMBOL) if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def test_scheduled_ticks_end_to_end(box: CloudBox, box_emulator: Emulator) -> None:
    emu = box_emulator
    emu.generate_orders(SYMBOL, 400, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=11)

    # Tick 1: the secret still holds the CDK's empty placeholder -> orders skip, candles land.
    t1 = box.tick()
    assert t1.status == "SUCCEEDED", t1.history[-1]
    assert _result(t1, "Orders")["skipped"] == "secret not filled in"
    assert _result(t1, "Candles")["rows"] == 1440
    assert _result(t1, "Transform")["transform"]["rows_written"] == 1440  # Extract -> Transform Lambda
    _assert_runs_in_order(t1)
    # Standard workflows bill per state transition (docs/cost.md): a normal tick enters 7 states
    # (TakeLease, Extract, Candles, Orders, Transform, ExtractOk?, ReleaseLease: the release ends it).
    assert sum(1 for e in t1.history if e["type"].endswith("StateEntered")) == 7
    assert_candles_exact(box, emu)
    assert order_rows(lake_of(box)) == {}  # type: ignore[arg-type]

    # Tick 2: key filled in; Binance throttles (429 + Retry-After) and fails transiently (5xx).
    box.put_api_key(API_KEY, API_SECRET)
    emu.advance(TICK_MS)
    emu.update_order(SYMBOL, open_order_ids(emu)[0], status="FILLED")
    emu.inject(Fault("429", path="/api/v3/klines", times=1, retry_after_s=1))
    emu.inject(Fault("500", path="/api/v3/allOrders", times=2))
    emu.inject(Fault("503", path="/api/v3/exchangeInfo", times=1))
    t2 = box.tick()
    assert t2.status == "SUCCEEDED", t2.history[-1]
    candles, orders = _result(t2, "Candles"), _result(t2, "Orders")
    assert candles["throttled"] >= 1 and candles["rows"] == 5
    assert orders["retries"] >= 2 and orders["rows"] == 400
    assert_candles_exact(box, emu)
    assert_orders_exact(box, emu)

    # Tick 3: klines keep failing -> the candles branch fails for good after the state machine's
    # retries, but the orders branch and the transform still run (issue 18 item 3): the order
    # changed since tick 2 is curated now; then NotifyFailure publishes and the run fails.
    emu.advance(TICK_MS)
    changed = open_order_ids(emu)[0]
    emu.update_order(SYMBOL, changed, status="CANCELED")
    emu.inject(Fault("503", path="/api/v3/klines", times=None))
    t3 = box.tick()
    assert t3.status == "FAILED"
    assert t3.task_attempts(_fn(box, "Candles")) == 3  # 1 + MaxAttempts 2 on States.TaskFailed
    assert t3.task_attempts(box.function("Transform")) == 1  # curates what the orders side extracted
    assert order_rows(lake_of(box))[changed]["status"] == "CANCELED"  # type: ignore[arg-type]
    alerts = box.alerts()
    assert len(alerts) == 1 and alerts[0]["execution"] == t3.arn
    run = alerts[0]["run"]
    assert run["extract"]["orders"] == {"failed": False} and run["transform"] == {"failed": False}
    candles = run["extract"]["candles"]
    assert candles["failed"] is True and candles["error"] == "ExtractFailed" and "still failing" in candles["cause"]
    # The template's Retry (States.TaskFailed: 30 s, x2, backoff 2, full jitter) was what retried, emulated.
    assert len(t3.retry_waits) == 2 and 0 <= t3.retry_waits[0] <= 30 and 0 <= t3.retry_waits[1] <= 60

    # Tick 4: Binance is back; the catch-up covers tick 3's candles, tick 3's raw orders get curated.
    emu.clear_faults()
    emu.advance(TICK_MS)
    emu.add_order(SYMBOL, status="NEW")
    t4 = box.tick()
    assert t4.status == "SUCCEEDED", t4.history[-1]
    assert _result(t4, "Candles")["rows"] == 10
    assert_candles_exact(box, emu)
    assert_orders_exact(box, emu)
    assert order_rows(lake_of(box))[changed]["status"] == "CANCELED"  # type: ignore[arg-type]
    assert box.alerts() == []

    _assert_correlated_json_logs(box, [t1, t2, t3, t4])
    _assert_secret_nowhere(box, [t1, t2, t3, t4])
    _assert_freshness_published(box)


def test_glue_tables_match_the_parquet_written(box: CloudBox, box_emulator: Emulator) -> None:
    """Columns, types and partition keys of moto's Glue catalog (from the template) = the Parquet files."""
    box_emulator.generate_orders(SYMBOL, 50, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=3)
    box.put_api_key(API_KEY, API_SECRET)
    assert box.tick().status == "SUCCEEDED"
    glue, lake = boto3.client("glue", region_name=box.stack.region), lake_of(box)
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=box.database)["TableList"]}
    assert sorted(tables) == sorted(TABLES)
    for name, table in tables.items():
        sd, params = table["StorageDescriptor"], table["Parameters"]
        prefix = sd["Location"].split(f"s3://{box.lake_bucket}/", 1)[1]
        keys = [k for k in lake.list_keys(prefix) if k.endswith(".parquet")]
        assert keys, f"{name}: no Parquet under the table location {sd['Location']}"
        schema = pq.read_schema(io.BytesIO(lake.read_bytes(keys[0])))
        parquet = {f.name: GLUE_TYPES[str(f.type)] for f in schema}
        glue_columns = {c["Name"]: c["Type"] for c in sd["Columns"]}
        partition_keys = [p["Name"] for p in table["PartitionKeys"]]
        assert glue_columns == {k: v for k, v in parquet.items() if k not in partition_keys}, name
        assert set(parquet) - set(glue_columns) <= set(partition_keys), name
        for key in keys:  # the Hive path is exactly the partition keys, in order, as projection expects
            path = key[len(prefix):].split("/")[:-1]
            assert [p.split("=", 1)[0] for p in path] == partition_keys, key
            values = dict(p.split("=", 1) for p in path)
            location = params["storage.location.template"]
            for k, v in values.items():
                location = location.replace("${" + k + "}", v)
            assert location == f"s3://{box.lake_bucket}/{key.rsplit('/', 1)[0]}/"


# -- helpers --------------------------------------------------------------------------


def _fn(box: CloudBox, state: str) -> str:
    return box.function(f"Extractors{state}")


def _prefix(state: str) -> str:
    return "Transform" if state == "Transform" else f"Extractors{state}"


def _result(tick: Tick, state: str) -> Dict[str, Any]:
    done = [i for i in tick.invocations if i.function.startswith(_prefix(state)) and i.error is None]
    assert done, f"{state}: no successful invocation in {tick.arn}"
    return done[-1].result


def _assert_runs_in_order(tick: Tick) -> None:
    """Both extractors finish before the transform Lambda starts (Parallel, then Transform)."""
    names = [i.function for i in tick.invocations]
    transform = [n for n, i in enumerate(names) if i.startswith("Transform")]
    assert len(transform) == 1 and transform[0] == len(names) - 1, names
    assert {n.split("Extractors")[1][:6] for n in names[:-1]} == {"Candle", "Orders"}, names


def _assert_correlated_json_logs(box: CloudBox, ticks: List[Tick]) -> None:
    arns = {t.arn for t in ticks}
    lines = [json.loads(line) for line in box.logs.getvalue().splitlines() if line.strip()]
    assert lines, "no logs"
    correlated = [line for line in lines if line.get("correlation_id")]
    assert {line["correlation_id"] for line in correlated} == arns  # every run's lines carry its execution id
    lambda_lines = [line for line in lines if "function_name" in line]
    assert lambda_lines and all(line["correlation_id"] in arns for line in lambda_lines)
    assert any(line["message"].startswith("orders skipped") for line in lambda_lines)
    for inv in (i for t in ticks for i in t.invocations):
        assert inv.correlation_id in arns  # the payload the template passes


def _assert_secret_nowhere(box: CloudBox, ticks: List[Tick]) -> None:
    s3 = boto3.client("s3", region_name=box.stack.region)
    blobs = [box.logs.getvalue(), json.dumps([t.history for t in ticks], default=str),
             json.dumps([i.result for t in ticks for i in t.invocations], default=str)]
    for key in lake_of(box).list_keys(""):
        blobs.append(s3.get_object(Bucket=box.lake_bucket, Key=key)["Body"].read().decode("latin-1"))
    for blob in blobs:
        assert API_KEY not in blob and API_SECRET not in blob


def _assert_freshness_published(box: CloudBox) -> None:
    cw = boto3.client("cloudwatch", region_name=box.stack.region)
    metrics = cw.list_metrics(Namespace="BinanceLake", MetricName="StalestCandleMinutesBehind")["Metrics"]
    # One figure for every symbol: no dimensions (moto lists a dimensionless metric once per datum).
    assert metrics and all(m["Dimensions"] == [] for m in metrics)
