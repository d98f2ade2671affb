"""The 5-minute run: a Step Functions state machine on an EventBridge Scheduler schedule.

    CheckNotRunning -> AlreadyRunning? --yes--> SkipOverlap (Succeed)
                                     --no---> Extract (Parallel: Candles | Orders)
                                              -> Transform (Glue .sync) -> Done
    any failure -> NotifyFailure (SNS) -> Failed

No overlap, in three layers: (1) the first state lists this state machine's RUNNING
executions (SDK integration ``states:listExecutions``) and ends the run as a no-op
if any other is running; (2) each Lambda has reserved concurrency 1; (3) the Glue
transform job has ``MaxConcurrentRuns`` 1 (a second start fails with
``ConcurrentRunsExceededException`` instead of running twice).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

# Errors worth retrying: Lambda/Glue throttling and transient service failures, and
# any task failure (a Binance 5xx/429 surfaces as a handler exception) with backoff.
LAMBDA_TRANSIENT = ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
                    "Lambda.SdkClientException"]
GLUE_TRANSIENT = ["Glue.ConcurrentRunsExceededException", "Glue.ThrottlingException",
                  "Glue.InternalServiceException"]


class Orchestration(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, candles: lambda_.IFunction,
                 orders: lambda_.IFunction, transform_job: glue.IJob, topic: sns.ITopic, key: kms.IKey,
                 schedule_minutes: int) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # A fixed name lets the guard state list its own executions without a circular reference.
        self.state_machine_name = f"{stack.stack_name}-run"
        self._arn = stack.format_arn(service="states", resource="stateMachine",
                                     resource_name=self.state_machine_name,
                                     arn_format=ArnFormat.COLON_RESOURCE_NAME)
        notify = self._notify_failure(topic)
        work = self._extract(candles, orders, notify).next(self._transform(transform_job, notify)) \
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
            timeout=Duration.minutes(30), tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self.schedule = self._schedule(schedule_minutes)

    def _guard(self) -> tasks.CallAwsService:
        return tasks.CallAwsService(
            self, "CheckNotRunning", service="sfn", action="listExecutions", iam_action="states:ListExecutions",
            iam_resources=[self._arn],
            parameters={"StateMachineArn.$": "$$.StateMachine.Id", "StatusFilter": "RUNNING", "MaxResults": 10},
            # This execution is one of the RUNNING ones: more than 1 means an overlap.
            result_selector={"running.$": "States.ArrayLength($.Executions)"},
        )

    def _invoke(self, cid: str, fn: lambda_.IFunction) -> tasks.LambdaInvoke:
        # The execution id is the handlers' log correlation id (binance_lake.cloud.correlation_id).
        task = tasks.LambdaInvoke(self, cid, lambda_function=fn, payload_response_only=True,
                                  payload=sfn.TaskInput.from_object({"execution_id": sfn.JsonPath.execution_id}),
                                  retry_on_service_exceptions=False, result_path=sfn.JsonPath.DISCARD,
                                  task_timeout=sfn.Timeout.duration(Duration.minutes(5)))
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

    def _transform(self, job: glue.IJob, notify: sfn.IChainable) -> tasks.GlueStartJobRun:
        task = tasks.GlueStartJobRun(self, "Transform", glue_job_name=job.job_name,
                                     integration_pattern=sfn.IntegrationPattern.RUN_JOB,
                                     # Merged over the job's default arguments: the log correlation id.
                                     arguments=sfn.TaskInput.from_object(
                                         {"--execution_id": sfn.JsonPath.execution_id}),
                                     result_path=sfn.JsonPath.DISCARD,
                                     task_timeout=sfn.Timeout.duration(Duration.minutes(20)))
        task.add_retry(errors=GLUE_TRANSIENT, interval=Duration.seconds(20), max_attempts=3, backoff_rate=2)
        task.add_catch(notify, errors=["States.ALL"], result_path="$.error")
        return task

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
