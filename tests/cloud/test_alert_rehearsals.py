"""A rehearsal per failure (issue 18): which message reaches the alerts topic, from the synthesized
Beta template in moto (tests/cloud/box.py). Each alert is read from an SQS queue subscribed to the
topic, as an operator's subscription would receive it (docs/operations.md explains each one).

What moto cannot show, and where it is covered instead: CloudWatch alarms do not publish in moto,
and an execution cannot run past its timeout there, so "execution over budget" is rehearsed from
the template (tests/cdk/test_orchestration.py::test_time_budget_covers_the_worst_case and
tests/cdk/test_monitoring.py::test_alarms_may_publish_to_the_topic); moto enforces no topic or key
policy, so who may publish is checked on the template too.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict

import pytest

from binance_lake.aws import extract_lambda, transform_lambda
from binance_lake.emulator import Emulator
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE
from tests.cloud.box import CloudBox
from tests.cloud.test_cloud_in_a_box import SYMBOL, assert_candles_exact, lake_of
from tests.conftest import API_SECRET, NOW_MS
from tests.helpers import order_rows


def _only_alert(box: CloudBox) -> Dict[str, Any]:
    alerts = box.alerts()
    assert len(alerts) == 1, alerts
    return alerts[0]


def test_orders_key_revoked_candles_still_curated(box: CloudBox, box_emulator: Emulator) -> None:
    """A revoked key (-2015) fails the orders side only: candles are extracted and curated, the
    run fails, and the alert names the orders side and Binance's error."""
    box_emulator.generate_orders(SYMBOL, 20, NOW_MS - MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=5)
    box.put_api_key("revoked-key", API_SECRET)  # a key Binance does not know: -2015
    tick = box.tick()
    assert tick.status == "FAILED"
    assert_candles_exact(box, box_emulator)  # the candle side was curated in the same run
    assert order_rows(lake_of(box)) == {}  # type: ignore[arg-type]
    alert = _only_alert(box)
    assert alert["execution"] == tick.arn
    extract = alert["run"]["extract"]
    assert extract["candles"] == {"failed": False}
    assert extract["orders"]["failed"] is True and "-2015" in extract["orders"]["cause"]
    assert alert["run"]["transform"] == {"failed": False}
    assert "revoked-key" not in json.dumps(alert)


def test_transform_crash_names_the_transform(box: CloudBox, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("transform blew up")

    monkeypatch.setattr(transform_lambda, "transform_increment", crash)
    tick = box.tick()
    assert tick.status == "FAILED"
    assert tick.task_attempts(box.function("Transform")) == 2  # 1 + the one States.TaskFailed retry
    alert = _only_alert(box)
    assert alert["execution"] == tick.arn
    transform = alert["run"]["transform"]
    assert transform["Error"] == "RuntimeError" and "transform blew up" in transform["Cause"]
    assert alert["run"]["extract"]["candles"] == {"failed": False}


@pytest.mark.parametrize("state", ["FAILED", "TIMEOUT", "ERROR"])
def test_glue_job_failure_event_reaches_the_topic(box: CloudBox, state: str) -> None:
    """The "Glue Job State Change" event Glue emits (fields as in "Automating AWS Glue with
    EventBridge") -> the template's rule -> the topic, with the job, state and Glue's message."""
    job = box.glue_job("CatalogVerify")
    _glue_event(box, job, state, "Command failed with exit code 1")
    alert = _only_alert(box)
    assert alert == {"alert": "binance-lake Glue job run failed", "job": job, "state": state,
                     "run": "jr_rehearsal", "message": "Command failed with exit code 1"}


def test_glue_success_and_other_jobs_stay_quiet(box: CloudBox) -> None:
    _glue_event(box, box.glue_job("CatalogVerify"), "SUCCEEDED", "ok")
    _glue_event(box, "someone-elses-job", "FAILED", "not ours")
    assert box.alerts() == []


def _glue_event(box: CloudBox, job: str, state: str, message: str) -> None:
    detail = {"jobName": job, "severity": "ERROR" if state != "SUCCEEDED" else "INFO", "state": state,
              "jobRunId": "jr_rehearsal", "message": message}
    result = box.client("events").put_events(Entries=[{
        "Source": "aws.glue", "DetailType": "Glue Job State Change", "Detail": json.dumps(detail)}])
    assert result["FailedEntryCount"] == 0


def test_a_tick_while_another_run_holds_the_lease_is_skipped(
        box: CloudBox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease as moto executes the synthesized definition: a run still extracting holds it, the
    next tick loses the conditional write, sees the holder RUNNING and ends at SkipOverlap without
    invoking anything (and without an alert); the holder releases the lease as its last state."""
    entered, release = threading.Event(), threading.Event()
    real = extract_lambda.extract_candles

    def slow_candles(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(60), "the first run was never released"
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_lambda, "extract_candles", slow_candles)
    sfn = box.client("stepfunctions")
    first = sfn.start_execution(stateMachineArn=box.state_machine_arn, name="holder", input="{}")["executionArn"]
    try:
        assert entered.wait(30), "the first run never reached the candles extractor"
        assert _lease_holder(box) == first
        second = box.tick()
        exited = [e["stateExitedEventDetails"]["name"] for e in second.history if "stateExitedEventDetails" in e]
        assert second.status == "SUCCEEDED" and second.invocations == []
        assert "DescribeHolder" in exited and exited[-1] == "SkipOverlap" and "Extract" not in exited
        assert _lease_holder(box) == first  # the second run did not take it
    finally:
        release.set()
    _wait_done(box, first)
    assert sfn.describe_execution(executionArn=first)["status"] == "SUCCEEDED"
    assert _lease_holder(box) is None  # released by its last state
    assert box.alerts() == []


@pytest.mark.parametrize("holder", ["finished", "unknown"])
def test_a_lease_left_by_an_ended_run_is_taken_over(box: CloudBox, holder: str) -> None:
    """A run that timed out or was aborted never released its lease: the next run finds the holder
    not RUNNING (or gone) and takes the lease over with a conditional write."""
    if holder == "finished":
        stale = box.tick().arn  # a SUCCEEDED execution; pretend it left its lease behind
    else:
        stale = f"{box.state_machine_arn.replace(':stateMachine:', ':execution:')}:gone"
    box.client("dynamodb").put_item(TableName=box.lease_table, Item={"lease": {"S": "run"}, "holder": {"S": stale}})
    tick = box.tick()
    exited = [e["stateExitedEventDetails"]["name"] for e in tick.history if "stateExitedEventDetails" in e]
    assert tick.status == "SUCCEEDED", tick.history[-1]
    assert "StealLease" in exited and "Extract" in exited and exited[-1] == "ReleaseLease"
    assert _lease_holder(box) is None


def _lease_holder(box: CloudBox) -> Any:
    item = box.client("dynamodb").get_item(TableName=box.lease_table, Key={"lease": {"S": "run"}},
                                           ConsistentRead=True).get("Item")
    return item["holder"]["S"] if item else None


def _wait_done(box: CloudBox, arn: str) -> None:
    sfn = box.client("stepfunctions")
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} did not finish"
        time.sleep(0.05)
