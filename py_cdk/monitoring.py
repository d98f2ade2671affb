"""Alerts topic, alarms and a small dashboard.

Alarms: a failed/timed-out/aborted run, Lambda errors and throttles, data
freshness (ONE alarm on ``BinanceLake/StalestCandleMinutesBehind``, the stalest of every
configured symbol and interval, published by the transform without dimensions: the alarm
count and the metric count no longer grow with the symbols, issue 14 lever 1), and
partitions the daily verify job left unrepaired (``BinanceLake/VerifyUnrepairedPartitions``,
published by binance_lake.aws.metrics.publish_verify). Freshness treats missing data as
breaching: a pipeline that stopped publishing (or a symbol with no curated candle at all) is
exactly the failure this alarm exists for. Which symbol is stale: the dashboard's Logs
Insights table (the transform's log line), FRESHNESS_QUERY below and in docs/cloud.md.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from binance_lake.aws.metrics import FRESHNESS_METRIC, METRIC_NAMESPACE, VERIFY_UNREPAIRED_METRIC

# Each symbol's minutes behind, stalest first, from the transform's "transform done" log line (a
# JSON list ``freshness``): jsonParse + unnest turn it into one row per symbol and interval
# (CloudWatch Logs Insights, "unnest": docs.aws.amazon.com/AmazonCloudWatch/latest/logs/
# CWL_QuerySyntax-Unnest.html). The lines are joined with "\n|" (LogQueryWidget.query_lines).
FRESHNESS_QUERY = (
    'filter message = "transform done"',
    "fields jsonParse(@message) as m",
    "unnest m.freshness into f",
    "stats max(f.minutes_behind) as minutes_behind by f.symbol, f.interval",
    "sort minutes_behind desc",
    "limit 25",
)


class AlertTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, email: Optional[str]) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", display_name="binance-lake alerts", master_key=key, enforce_ssl=True)
        if email:
            self.topic.add_subscription(subs.EmailSubscription(email))


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, topic: sns.ITopic, state_machine: sfn.IStateMachine,
                 functions: Dict[str, lambda_.IFunction], transform_logs: logs.ILogGroup,
                 freshness_threshold_minutes: int, dashboard_name: str) -> None:
        super().__init__(scope, construct_id)
        self._action = cw_actions.SnsAction(topic)
        self.alarms: List[cw.Alarm] = []
        self._run_alarms(state_machine)
        for name, fn in functions.items():
            self._lambda_alarms(name, fn)
        freshness = cw.Metric(namespace=METRIC_NAMESPACE, metric_name=FRESHNESS_METRIC, statistic="Maximum",
                              period=Duration.minutes(15))
        # Alarm on the plain metric (a labelled one would render as a metric-math query).
        self._alarm("Freshness", freshness, threshold=freshness_threshold_minutes,
                    description=f"A configured symbol has no closed candle in the lake for over "
                                f"{freshness_threshold_minutes} minutes past its interval (or the metric stopped: "
                                f"also when a symbol has no curated candle at all). Which one: the dashboard's "
                                f"'Minutes behind by symbol' table (docs/cloud.md, Freshness)",
                    missing=cw.TreatMissingData.BREACHING, operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD)
        self._alarm("VerifyUnrepaired", cw.Metric(namespace=METRIC_NAMESPACE, metric_name=VERIFY_UNREPAIRED_METRIC,
                                                  statistic="Maximum", period=Duration.days(1)),
                    threshold=0, operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    description="The daily verify left curated partitions unrepaired (mismatch, unexplained "
                                "rows or lock timeout): see its report under curated/_verify/")
        self.dashboard = self._dashboard(dashboard_name, state_machine, functions, freshness, transform_logs)

    def _alarm(self, cid: str, metric: cw.IMetric, *, threshold: float, description: str,
               missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
               operator: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
               ) -> cw.Alarm:
        alarm = cw.Alarm(self, cid, metric=metric, threshold=threshold, evaluation_periods=1,
                         comparison_operator=operator, treat_missing_data=missing, alarm_description=description)
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _run_alarms(self, sm: sfn.IStateMachine) -> None:
        period = Duration.minutes(5)
        self._alarm("RunFailed", sm.metric_failed(period=period, statistic="Sum"), threshold=1,
                    description="A binance-lake run failed")
        self._alarm("RunTimedOut", sm.metric_timed_out(period=period, statistic="Sum"), threshold=1,
                    description="A binance-lake run timed out")
        self._alarm("RunAborted", sm.metric_aborted(period=period, statistic="Sum"), threshold=1,
                    description="A binance-lake run was aborted")

    def _lambda_alarms(self, name: str, fn: lambda_.IFunction) -> None:
        period = Duration.minutes(5)
        self._alarm(f"{name.capitalize()}Errors", fn.metric_errors(period=period, statistic="Sum"), threshold=1,
                    description=f"The {name} Lambda raised an error")
        # No reserved concurrency: a throttle means the account's concurrency quota was exhausted.
        self._alarm(f"{name.capitalize()}Throttles", fn.metric_throttles(period=period, statistic="Sum"),
                    threshold=1, description=f"The {name} Lambda was throttled (account concurrency exhausted)")

    def _dashboard(self, name: str, sm: sfn.IStateMachine, functions: Dict[str, lambda_.IFunction],
                   freshness: cw.Metric, transform_logs: logs.ILogGroup) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=name, default_interval=Duration.days(1))
        dashboard.add_widgets(
            cw.GraphWidget(title="Freshness (minutes behind, stalest symbol)",
                           left=[freshness.with_(label="stalest symbol, minutes behind")], width=12),
            cw.LogQueryWidget(title="Minutes behind by symbol (transform log)",
                              log_group_names=[transform_logs.log_group_name], query_lines=list(FRESHNESS_QUERY),
                              width=12),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Runs", left=[sm.metric_succeeded(statistic="Sum"), sm.metric_failed(statistic="Sum")],
                           width=12),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Extractor errors / throttles",
                           left=[m for fn in functions.values()
                                 for m in (fn.metric_errors(statistic="Sum"), fn.metric_throttles(statistic="Sum"))],
                           width=12),
            cw.GraphWidget(title="Extractor duration (max)",
                           left=[fn.metric_duration(statistic="Maximum") for fn in functions.values()], width=12),
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24),
        )
        return dashboard
