"""State machine definition, the overlap guard, retries/catch, the transform Lambda, the schedule."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from py_cdk.orchestration import LAMBDA_TRANSIENT

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


def test_transform_is_the_lambda_after_the_extractors(definition: Dict[str, Any], synth: Synth) -> None:
    stack = synth.beta_stack
    transform = definition["States"]["Transform"]
    assert transform["Type"] == "Task"
    assert transform["Resource"] == f"<{logical_id(stack, stack.transform.function)}.Arn>"
    assert transform["Parameters"] == {"execution_id.$": "$$.Execution.Id"}
    assert transform["TimeoutSeconds"] == 660  # longer than the function's own 10 minutes
    throttling, failed = transform["Retry"]
    assert throttling["ErrorEquals"] == LAMBDA_TRANSIENT and failed["ErrorEquals"] == ["States.TaskFailed"]
    assert transform["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}]
    assert transform["Next"] == "Done"
    # No Glue anywhere in the tick: no .sync integration, no Glue job to wait for.
    assert not [s for s in definition["States"].values() if "glue" in str(s.get("Resource", ""))]


def test_standard_workflow_because_the_guard_lists_executions(synth: Synth) -> None:
    props = only(synth.beta, "AWS::StepFunctions::StateMachine")["Properties"]
    assert props.get("StateMachineType", "STANDARD") == "STANDARD"


def test_state_machine_may_publish_to_the_encrypted_topic(synth: Synth) -> None:
    stack = synth.beta_stack
    statements = policy_statements(synth.beta, logical_id(stack, stack.orchestration.state_machine.role))
    key = f"<{logical_id(stack, stack.storage.key)}.Arn>"
    topic = f"<{logical_id(stack, stack.alerts.topic)}>"
    granted: Dict[str, set] = {}
    for st in statements:
        for action in as_list(st["Action"]):
            granted.setdefault(action, set()).update(flatten(r) for r in as_list(st["Resource"]))
    assert granted["sns:Publish"] == {topic}
    # SNS encrypts with the topic's CMK on the publisher's behalf: both are needed on that key.
    assert key in granted["kms:GenerateDataKey*"] and key in granted["kms:Decrypt"]
    topic_key = only(synth.beta, "AWS::SNS::Topic")["Properties"]["KmsMasterKeyId"]
    assert flatten(topic_key) == key


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


def test_first_schedule_waits_for_the_glue_libraries(synth: Synth) -> None:
    (schedule,) = [r for r in synth.beta.find_resources("AWS::Scheduler::Schedule").values()]
    (deployment,) = synth.beta.find_resources("Custom::CDKBucketDeployment")  # the core + pinned wheels
    assert deployment in schedule["DependsOn"]
