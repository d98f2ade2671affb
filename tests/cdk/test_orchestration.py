"""State machine definition, the overlap guard, retries/catch, Glue .sync, the schedule."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from py_cdk.orchestration import GLUE_TRANSIENT, LAMBDA_TRANSIENT

from .support import Synth, as_list, flatten, logical_id, only, policy_statements


@pytest.fixture(scope="module")
def definition(synth: Synth) -> Dict[str, Any]:
    sm = only(synth.beta, "AWS::StepFunctions::StateMachine")
    return json.loads(flatten(sm["Properties"]["DefinitionString"]))


def test_starts_with_the_overlap_guard(definition: Dict[str, Any]) -> None:
    assert definition["StartAt"] == "CheckNotRunning"
    guard = definition["States"]["CheckNotRunning"]
    assert guard["Resource"].endswith(":states:::aws-sdk:sfn:listExecutions")
    assert guard["Parameters"] == {"StateMachineArn.$": "$$.StateMachine.Id", "StatusFilter": "RUNNING",
                                   "MaxResults": 10}
    assert guard["ResultSelector"] == {"running.$": "States.ArrayLength($.Executions)"}
    choice = definition["States"]["AlreadyRunning?"]
    assert choice["Choices"] == [{"Variable": "$.running", "NumericGreaterThan": 1, "Next": "SkipOverlap"}]
    assert choice["Default"] == "Extract"
    assert definition["States"]["SkipOverlap"]["Type"] == "Succeed"


def test_parallel_extractors_with_retries_and_catch(definition: Dict[str, Any], synth: Synth) -> None:
    stack = synth.beta_stack
    extract = definition["States"]["Extract"]
    assert extract["Type"] == "Parallel"
    assert sorted(b["StartAt"] for b in extract["Branches"]) == ["Candles", "Orders"]
    for branch in extract["Branches"]:
        task = branch["States"][branch["StartAt"]]
        fn = getattr(stack.extractors, branch["StartAt"].lower())
        assert task["Resource"] == f"<{logical_id(stack, fn)}.Arn>"  # direct invoke: payload only
        throttling, transient = task["Retry"]
        assert throttling["ErrorEquals"] == LAMBDA_TRANSIENT and throttling["BackoffRate"] == 2
        assert throttling["MaxAttempts"] == 4 and throttling["JitterStrategy"] == "FULL"
        assert transient["ErrorEquals"] == ["States.TaskFailed"] and transient["BackoffRate"] == 2
    assert extract["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}]
    assert extract["Next"] == "Transform"


def test_transform_is_a_glue_sync_run(definition: Dict[str, Any], synth: Synth) -> None:
    transform = definition["States"]["Transform"]
    assert transform["Resource"].endswith(":states:::glue:startJobRun.sync")
    job = synth.beta_stack.catalog.transform_job
    assert transform["Parameters"]["JobName"] == f"<{logical_id(synth.beta_stack, job)}>"
    assert transform["Retry"][0]["ErrorEquals"] == GLUE_TRANSIENT
    assert transform["Catch"][0]["Next"] == "NotifyFailure"
    assert transform["Next"] == "Done"


def test_failure_publishes_to_sns_then_fails(definition: Dict[str, Any], synth: Synth) -> None:
    notify = definition["States"]["NotifyFailure"]
    assert notify["Resource"].endswith(":states:::sns:publish")
    assert notify["Parameters"]["TopicArn"] == f"<{logical_id(synth.beta_stack, synth.beta_stack.alerts.topic)}>"
    assert notify["Next"] == "Failed"
    assert definition["States"]["Failed"]["Type"] == "Fail"


def test_state_machine_logs_traces_and_times_out(synth: Synth) -> None:
    props = only(synth.beta, "AWS::StepFunctions::StateMachine")["Properties"]
    assert props["StateMachineName"] == "Beta-BinanceLake-run"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert json.loads(flatten(props["DefinitionString"]))["TimeoutSeconds"] == 1800


def test_guard_may_list_only_its_own_executions(synth: Synth) -> None:
    stack = synth.beta_stack
    statements = policy_statements(synth.beta, logical_id(stack, stack.orchestration.state_machine.role))
    listing = [s for s in statements if "states:ListExecutions" in as_list(s["Action"])]
    assert len(listing) == 1
    assert flatten(listing[0]["Resource"]) == \
        "arn:aws:states:eu-west-1:222222222222:stateMachine:Beta-BinanceLake-run"


def test_schedule_every_five_minutes_targets_the_state_machine(synth: Synth) -> None:
    schedule = only(synth.beta, "AWS::Scheduler::Schedule")["Properties"]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    sm_id = logical_id(synth.beta_stack, synth.beta_stack.orchestration.state_machine)
    assert target["Arn"] == {"Ref": sm_id}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
