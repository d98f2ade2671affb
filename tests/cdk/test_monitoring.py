"""Alarms (runs, Lambda errors/throttles, freshness) wired to the SNS topic, and the dashboard."""

from __future__ import annotations

from typing import Any, Dict, List

from aws_cdk.assertions import Template

from .support import Synth, logical_id, only, resources


def _alarms(template: Template) -> List[Dict[str, Any]]:
    return [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]


def test_every_alarm_notifies_the_topic(synth: Synth) -> None:
    topic = {"Ref": logical_id(synth.beta_stack, synth.beta_stack.alerts.topic)}
    alarms = _alarms(synth.beta)
    # run failed/timed out/aborted, 3 Lambdas x (errors, throttles), freshness, verify unrepaired
    assert len(alarms) == 3 + 3 * 2 + 1 + 1
    for alarm in alarms:
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]


def test_state_machine_and_lambda_alarms(synth: Synth) -> None:
    by_metric: Dict[str, list] = {}
    for alarm in _alarms(synth.beta):
        by_metric.setdefault(f"{alarm['Namespace']}/{alarm['MetricName']}", []).append(alarm)
    assert len(by_metric["AWS/States/ExecutionsFailed"]) == 1
    assert len(by_metric["AWS/States/ExecutionsTimedOut"]) == 1
    assert len(by_metric["AWS/Lambda/Errors"]) == 3  # candles, orders, transform
    assert len(by_metric["AWS/Lambda/Throttles"]) == 3
    for alarm in by_metric["AWS/States/ExecutionsFailed"] + by_metric["AWS/Lambda/Errors"]:
        assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"


def test_freshness_alarm_treats_missing_data_as_breaching(synth: Synth) -> None:
    alarm = next(a for a in _alarms(synth.beta) if a["MetricName"] == "MinutesSinceLastClosedCandle")
    assert alarm["Namespace"] == "BinanceLake"
    assert alarm["Dimensions"] == [{"Name": "Symbol", "Value": "BTCUSDT"}]
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


def test_dashboard(synth: Synth) -> None:
    dashboard = only(synth.beta, "AWS::CloudWatch::Dashboard")["Properties"]
    assert dashboard["DashboardName"] == "binance-lake-beta"


def test_verify_alarm_fires_on_any_unrepaired_partition(synth: Synth) -> None:
    alarm = next(a for a in _alarms(synth.beta) if a["MetricName"] == "VerifyUnrepairedPartitions")
    assert alarm["Namespace"] == "BinanceLake" and alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Period"] == 86400 and "Dimensions" not in alarm  # binance_lake.verify publishes no dimension
