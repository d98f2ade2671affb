"""The 5-minute run: a Step Functions state machine on an EventBridge Scheduler schedule.

    CheckNotRunning -> AlreadyRunning? --yes--> SkipOverlap (Succeed)
                                     --no---> Extract (Parallel: Candles | Orders)
                                              -> Transform (Lambda) -> Done
    any failure -> NotifyFailure (SNS) -> Failed

No overlap: the first state lists this state machine's RUNNING executions (SDK
integration ``states:listExecutions``) and ends the run as a no-op if any other is
running; and the transform holds a per-symbol lease in the lake (binance_lake.lock), so
even a manual invoke cannot fold the same partition twice. No reserved concurrency
(see py_cdk/extractors.py for why).

A STANDARD workflow (see docs/cost.md for the judgement): the guard needs
``ListExecutions``, which AWS does not support for EXPRESS state machines (Step Functions
API Reference, ListExecutions: "This API action is not supported by EXPRESS state
machines"), and Standard keeps the execution history that docs/cloud.md's runbook reads.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from py_cdk import nag

# Errors worth retrying: Lambda throttling and transient service failures, and
# any task failure (a Binance 5xx/429 surfaces as a handler exception) with backoff.
LAMBDA_TRANSIENT = ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
                    "Lambda.SdkClientException"]


class Orchestration(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, candles: lambda_.IFunction,
                 orders: lambda_.IFunction, transform: lambda_.IFunction, topic: sns.ITopic, key: kms.IKey,
                 schedule_minutes: int) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # A fixed name lets the guard state list its own executions without a circular reference.
        self.state_machine_name = f"{stack.stack_name}-run"
        self._arn = stack.format_arn(service="states", resource="stateMachine",
                                     resource_name=self.state_machine_name,
                                     arn_format=ArnFormat.COLON_RESOURCE_NAME)
        notify = self._notify_failure(topic)
        work = self._extract(candles, orders, notify).next(self._transform(transform, notify)) \
            .next(sfn.Succeed(self, "Done"))
        definition = self._guard().next(
            sfn.Choice(self, "AlreadyRunning?")
            .when(sfn.Condition.number_greater_than("$.running", 1),
                  sfn.Succeed(self, "SkipOverlap", comment="another execution is still running"))
            .otherwise(work))
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD, timeout=Duration.minutes(30), tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant_encrypted_publish(key)
        self._acknowledge_role(candles, orders, transform)
        self.schedule = self._schedule(schedule_minutes)

    def _guard(self) -> tasks.CallAwsService:
        return tasks.CallAwsService(
            self, "CheckNotRunning", service="sfn", action="listExecutions", iam_action="states:ListExecutions",
            iam_resources=[self._arn],
            parameters={"StateMachineArn.$": "$$.StateMachine.Id", "StatusFilter": "RUNNING", "MaxResults": 10},
            # This execution is one of the RUNNING ones: more than 1 means an overlap.
            result_selector={"running.$": "States.ArrayLength($.Executions)"},
        )

    def _invoke(self, cid: str, fn: lambda_.IFunction, timeout_min: int = 5) -> tasks.LambdaInvoke:
        # The execution id is the handlers' log correlation id (binance_lake.aws.settings.correlation_id).
        task = tasks.LambdaInvoke(self, cid, lambda_function=fn, payload_response_only=True,
                                  payload=sfn.TaskInput.from_object({"execution_id": sfn.JsonPath.execution_id}),
                                  retry_on_service_exceptions=False, result_path=sfn.JsonPath.DISCARD,
                                  task_timeout=sfn.Timeout.duration(Duration.minutes(timeout_min)))
        task.add_retry(errors=LAMBDA_TRANSIENT, interval=Duration.seconds(5), max_attempts=4, backoff_rate=2,
                       jitter_strategy=sfn.JitterType.FULL)
        task.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(30), max_attempts=2,
                       backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)
        return task

    def _extract(self, candles: lambda_.IFunction, orders: lambda_.IFunction, notify: sfn.IChainable) -> sfn.Parallel:
        parallel = sfn.Parallel(self, "Extract", result_path=sfn.JsonPath.DISCARD)
        parallel.branch(self._invoke("Candles", candles)).branch(self._invoke("Orders", orders))
        parallel.add_catch(notify, errors=["States.ALL"], result_path="$.error")
        return parallel

    def _transform(self, fn: lambda_.IFunction, notify: sfn.IChainable) -> tasks.LambdaInvoke:
        # Same retries as the extractors; the task waits a little longer than the Lambda's 10 minutes.
        task = self._invoke("Transform", fn, timeout_min=11)
        task.add_catch(notify, errors=["States.ALL"], result_path="$.error")
        return task

    def _grant_encrypted_publish(self, key: kms.IKey) -> None:
        """Publishing to a topic encrypted with a customer managed key needs kms:GenerateDataKey*
        and kms:Decrypt on that key besides sns:Publish (Amazon SNS Developer Guide, "Key
        management": the publisher's permissions for an encrypted topic). SnsPublish grants
        only sns:Publish, so the state machine's role gets the key explicitly."""
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            sid="PublishToEncryptedTopic", actions=["kms:GenerateDataKey*", "kms:Decrypt"],
            resources=[key.key_arn]))

    def _acknowledge_role(self, *functions: lambda_.IFunction) -> None:
        nag.acknowledge(
            nag.policy(self.state_machine.role), nag.IAM5,
            "Generated by aws-cdk-lib: LambdaInvoke may invoke the function's versions/aliases (<arn>:*); "
            "X-Ray tracing and CloudWatch Logs delivery (SF1/SF2) do not support resource-level permissions; "
            "publishing to the KMS-encrypted alerts topic needs kms:GenerateDataKey* on the lake key "
            "(Amazon SNS key management).",
            [f"Resource::{nag.ref(fn, 'Arn')}:*" for fn in functions] + ["Resource::*", "Action::kms:GenerateDataKey*"])

    def _notify_failure(self, topic: sns.ITopic) -> sfn.IChainable:
        publish = tasks.SnsPublish(
            self, "NotifyFailure", topic=topic, subject="binance-lake run failed",
            message=sfn.TaskInput.from_object({
                "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
            }),
            result_path=sfn.JsonPath.DISCARD)
        return publish.next(sfn.Fail(self, "Failed", error="BinanceLakeRunFailed",
                                     cause="extract or transform failed; see the SNS notification"))

    def _schedule(self, minutes: int) -> scheduler.Schedule:
        return scheduler.Schedule(
            self, "Schedule", schedule=scheduler.ScheduleExpression.rate(Duration.minutes(minutes)),
            description=f"binance-lake run every {minutes} minutes",
            # No retries: a missed tick is covered by the next one (watermarks derive from the data).
            target=targets.StepFunctionsStartExecution(self.state_machine, retry_attempts=0,
                                                       max_event_age=Duration.minutes(minutes)),
        )
