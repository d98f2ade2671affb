"""State machine definition, the overlap guard, retries/catch, the transform Lambda, the schedule."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Tuple

import pytest

from py_cdk.orchestration import LAMBDA_TRANSIENT, WORST_CASE_S

from .support import Synth, as_list, flatten, logical_id, only, policy_statements


@pytest.fixture(scope="module")
def definition(synth: Synth) -> Dict[str, Any]:
    sm = only(synth.beta, "AWS::StepFunctions::StateMachine")
    return json.loads(flatten(sm["Properties"]["DefinitionString"]))


def _choose(choice: Dict[str, Any], data: Dict[str, Any]) -> str:
    """The Next of a Choice state for ``data`` (And/Or/BooleanEquals/NumericGreaterThan[Equals]/StringEquals)."""
    def value(path: str) -> Any:
        out: Any = data
        for part in path.removeprefix("$.").split("."):
            out = out[part]
        return out

    def holds(rule: Dict[str, Any]) -> bool:
        if "And" in rule:
            return all(holds(r) for r in rule["And"])
        if "Or" in rule:
            return any(holds(r) for r in rule["Or"])
        v = value(rule["Variable"])
        ops = {"BooleanEquals": lambda a, b: a is b, "NumericGreaterThan": lambda a, b: a > b,
               "NumericGreaterThanEquals": lambda a, b: a >= b, "StringEquals": lambda a, b: a == b}
        (op,) = [k for k in rule if k in ops]
        return ops[op](v, rule[op])

    return next((c["Next"] for c in choice["Choices"] if holds(c)), choice["Default"])


def test_starts_with_the_lease(definition: Dict[str, Any]) -> None:
    assert definition["StartAt"] == "TakeLease"
    assert definition["States"]["SkipOverlap"]["Type"] == "Succeed"
    # No eventually consistent ListExecutions guard any more: the lease decides alone.
    assert not [s for s in definition["States"].values() if "listExecutions" in str(s.get("Resource", ""))]


def test_candles_and_orders_catch_their_own_failure(definition: Dict[str, Any], synth: Synth) -> None:
    stack = synth.beta_stack
    extract = definition["States"]["Extract"]
    assert extract["Type"] == "Parallel" and extract["Next"] == "Transform"
    assert sorted(b["StartAt"] for b in extract["Branches"]) == ["Candles", "Orders"]
    assert extract["ResultSelector"] == {"candles.$": "$[0]", "orders.$": "$[1]"}
    assert [b["StartAt"] for b in extract["Branches"]] == ["Candles", "Orders"]  # the selector's order
    for branch in extract["Branches"]:
        side = branch["StartAt"]
        task = branch["States"][side]
        fn = getattr(stack.extractors, side.lower())
        assert task["Resource"] == f"<{logical_id(stack, fn)}.Arn>"  # direct invoke: payload only
        throttling, transient = task["Retry"]
        assert throttling["ErrorEquals"] == LAMBDA_TRANSIENT and throttling["JitterStrategy"] == "FULL"
        assert transient["ErrorEquals"] == ["States.TaskFailed"] and transient["MaxAttempts"] == 2
        # The branch ends in a record either way, so the other branch and the transform still run.
        assert task["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{side}Failed"}]
        assert branch["States"][f"{side}Failed"] == {
            "Type": "Pass", "End": True,
            "Parameters": {"failed": True, "error.$": "$.error.Error", "cause.$": "$.error.Cause"}}
        assert task["End"] is True and task["ResultSelector"] == {"failed": False} and "ResultPath" not in task


@pytest.mark.parametrize("candles, orders, expected", [
    (False, False, "ReleaseLease"), (True, False, "NotifyFailure"), (False, True, "NotifyFailure"),
    (True, True, "NotifyFailure")])
def test_a_failed_side_still_fails_the_run_after_the_transform(
        definition: Dict[str, Any], candles: bool, orders: bool, expected: str) -> None:
    choice = definition["States"]["ExtractOk?"]
    assert _choose(choice, {"extract": {"candles": {"failed": candles}, "orders": {"failed": orders}}}) == expected
    assert definition["States"]["Transform"]["Next"] == "ExtractOk?"


def test_transform_is_the_lambda_after_the_extractors(definition: Dict[str, Any], synth: Synth) -> None:
    stack = synth.beta_stack
    transform = definition["States"]["Transform"]
    assert transform["Type"] == "Task"
    assert transform["Resource"] == f"<{logical_id(stack, stack.transform.function)}.Arn>"
    assert transform["Parameters"] == {"execution_id.$": "$$.Execution.Id"}
    assert transform["TimeoutSeconds"] == 660  # longer than the function's own 10 minutes
    throttling, failed = transform["Retry"]
    assert throttling["ErrorEquals"] == LAMBDA_TRANSIENT and failed["ErrorEquals"] == ["States.TaskFailed"]
    assert transform["ResultSelector"] == {"failed": False} and transform["ResultPath"] == "$.transform"
    assert transform["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.transform",
                                   "Next": "NotifyFailure"}]
    # No Glue anywhere in the tick: no .sync integration, no Glue job to wait for.
    assert not [s for s in definition["States"].values() if "glue" in str(s.get("Resource", ""))]


def _task_worst_case(state: Dict[str, Any]) -> float:
    """Every retrier exhausted, each attempt up to TimeoutSeconds, backoff without jitter (capped
    by MaxDelaySeconds). Step Functions' defaults: MaxAttempts 3, IntervalSeconds 1, BackoffRate 2;
    a Task without TimeoutSeconds may run 99999999 s (Amazon States Language, Task state)."""
    timeout = state.get("TimeoutSeconds", 99999999)
    attempts, waits = 1, 0.0
    for r in state.get("Retry", []):
        n = r.get("MaxAttempts", 3)
        attempts += n
        for i in range(n):
            wait = r.get("IntervalSeconds", 1) * r.get("BackoffRate", 2.0) ** i
            waits += min(wait, r.get("MaxDelaySeconds", wait))
    return attempts * timeout + waits


def _longest(states: Dict[str, Any], name: str) -> float:
    """The longest time from entering ``name`` to the end of its (sub-)machine, over every Next,
    Choice branch, Default and Catch edge."""
    state = states[name]
    own = 0.0
    if state["Type"] == "Task":
        own = _task_worst_case(state)
    elif state["Type"] == "Parallel":
        own = max(_longest(b["States"], b["StartAt"]) for b in state["Branches"])
    nexts = [state.get("Next"), state.get("Default"), *[c["Next"] for c in state.get("Choices", [])],
             *[c["Next"] for c in state.get("Catch", [])]]
    return own + max((_longest(states, n) for n in nexts if n), default=0.0)


def test_time_budget_covers_the_worst_case(definition: Dict[str, Any]) -> None:
    """An execution timeout cannot be caught, so NotifyFailure would never run: the state machine's
    timeout must cover the longest path of its tasks' timeouts x attempts + backoff."""
    worst = _longest(definition["States"], definition["StartAt"])
    assert worst < 99999999, "a task without TimeoutSeconds makes the budget unbounded"
    assert definition["TimeoutSeconds"] >= worst
    assert definition["TimeoutSeconds"] <= worst + 300  # and not padded into meaninglessness
    assert definition["TimeoutSeconds"] == int(WORST_CASE_S) + 60  # the construct's own arithmetic agrees


