"""Alerts topic, alarms and a small dashboard.

Alarms: a failed/timed-out/aborted run, Lambda errors and throttles, data
freshness (``BinanceLake/MinutesSinceLastClosedCandle`` per symbol, published by
the transform), and partitions the daily verify job left unrepaired
(``BinanceLake/VerifyUnrepairedPartitions``, published by binance_lake.verify).
Freshness treats missing data as breaching: a pipeline that stopped publishing
is exactly the failure this alarm exists for.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from binance_lake.aws.metrics import FRESHNESS_METRIC, METRIC_NAMESPACE, VERIFY_UNREPAIRED_METRIC


class AlertTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, email: Optional[str]) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", display_name="binance-lake alerts", master_key=key, enforce_ssl=True)
        if email:
            self.topic.add_subscription(subs.EmailSubscription(email))


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, topic: sns.ITopic, state_machine: sfn.IStateMachine,
                 functions: Dict[str, lambda_.IFunction], symbols: Sequence[str],
                 freshness_threshold_minutes: int, dashboard_name: str) -> None:
        super().__init__(scope, construct_id)
        self._action = cw_actions.SnsAction(topic)
        self.alarms: List[cw.Alarm] = []
        self._run_alarms(state_machine)
        for name, fn in functions.items():
            self._lambda_alarms(name, fn)
        freshness = [self._freshness_metric(s) for s in symbols]
        for symbol, metric in zip(symbols, freshness):
            # Alarm on the plain metric (a labelled one would render as a metric-math query).
            self._alarm(f"Freshness{symbol}", metric, threshold=freshness_threshold_minutes,
                        description=f"No closed {symbol} candle in the lake for over "
                                    f"{freshness_threshold_minutes} minutes (or the metric stopped)",
                        missing=cw.TreatMissingData.BREACHING, operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD)
        self._alarm("VerifyUnrepaired", cw.Metric(namespace=METRIC_NAMESPACE, metric_name=VERIFY_UNREPAIRED_METRIC,
                                                  statistic="Maximum", period=Duration.days(1)),
                    threshold=0, operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    description="The daily verify left curated partitions unrepaired (mismatch, unexplained "
                                "rows or lock timeout): see its report under curated/_verify/")
        self.dashboard = self._dashboard(dashboard_name, state_machine, functions, freshness)

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

    @staticmethod
    def _freshness_metric(symbol: str) -> cw.Metric:
        return cw.Metric(namespace=METRIC_NAMESPACE, metric_name=FRESHNESS_METRIC, dimensions_map={"Symbol": symbol},
                         statistic="Maximum", period=Duration.minutes(15))

    def _dashboard(self, name: str, sm: sfn.IStateMachine, functions: Dict[str, lambda_.IFunction],
                   freshness: List[cw.Metric]) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=name, default_interval=Duration.days(1))
        dashboard.add_widgets(
            cw.GraphWidget(title="Freshness (minutes since last closed candle)",
                           left=[m.with_(label=f"{m.dimensions['Symbol']} minutes behind") for m in freshness],
                           width=12),
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
