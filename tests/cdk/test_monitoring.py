"""Alarms (runs, freshness, verify) wired to the SNS topic, and the saved freshness query."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Dict, List

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from py_cdk.application import build

from .support import Synth, cdk_json_context, flatten, logical_id, only, resources


def _alarms(template: Template) -> List[Dict[str, Any]]:
    return [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]


def test_every_alarm_notifies_the_topic(synth: Synth) -> None:
    topic = {"Ref": logical_id(synth.beta_stack, synth.beta_stack.alerts.topic)}
    alarms = _alarms(synth.beta)
    # run failed/timed out/aborted, freshness, verify unrepaired; no Lambda errors/throttles alarms:
    # every Lambda failure fails the run (tests/cdk/test_orchestration.py::test_every_lambda_failure_fails_the_run)
    assert len(alarms) == 3 + 1 + 1
    for alarm in alarms:
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]


def test_state_machine_alarms_cover_the_lambdas(synth: Synth) -> None:
    by_metric: Dict[str, list] = {}
    for alarm in _alarms(synth.beta):
        by_metric.setdefault(f"{alarm['Namespace']}/{alarm['MetricName']}", []).append(alarm)
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        (alarm,) = by_metric[f"AWS/States/{metric}"]
        assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {
            "Ref": logical_id(synth.beta_stack, synth.beta_stack.orchestration.state_machine)}}]
    # A Lambda failure reaches a person as a failed run (RunFailed), not through an alarm of its own.
    assert not [m for m in by_metric if m.startswith("AWS/Lambda/")]
    # The functions are invoked by the state machine only: no other trigger could fail unseen.
    assert not resources(synth.beta, "AWS::Lambda::EventSourceMapping")
    permissions = resources(synth.beta, "AWS::Lambda::Permission").values()
    invokers = {flatten(p["Properties"]["Principal"]) for p in permissions}
    assert not invokers & {"events.amazonaws.com", "scheduler.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com"}


def test_freshness_alarm_treats_missing_data_as_breaching(synth: Synth) -> None:
    (alarm,) = [a for a in _alarms(synth.beta) if a["MetricName"] == "StalestCandleMinutesBehind"]
    assert alarm["Namespace"] == "BinanceLake"
    assert "Dimensions" not in alarm  # the transform publishes the stalest figure without dimensions
    assert alarm["Statistic"] == "Maximum"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == synth.context["binance-lake:freshness-threshold-minutes"]
    assert alarm["TreatMissingData"] == "breaching"


def test_topic_is_encrypted_and_tls_only(synth: Synth) -> None:
    topic = only(synth.beta, "AWS::SNS::Topic")["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [logical_id(synth.beta_stack, synth.beta_stack.storage.key),
                                                      "Arn"]}
    policy = only(synth.beta, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy)


def test_freshness_query_instead_of_a_dashboard(synth: Synth) -> None:
    """Which symbol is stale: a saved Logs Insights query on the transform's log line (a dashboard
    would be billed 3 USD a month; docs/cost.md)."""
    assert not resources(synth.beta, "AWS::CloudWatch::Dashboard")
    query = only(synth.beta, "AWS::Logs::QueryDefinition")["Properties"]
    assert query["Name"] == "binance-lake-beta/minutes-behind-by-symbol"
    transform_logs = logical_id(synth.beta_stack, synth.beta_stack.transform.log_group)
    assert query["LogGroupNames"] == [{"Ref": transform_logs}]
    text = query["QueryString"]
    assert text.startswith('filter message = "transform done"')
    assert "unnest m.freshness into f" in text and "by f.symbol, f.interval" in text
    assert "sort minutes_behind desc" in text
    # The freshness alarm tells the reader where to look.
    (alarm,) = [a for a in _alarms(synth.beta) if a["MetricName"] == "StalestCandleMinutesBehind"]
    assert "binance-lake-beta/minutes-behind-by-symbol" in alarm["AlarmDescription"]


@pytest.fixture(scope="module")
def three_symbols(tmp_path_factory: pytest.TempPathFactory) -> Template:
    context = {**cdk_json_context(), "aws:cdk:bundling-stacks": [],
               "binance-lake:symbols": "BTCUSDT,ETHUSDT,SOLUSDT"}
    app = cdk.App(context=context, outdir=str(Path(tmp_path_factory.mktemp("cdk3.out"))))
    stack = build(app).beta.lake_stack
    app.synth()
    return Template.from_stack(stack)


def test_alarms_and_metrics_do_not_grow_with_symbols(synth: Synth, three_symbols: Template) -> None:
    envs = [f["Properties"].get("Environment", {}).get("Variables", {})
            for f in resources(three_symbols, "AWS::Lambda::Function").values()]
    assert {"BTCUSDT,ETHUSDT,SOLUSDT"} == {e["SYMBOLS"] for e in envs if "SYMBOLS" in e}  # the 3 symbols deploy
    assert len(_alarms(three_symbols)) == len(_alarms(synth.beta)) == 3 + 1 + 1
    (freshness,) = [a for a in _alarms(three_symbols) if a["MetricName"] == "StalestCandleMinutesBehind"]
    assert "Dimensions" not in freshness
    assert "SOLUSDT" not in flatten(only(three_symbols, "AWS::Logs::QueryDefinition"))


def test_verify_alarm_fires_on_any_unrepaired_partition(synth: Synth) -> None:
    alarm = next(a for a in _alarms(synth.beta) if a["MetricName"] == "VerifyUnrepairedPartitions")
    assert alarm["Namespace"] == "BinanceLake" and alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert "Dimensions" not in alarm  # binance_lake.verify publishes no dimension
    # One unrepaired partition in any run of the last 7 days is enough (1 of 7 daily periods)...
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (86400, 7, 1)
    assert alarm["Period"] * alarm["EvaluationPeriods"] <= 604_800  # CloudWatch's longest range (PutMetricAlarm)
    # ...days without a run are not breaches (it runs twice a week), but a week without any published
    # figure (a verify that failed before publishing or never started) is INSUFFICIENT_DATA, which
    # notifies the topic like ALARM does.
    assert alarm["TreatMissingData"] == "missing"
    topic = {"Ref": logical_id(synth.beta_stack, synth.beta_stack.alerts.topic)}
    assert alarm["InsufficientDataActions"] == [topic] and alarm["AlarmActions"] == [topic]


def test_verify_runs_often_enough_for_its_alarm(synth: Synth) -> None:
    """The longest gap between two scheduled verify runs must fit the alarm's 7-day range with a
    margin, or a healthy schedule would read as "published nothing" once a week."""
    from py_cdk.catalog import VERIFY_CRON, VERIFY_DAYS_BACK

    days = VERIFY_CRON.split()[4].split(",")  # cron(min hour day-of-month month DAY-OF-WEEK year)
    order = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    index = sorted(order.index(d) for d in days)
    gaps = [(index[(i + 1) % len(index)] - index[i]) % 7 or 7 for i in range(len(index))]
    alarm = next(a for a in _alarms(synth.beta) if a["MetricName"] == "VerifyUnrepairedPartitions")
    assert max(gaps) + 1 < alarm["EvaluationPeriods"]  # a day of margin for the run time and metric delay
    # ...and each run's range reaches back to the previous run: every day is verified at least once.
    assert max(gaps) <= VERIFY_DAYS_BACK


def _topic_statements(synth: Synth) -> List[Dict[str, Any]]:
    return only(synth.beta, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]


def test_alarms_may_publish_to_the_topic(synth: Synth) -> None:
    """A topic policy replaces SNS's default one: without this Allow every alarm action fails with
    "not authorized to perform: SNS:Publish" (Knowledge Center cloudwatch-receive-sns-for-alarm-trigger)."""
    topic = {"Ref": logical_id(synth.beta_stack, synth.beta_stack.alerts.topic)}
    statements = _topic_statements(synth)
    (allow,) = [s for s in statements if s["Effect"] == "Allow" and s["Principal"] == {"Service":
                                                                                        "cloudwatch.amazonaws.com"}]
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == topic
    pattern = allow["Condition"]["ArnLike"]["aws:SourceArn"]
    assert pattern == "arn:aws:cloudwatch:eu-west-1:222222222222:alarm:*"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": "222222222222"}
    # Every alarm of the stack is covered by the pattern (its ARN is arn:...:alarm:<name>).
    for alarm in resources(synth.beta, "AWS::CloudWatch::Alarm"):
        assert fnmatch.fnmatchcase(f"arn:aws:cloudwatch:eu-west-1:222222222222:alarm:{alarm}", pattern)
    # ...and the TLS-only Deny stays.
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)
    # Nobody else is allowed without a source condition (aws_events_targets.SnsTopic would add one).
    assert all("aws:SourceArn" in s.get("Condition", {}).get("ArnLike", {}) for s in statements
               if s["Effect"] == "Allow")


def test_glue_failures_reach_the_topic(synth: Synth) -> None:
    stack = synth.beta_stack
    (rule_id, rule), = resources(synth.beta, "AWS::Events::Rule").items()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.glue"] and pattern["detail-type"] == ["Glue Job State Change"]
    assert sorted(pattern["detail"]["state"]) == ["ERROR", "FAILED", "TIMEOUT"]
    jobs = [{"Ref": logical_id(stack, j)} for j in (stack.catalog.backfill_job, stack.catalog.verify_job)]
    assert pattern["detail"]["jobName"] == jobs
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": logical_id(stack, stack.alerts.topic)}
    template = target["InputTransformer"]["InputTemplate"]
    for name in ("jobName", "state", "jobRunId", "message"):
        assert f"<detail-{name}>" in template
    (allow,) = [s for s in _topic_statements(synth) if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