def test_standard_workflow(synth: Synth) -> None:
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
    # The whole run state: which step failed and which did (docs/operations.md reads it).
    assert notify["Parameters"]["Message"] == {"execution.$": "$$.Execution.Id", "run.$": "$"}
    assert notify["Parameters"]["TopicArn"] == f"<{logical_id(synth.beta_stack, synth.beta_stack.alerts.topic)}>"
    assert notify["Next"] == "ReleaseLeaseAfterFailure"
    assert definition["States"]["ReleaseLeaseAfterFailure"]["Next"] == "Failed"
    assert definition["States"]["Failed"]["Type"] == "Fail"


def test_state_machine_logs_traces_and_times_out(synth: Synth) -> None:
    props = only(synth.beta, "AWS::StepFunctions::StateMachine")["Properties"]
    assert props["StateMachineName"] == "Beta-BinanceLake-run"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"


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


def test_the_lease_is_a_conditional_write_taken_over_only_from_an_ended_run(
        definition: Dict[str, Any], synth: Synth) -> None:
    """ListExecutions is eventually consistent; a DynamoDB conditional write is not: the lease is
    what makes the guard exact (rehearsed in tests/cloud/test_alert_rehearsals.py)."""
    stack = synth.beta_stack
    states = definition["States"]
    table = f"<{logical_id(stack, stack.orchestration.lease_table)}>"
    take, steal = states["TakeLease"], states["StealLease"]
    assert take["Resource"].endswith(":states:::dynamodb:putItem") and take["Parameters"]["TableName"] == table
    assert take["Parameters"]["ConditionExpression"] == "attribute_not_exists(lease)"
    assert take["Parameters"]["Item"]["holder"] == {"S.$": "$$.Execution.Id"}
    assert take["Next"] == "Extract" and definition["StartAt"] == "TakeLease"
    lost = {"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "ResultPath": None, "Next": "ReadLease"}
    assert take["Catch"][0] == lost
    assert take["Retry"][0]["ErrorEquals"][0] == "DynamoDB.ConditionalCheckFailedException"
    assert take["Retry"][0]["MaxAttempts"] == 0  # a lost condition is an answer, never retried
    assert states["ReadLease"]["Parameters"]["ConsistentRead"] is True
    # Only a holder that is not RUNNING (or no longer exists) is taken over, and only if it still holds.
    assert _choose(states["HolderRunning?"], {"holder": {"status": "RUNNING"}}) == "SkipOverlap"
    for status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"):
        assert _choose(states["HolderRunning?"], {"holder": {"status": status}}) == "StealLease"
    assert steal["Parameters"]["ConditionExpression"] == "holder = :old"
    assert steal["Parameters"]["ExpressionAttributeValues"] == {":old": {"S.$": "$.lease.Item.holder.S"}}
    assert steal["Catch"][0]["Next"] == "SkipOverlap" and steal["Next"] == "Extract"
    for release in ("ReleaseLease", "ReleaseLeaseAfterFailure"):
        assert states[release]["Parameters"]["ConditionExpression"] == "holder = :me"
        assert states[release]["Catch"][0]["ErrorEquals"] == ["States.ALL"]  # never fails the run
    statements = policy_statements(synth.beta, logical_id(stack, stack.orchestration.state_machine.role))
    granted: Dict[str, set] = {}
    for st in statements:
        for action in as_list(st["Action"]):
            granted.setdefault(action, set()).update(flatten(r) for r in as_list(st["Resource"]))
    # The tasks grant on the table's ARN as they render it (arn:...:table/<name>).
    table_arn = f"arn:aws:dynamodb:eu-west-1:222222222222:table/{table}"
    for action in ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"):
        assert granted[action] == {table_arn}, action
    assert granted["states:DescribeExecution"] == {
        "arn:aws:states:eu-west-1:222222222222:execution:Beta-BinanceLake-run:*"}


# -- every Lambda failure fails the run (why the stack has no Lambda errors/throttles alarms) -------


def _get(data: Any, path: str) -> Any:
    """A JsonPath of dots and [i] (all this definition uses), against ``data``."""
    out = data
    for part in path.removeprefix("$").replace("[", ".[").split("."):
        if part:
            out = out[int(part[1:-1])] if part.startswith("[") else out[part]
    return out


def _put(data: Any, result_path: Any, result: Any, has_key: bool) -> Any:
    """Amazon States Language ResultPath: absent -> "$" (the result replaces the input), null ->
    the input unchanged, "$.a.b" -> the input with the result at a.b."""
    path = result_path if has_key else "$"
    if path is None:
        return data
    if path == "$":
        return copy.deepcopy(result)
    out = copy.deepcopy(data)
    node = out
    *parents, last = path.removeprefix("$.").split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(result)
    return out


def _select(template: Dict[str, Any], data: Any) -> Dict[str, Any]:
    """Parameters/ResultSelector: "key.$" from a path of ``data`` ($$ context paths: a placeholder)."""
    out: Dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            out[key[:-2]] = "<context>" if value.startswith("$$") else _get(data, value)
        else:
            out[key] = value
    return out


def _catches(state: Dict[str, Any], error: str) -> Any:
    """The Catch entry that handles ``error`` (States.TaskFailed matches all but States.Timeout)."""
    for catch in state.get("Catch", []):
        names = catch["ErrorEquals"]
        if error in names or "States.ALL" in names or ("States.TaskFailed" in names and error != "States.Timeout"):
            return catch
    return None


def _run(states: Dict[str, Any], name: str, data: Any, failing: str, error: str, seen: List[str]) -> Tuple[str, Any]:
    """Follow a (sub-)machine from ``name``: the task ``failing`` fails with ``error`` after its
    retries, every other task succeeds with no service output. Returns ("Succeed" | "Fail", output)."""
    while True:
        seen.append(name)
        state = states[name]
        kind = state["Type"]
        if kind in ("Succeed", "Fail"):
            return kind, data
        failure = None
        if kind == "Task":
            if name == failing:
                failure = {"Error": error, "Cause": "rehearsed"}
            else:
                result = _select(state.get("ResultSelector", {}), {})
                data = _put(data, state.get("ResultPath"), result, "ResultPath" in state)
        elif kind == "Pass":
            result = _select(state["Parameters"], data) if "Parameters" in state else data
            data = _put(data, state.get("ResultPath"), result, "ResultPath" in state)
        elif kind == "Parallel":
            ends = [_run(b["States"], b["StartAt"], data, failing, error, seen) for b in state["Branches"]]
            if any(end == "Fail" for end, _ in ends):
                failure = {"Error": "States.BranchFailed", "Cause": "a branch failed"}
            else:
                outputs = [out for _, out in ends]
                result = _select(state["ResultSelector"], outputs) if "ResultSelector" in state else outputs
                data = _put(data, state.get("ResultPath"), result, "ResultPath" in state)
        elif kind == "Choice":
            name = _choose(state, data)
            continue
        else:
            raise AssertionError(f"state type {kind} not rehearsed here: extend _run")
        if failure is not None:
            catch = _catches(state, failure["Error"])
            if catch is None:
                return "Fail", failure  # uncaught: the execution fails (RunFailed alarm)
            data = _put(data, catch.get("ResultPath"), failure, "ResultPath" in catch)
            name = catch["Next"]
            continue
        if state.get("End"):
            return "Succeed", data
        name = state["Next"]


def _lambda_tasks(definition: Dict[str, Any], synth: Synth) -> Dict[str, str]:
    """State name -> the function it invokes, for every Task of the definition that invokes one of
    the stack's Lambdas (at any depth)."""
    stack = synth.beta_stack
    arns = {f"<{logical_id(stack, fn)}.Arn>": key for key, fn in
            {**stack.extractors.functions, "transform": stack.transform.function}.items()}
    found: Dict[str, str] = {}

    def walk(states: Dict[str, Any]) -> None:
        for name, state in states.items():
            if state["Type"] == "Task" and state.get("Resource") in arns:
                found[name] = arns[state["Resource"]]
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(definition["States"])
    return found


# A handler's exception (Lambda.Unknown / its own error name: both States.TaskFailed), a task past its
# TimeoutSeconds, throttling and Lambda service errors once the retries are spent.
LAMBDA_FAILURES = ["States.TaskFailed", "HandlerError", "States.Timeout", "Lambda.TooManyRequestsException",
                   "Lambda.ServiceException"]


def test_every_lambda_failure_fails_the_run(definition: Dict[str, Any], synth: Synth) -> None:
    """The stack has no Lambda errors/throttles alarms (issue 21): that is sound only if every way a
    Lambda Task can fail ends the execution FAILED (RunFailed alarm -> topic) after NotifyFailure.
    Each Lambda Task is failed with each error, the rest of the run succeeding, and the synthesized
    definition is followed through its Catch, Pass, Parallel and Choice states."""
    tasks = _lambda_tasks(definition, synth)
    assert sorted(tasks.values()) == ["candles", "orders", "transform"]  # every function of the stack
    ok_end, _ = _run(definition["States"], definition["StartAt"], {}, failing="", error="", seen=(ok := []))
    assert ok_end == "Succeed" and "NotifyFailure" not in ok and ok[-1] == "ReleaseLease"  # the rehearsal can succeed
    for name in tasks:
        for error in LAMBDA_FAILURES:
            seen: List[str] = []
            end, _ = _run(definition["States"], definition["StartAt"], {}, failing=name, error=error, seen=seen)
            assert end == "Fail", (name, error, seen)
            assert "NotifyFailure" in seen and seen[-1] == "Failed", (name, error, seen)


def test_a_normal_run_enters_seven_states(definition: Dict[str, Any]) -> None:
    """Standard bills each state entered (aws.amazon.com/step-functions/pricing): the release of the
    lease ends the run, no Succeed state after it."""
    seen: List[str] = []
    _run(definition["States"], definition["StartAt"], {}, failing="", error="", seen=seen)
    assert seen == ["TakeLease", "Extract", "Candles", "Orders", "Transform", "ExtractOk?", "ReleaseLease"]
    assert definition["States"]["ReleaseLease"]["End"] is True
