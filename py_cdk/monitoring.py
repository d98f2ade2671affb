"""Alerts topic, alarms and a saved Logs Insights query (no dashboard: see ``_freshness_query``).

Alarms: a failed/timed-out/aborted run, data
freshness (ONE alarm on ``BinanceLake/StalestCandleMinutesBehind``, the stalest of every
configured symbol and interval, published by the transform without dimensions: the alarm
count and the metric count no longer grow with the symbols, issue 14 lever 1), and
partitions the verify job left unrepaired (``BinanceLake/VerifyUnrepairedPartitions``,
published by binance_lake.aws.metrics.publish_verify). No Lambda errors/throttles alarms (issue 21,
-0.60 USD/month): the three Lambdas run only as Tasks of the state machine, and every failure of
one (error, timeout, throttle; after its retries) ends the run in NotifyFailure and a failed
execution, which RunFailed alarms on (proved on the synthesized definition:
tests/cdk/test_orchestration.py::test_every_lambda_failure_fails_the_run). A failed attempt that a
retry recovers is not alarmed (the run delivered); the Lambda console still graphs its Errors and
Throttles. Freshness treats missing data as breaching: a pipeline that stopped publishing (or a
symbol with no curated candle at all) is exactly the failure this alarm exists for. Which symbol
is stale: the saved Logs Insights query ``binance-lake-<stage>/minutes-behind-by-symbol``
(FRESHNESS_QUERY below, on the transform's log line; docs/cloud.md).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from binance_lake.aws.metrics import FRESHNESS_METRIC, METRIC_NAMESPACE, VERIFY_UNREPAIRED_METRIC

# Each symbol's minutes behind, stalest first, from the transform's "transform done" log line (a
# JSON list ``freshness``): jsonParse + unnest turn it into one row per symbol and interval
# (CloudWatch Logs Insights, "unnest": docs.aws.amazon.com/AmazonCloudWatch/latest/logs/
# CWL_QuerySyntax-Unnest.html). The commands are joined with "\n| " (Logs Insights pipes commands).
FRESHNESS_QUERY = (
    'filter message = "transform done"',
    "fields jsonParse(@message) as m",
    "unnest m.freshness into f",
    "stats max(f.minutes_behind) as minutes_behind by f.symbol, f.interval",
    "sort minutes_behind desc",
    "limit 25",
)


# Glue job run states that end a run abnormally ("AWS Glue job run statuses": FAILED, ERROR,
# TIMEOUT; "Automating AWS Glue with EventBridge": "Glue Job State Change" events carry the state).
GLUE_FAILED_STATES = ("FAILED", "TIMEOUT", "ERROR")
# The verify alarm's range: the longest CloudWatch allows for daily periods (7 x 86,400 s).
VERIFY_WINDOW_DAYS = 7


class AlertTopic(Construct):
    """The alerts topic, and who may publish to it.

    ``enforce_ssl`` makes CDK write a topic policy, and a topic policy replaces SNS's default
    one: without an explicit Allow, CloudWatch alarms fail with "not authorized to perform:
    SNS:Publish" (AWS Knowledge Center, "cloudwatch-receive-sns-for-alarm-trigger", which
    also gives the ``ArnLike aws:SourceArn`` condition used here). The Glue failure rule gets the
    same, limited to that one rule (Monitoring). The state machine publishes
    with its IAM role (same account), so it needs no topic statement.
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, email: Optional[str]) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", display_name="binance-lake alerts", master_key=key, enforce_ssl=True)
        stack = Stack.of(self)
        self.allow_service("AlarmsPublish", "cloudwatch.amazonaws.com",
                           f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*")
        if email:
            self.topic.add_subscription(subs.EmailSubscription(email))

    def allow_service(self, sid: str, service: str, source_arn: str) -> None:
        """Let one AWS service publish, only on behalf of ``source_arn`` (a pattern) in this account."""
        account = Stack.of(self).account
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid=sid, principals=[iam.ServicePrincipal(service)], actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn": source_arn}, "StringEquals": {"aws:SourceAccount": account}}))


@jsii.implements(events.IRuleTarget)
class _TopicTarget:
    """An SNS target without aws_events_targets.SnsTopic's grant: that one adds an Allow for
    events.amazonaws.com with no condition (any account's rule); AlertTopic.allow_service adds
    the one for this rule only."""

    def __init__(self, topic: sns.ITopic, message: events.RuleTargetInput) -> None:
        self._topic, self._message = topic, message

    def bind(self, _rule: events.IRule, _id: Optional[str] = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._topic.topic_arn, input=self._message)


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, alerts: AlertTopic, state_machine: sfn.IStateMachine,
                 transform_logs: logs.ILogGroup, freshness_threshold_minutes: int, query_prefix: str,
                 glue_jobs: Sequence[glue.IJob] = ()) -> None:
        super().__init__(scope, construct_id)
        topic = alerts.topic
        self._action = cw_actions.SnsAction(topic)
        self.alarms: List[cw.Alarm] = []
        self._run_alarms(state_machine)
        freshness = cw.Metric(namespace=METRIC_NAMESPACE, metric_name=FRESHNESS_METRIC, statistic="Maximum",
                              period=Duration.minutes(15))
        # Alarm on the plain metric (a labelled one would render as a metric-math query).
        self._alarm("Freshness", freshness, threshold=freshness_threshold_minutes,
                    description=f"A configured symbol has no closed candle in the lake for over "
                                f"{freshness_threshold_minutes} minutes past its interval (or the metric stopped: "
                                f"also when a symbol has no curated candle at all). Which one: the saved Logs "
                                f"Insights query {query_prefix}/minutes-behind-by-symbol (docs/cloud.md, Freshness)",
                    missing=cw.TreatMissingData.BREACHING, operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD)
        self._verify_alarm()
        self.glue_failures = self._glue_failure_rule(alerts, glue_jobs) if glue_jobs else None
        self.freshness_query = self._freshness_query(query_prefix, transform_logs)

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

    def _verify_alarm(self) -> cw.Alarm:
        """Unrepaired partitions in any run of the last VERIFY_WINDOW_DAYS days -> ALARM; no run
        published anything in that window -> INSUFFICIENT_DATA, which notifies too.

        The verify runs twice a week (py_cdk/catalog.py VERIFY_CRON), so a day without a datapoint
        is normal: "missing" (not "breaching") leaves those days out, and "if all data points in
        the alarm evaluation range are missing, the alarm transitions to INSUFFICIENT_DATA"
        (CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data"). 7 daily
        periods is the longest range CloudWatch allows (PutMetricAlarm: Period x EvaluationPeriods
        <= 604,800 s). A run that fails (unrepaired partitions make it exit non-zero) also reaches
        the topic at once through the GlueJobFailed rule, each time: the alarm stays in ALARM while
        the bad day is in its range, so a second bad run within it would not notify again here."""
        alarm = cw.Alarm(
            self, "VerifyUnrepaired", threshold=0, evaluation_periods=VERIFY_WINDOW_DAYS, datapoints_to_alarm=1,
            metric=cw.Metric(namespace=METRIC_NAMESPACE, metric_name=VERIFY_UNREPAIRED_METRIC, statistic="Maximum",
                             period=Duration.days(1)),
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.MISSING,
            alarm_description=f"The verify left curated partitions unrepaired (mismatch, unexplained rows or lock "
                              f"timeout) in a run of the last {VERIFY_WINDOW_DAYS} days (ALARM), or no verify "
                              f"published anything for {VERIFY_WINDOW_DAYS} days (INSUFFICIENT_DATA: it failed or "
                              "never started; it runs Monday and Thursday): see its report under "
                              "curated/_verify/ and docs/operations.md")
        for add in (alarm.add_alarm_action, alarm.add_ok_action, alarm.add_insufficient_data_action):
            add(self._action)
        self.alarms.append(alarm)
        return alarm

    def _glue_failure_rule(self, alerts: AlertTopic, jobs: Sequence[glue.IJob]) -> events.Rule:
        """Glue job runs that end FAILED/TIMEOUT/ERROR -> the alerts topic, with the run's message.

        Event fields (detail.jobName, state, jobRunId, message): "Automating AWS Glue with
        EventBridge" (AWS Glue Developer Guide). A failed backfill or verify publishes no
        metric, so without this rule nobody would hear of it."""
        rule = events.Rule(
            self, "GlueJobFailed", description="binance-lake: a Glue job run failed, timed out or errored",
            event_pattern=events.EventPattern(
                source=["aws.glue"], detail_type=["Glue Job State Change"],
                detail={"jobName": [job.job_name for job in jobs], "state": list(GLUE_FAILED_STATES)}))
        rule.add_target(_TopicTarget(alerts.topic, events.RuleTargetInput.from_object({
            "alert": "binance-lake Glue job run failed",
            "job": events.EventField.from_path("$.detail.jobName"),
            "state": events.EventField.from_path("$.detail.state"),
            "run": events.EventField.from_path("$.detail.jobRunId"),
            "message": events.EventField.from_path("$.detail.message"),
        })))
        alerts.allow_service("GlueFailureRulePublish", "events.amazonaws.com", rule.rule_arn)
        return rule

    def _run_alarms(self, sm: sfn.IStateMachine) -> None:
        period = Duration.minutes(5)
        self._alarm("RunFailed", sm.metric_failed(period=period, statistic="Sum"), threshold=1,
                    description="A binance-lake run failed")
        self._alarm("RunTimedOut", sm.metric_timed_out(period=period, statistic="Sum"), threshold=1,
                    description="A binance-lake run timed out")
        self._alarm("RunAborted", sm.metric_aborted(period=period, statistic="Sum"), threshold=1,
                    description="A binance-lake run was aborted")

    def _freshness_query(self, prefix: str, transform_logs: logs.ILogGroup) -> logs.CfnQueryDefinition:
        """Which symbol is stale, as a saved Logs Insights query on the transform's log group.

        It replaces the stack's dashboard (issue 21): a dashboard is billed 3 USD a month beyond the
        account's first three ("dashboards at $3 each", factualminds.com CloudWatch pricing guide;
        free tier "3 dashboards", aws.amazon.com/cloudwatch/pricing), more than half of what a
        1-symbol lake may cost. A saved query has no monthly charge: Logs Insights bills the bytes
        a query scans when someone runs it (0.005 USD/GB, same guide). What the dashboard graphed
        (runs, freshness, Lambda errors and durations, alarm states) is on the Step Functions,
        Lambda and CloudWatch alarm consoles, which are not billed."""
        return logs.CfnQueryDefinition(
            self, "FreshnessQuery", name=f"{prefix}/minutes-behind-by-symbol",
            query_string="\n| ".join(FRESHNESS_QUERY), log_group_names=[transform_logs.log_group_name])
