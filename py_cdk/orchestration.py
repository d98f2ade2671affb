"""The 5-minute run: a Step Functions state machine on an EventBridge Scheduler schedule.

    TakeLease --lost--> ReadLease -> LeaseHeld? -> DescribeHolder -> HolderRunning? --yes--> SkipOverlap
                                                                    --no---> StealLease --lost--> SkipOverlap
        -> Extract (Parallel: Candles | Orders, each catches its own failure)
        -> Transform (Lambda) -> ExtractOk? --yes--> ReleaseLease (end: the run succeeded)
                                           --no---> NotifyFailure
    lease, transform (or the Parallel itself) failed
        -> NotifyFailure (SNS) -> ReleaseLeaseAfterFailure -> Failed

Candles and orders fail independently: a revoked key (-2015) stops only the orders branch, the
transform still curates what was extracted, and the run still ends in NotifyFailure + a failed
execution (ExecutionsFailed alarm) naming the side that failed.

No overlap: a lease item in a DynamoDB table, taken with a conditional PutItem
(``attribute_not_exists``): DynamoDB checks a condition against the item as it is, and only one of
two concurrent writers succeeds (DynamoDB Developer Guide, "Conditional writes"). The earlier guard,
``states:ListExecutions``, could miss: it is eventually consistent ("This operation is eventually
consistent", Step Functions API Reference, ListExecutions). A lost lease is taken over only from a
holder that is not RUNNING any more (timed out, aborted, failed before releasing: DescribeExecution),
with a second conditional write on that holder; every end releases it (conditional on holding it).
The transform's run lease in the lake (binance_lake.lock.run_lock, standing for the Glue jobs'
per-symbol leases) still guards curated writes against manual invokes and the Glue jobs. The lease
steps retry throttling. No reserved concurrency (see py_cdk/extractors.py for why).

Time budget: an execution timeout cannot be caught ("Step Functions catchers are available for
Task, Parallel and Map states, but not for top-level state machine execution failures", Step
Functions Developer Guide, "Handling errors in Step Functions workflows"), so the state machine's
timeout is derived from its tasks' worst case (each attempt up to the task timeout, every retry
taken, longest backoff, no jitter): NotifyFailure always gets its chance.

A STANDARD workflow (see docs/cost.md for the judgement): Standard keeps the execution history
that docs/cloud.md's runbook reads, and the lease reads its holder's status with DescribeExecution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
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
# States.TaskFailed matches every error except States.Timeout (Step Functions Developer Guide,
# "Error names"): a timed-out attempt is not retried, a failed one may have run up to the timeout.
TASK_FAILED = ["States.TaskFailed"]
LEASE_KEY, LEASE_ITEM = "lease", "run"


@dataclass(frozen=True)
class RetryPolicy:
    errors: Tuple[str, ...]
    interval_s: int
    max_attempts: int
    backoff_rate: float = 2.0

    def worst_wait_s(self) -> float:
        """The waits before each retry without jitter (full jitter only shortens them)."""
        return sum(self.interval_s * self.backoff_rate ** i for i in range(self.max_attempts))


@dataclass(frozen=True)
class TaskBudget:
    timeout_s: int
    retries: Tuple[RetryPolicy, ...]

    def worst_case_s(self) -> float:
        """Every retrier exhausted (each counts its own attempts), every attempt up to the timeout."""
        attempts = 1 + sum(r.max_attempts for r in self.retries)
        return attempts * self.timeout_s + sum(r.worst_wait_s() for r in self.retries)


LAMBDA_RETRY = RetryPolicy(tuple(LAMBDA_TRANSIENT), interval_s=5, max_attempts=2)
# The extractors' Lambdas time out at 4 minutes; the task waits a little longer.
EXTRACT = TaskBudget(300, (LAMBDA_RETRY, RetryPolicy(tuple(TASK_FAILED), interval_s=30, max_attempts=2)))
# The transform Lambda times out at 10 minutes; one retry of a failure (the next tick is the
# next retry: everything it does is resumable).
TRANSFORM = TaskBudget(660, (LAMBDA_RETRY, RetryPolicy(tuple(TASK_FAILED), interval_s=30, max_attempts=1)))
NOTIFY = TaskBudget(30, (RetryPolicy(tuple(TASK_FAILED), interval_s=2, max_attempts=3),))
# The lease's DynamoDB and DescribeExecution calls: a lost condition is an answer, not a failure
# (MaxAttempts 0: never retried; Amazon States Language, Retry), anything else is retried.
# Error names: "ServiceName.ErrorName", both PascalCase, with the Exception suffix (Step Functions
# Developer Guide, "Learning to use AWS service SDK integrations"); DynamoDB's integration likewise.
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"
NO_SUCH_EXECUTION = "Sfn.ExecutionDoesNotExistException"
LEASE = TaskBudget(30, (RetryPolicy((CONDITION_FAILED, NO_SUCH_EXECUTION), interval_s=1, max_attempts=0),
                        RetryPolicy(tuple(TASK_FAILED), interval_s=2, max_attempts=3)))
# The longest path: take the lease (lost), read it, describe its holder, take it over, the slower
# extractor, transform, notify, release (Pass/Choice take no time).
WORST_CASE_S = sum(b.worst_case_s() for b in (LEASE, LEASE, LEASE, LEASE, EXTRACT, TRANSFORM, NOTIFY, LEASE))
TIMEOUT = Duration.seconds(int(WORST_CASE_S) + 60)


def _apply(task: sfn.TaskStateBase, budget: TaskBudget) -> None:
    for r in budget.retries:
        task.add_retry(errors=list(r.errors), interval=Duration.seconds(r.interval_s), max_attempts=r.max_attempts,
                       backoff_rate=r.backoff_rate, jitter_strategy=sfn.JitterType.FULL)


class Orchestration(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, candles: lambda_.IFunction,
                 orders: lambda_.IFunction, transform: lambda_.IFunction, topic: sns.ITopic, key: kms.IKey,
                 schedule_minutes: int) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # A fixed name lets the lease describe this state machine's executions without a circular reference.
        self.state_machine_name = f"{stack.stack_name}-run"
        self._executions = stack.format_arn(service="states", resource="execution",
                                            resource_name=f"{self.state_machine_name}:*",
                                            arn_format=ArnFormat.COLON_RESOURCE_NAME)
        # The lease: one item in a DynamoDB table, taken with a conditional write (strongly
        # consistent, unlike ListExecutions), released at the end, taken over from a holder that
        # is no longer RUNNING (timed out, aborted, or failed before releasing).
        self.lease_table = dynamodb.Table(
            self, "Lease", partition_key=dynamodb.Attribute(name=LEASE_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY)
        nag.acknowledge(self.lease_table, "AwsSolutions-DDB3",
                        "The lease table holds one item that is rewritten every run and means nothing after it: "
                        "there is nothing to recover.")
        notify = self._notify_failure(topic)
        skip = sfn.Succeed(self, "SkipOverlap", comment="another execution is still running")
        outcome = sfn.Choice(self, "ExtractOk?").when(
            sfn.Condition.or_(sfn.Condition.boolean_equals("$.extract.candles.failed", True),
                              sfn.Condition.boolean_equals("$.extract.orders.failed", True)), notify,
            comment="a side failed: its error is in $.extract").otherwise(
                # The release ends the run itself: a Succeed state after it would be one more billed
                # transition per tick (Standard bills each state entered: 8,640 x 0.025 USD / 1,000 =
                # 0.22 USD/month; aws.amazon.com/step-functions/pricing), for no behaviour.
                self._release("ReleaseLease"))
        work = self._extract(candles, orders, notify).next(self._transform(transform, notify)).next(outcome)
        definition = self._take_lease(notify, skip, work)
        log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD, timeout=TIMEOUT, tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant_encrypted_publish(key)
        self._acknowledge_role(candles, orders, transform)
        nag.acknowledge(nag.policy(self.state_machine.role), nag.IAM5,
                        "DescribeHolder reads the status of the execution that holds the lease: any execution of "
                        "this state machine (ids are generated at run time), nothing else.",
                        [f"Resource::{Stack.of(self).resolve(self._executions)}"])
        self.schedule = self._schedule(schedule_minutes)

    def _me(self) -> tasks.DynamoAttributeValue:
        return tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$$.Execution.Id"))

    def _lease_task(self, task: sfn.TaskStateBase, notify: sfn.IChainable) -> sfn.TaskStateBase:
        _apply(task, LEASE)
        return task

    def _take_lease(self, notify: sfn.IChainable, skip: sfn.IChainable, work: sfn.IChainable) -> sfn.IChainable:
        table, key = self.lease_table, {LEASE_KEY: tasks.DynamoAttributeValue.from_string(LEASE_ITEM)}
        timeout = sfn.Timeout.duration(Duration.seconds(LEASE.timeout_s))
        take = self._lease_task(tasks.DynamoPutItem(
            self, "TakeLease", table=table, item={**key, "holder": self._me()},
            condition_expression=f"attribute_not_exists({LEASE_KEY})", result_path=sfn.JsonPath.DISCARD,
            task_timeout=timeout), notify)
        read = self._lease_task(tasks.DynamoGetItem(
            self, "ReadLease", table=table, key=key, consistent_read=True, result_path="$.lease",
            task_timeout=timeout), notify)
        holder = self._lease_task(tasks.CallAwsService(
            self, "DescribeHolder", service="sfn", action="describeExecution", iam_action="states:DescribeExecution",
            iam_resources=[self._executions], parameters={"ExecutionArn.$": "$.lease.Item.holder.S"},
            result_selector={"status.$": "$.Status"}, result_path="$.holder", task_timeout=timeout), notify)
        steal = self._lease_task(tasks.DynamoPutItem(
            self, "StealLease", table=table, item={**key, "holder": self._me()},
            condition_expression="holder = :old", result_path=sfn.JsonPath.DISCARD, task_timeout=timeout,
            expression_attribute_values={":old": tasks.DynamoAttributeValue.from_string(
                sfn.JsonPath.string_at("$.lease.Item.holder.S"))}), notify)
        take.add_catch(read, errors=[CONDITION_FAILED], result_path=sfn.JsonPath.DISCARD)
        holder.add_catch(steal, errors=[NO_SUCH_EXECUTION], result_path=sfn.JsonPath.DISCARD)
        steal.add_catch(skip, errors=[CONDITION_FAILED], result_path=sfn.JsonPath.DISCARD)  # another run won
        for task in (take, read, holder, steal):
            task.add_catch(notify, errors=["States.ALL"], result_path="$.lease")
        read.next(sfn.Choice(self, "LeaseHeld?").when(
            sfn.Condition.is_present("$.lease.Item.holder.S"),
            holder.next(sfn.Choice(self, "HolderRunning?")
                        .when(sfn.Condition.string_equals("$.holder.status", "RUNNING"), skip)
                        .otherwise(steal.next(work))))
            .otherwise(skip))  # released meanwhile: that run just ended, the next tick runs
        return take.next(work)

    def _release(self, cid: str) -> sfn.IChainable:
        """Drop the lease if this execution holds it; never fails the run (a lease left behind is
        taken over by the next run once this execution is no longer RUNNING)."""
        release = tasks.DynamoDeleteItem(
            self, cid, table=self.lease_table, key={LEASE_KEY: tasks.DynamoAttributeValue.from_string(LEASE_ITEM)},
            condition_expression="holder = :me", expression_attribute_values={":me": self._me()},
            result_path=sfn.JsonPath.DISCARD, task_timeout=sfn.Timeout.duration(Duration.seconds(LEASE.timeout_s)))
        _apply(release, LEASE)
        release.add_catch(sfn.Pass(self, f"{cid}Skipped"), errors=["States.ALL"], result_path=sfn.JsonPath.DISCARD)
        return release

    def _invoke(self, cid: str, fn: lambda_.IFunction, budget: TaskBudget, **kwargs: object) -> tasks.LambdaInvoke:
        # The execution id is the handlers' log correlation id (binance_lake.aws.settings.correlation_id).
        task = tasks.LambdaInvoke(self, cid, lambda_function=fn, payload_response_only=True,
                                  payload=sfn.TaskInput.from_object({"execution_id": sfn.JsonPath.execution_id}),
                                  retry_on_service_exceptions=False,
                                  task_timeout=sfn.Timeout.duration(Duration.seconds(budget.timeout_s)),
                                  **kwargs)  # type: ignore[arg-type]
        _apply(task, budget)
        return task

    def _side(self, cid: str, fn: lambda_.IFunction) -> sfn.IChainable:
        """One extractor that never fails its branch: it ends in {"failed": false} or
        {"failed": true, "error", "cause"}, so the other side and the transform still run."""
        # The branch's output is the task's selected result: {"failed": false} (no extra state, no
        # extra billed transition on the normal path).
        task = self._invoke(cid, fn, EXTRACT, result_selector={"failed": False})
        failed = sfn.Pass(self, f"{cid}Failed", parameters={
            "failed": True, "error.$": "$.error.Error", "cause.$": "$.error.Cause"})
        task.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        return task

    def _extract(self, candles: lambda_.IFunction, orders: lambda_.IFunction, notify: sfn.IChainable) -> sfn.Parallel:
        parallel = sfn.Parallel(self, "Extract", result_path="$.extract",
                                result_selector={"candles.$": "$[0]", "orders.$": "$[1]"})
        parallel.branch(self._side("Candles", candles)).branch(self._side("Orders", orders))
        parallel.add_catch(notify, errors=["States.ALL"], result_path="$.extract")  # the branches catch their own
        return parallel

    def _transform(self, fn: lambda_.IFunction, notify: sfn.IChainable) -> tasks.LambdaInvoke:
        task = self._invoke("Transform", fn, TRANSFORM, result_selector={"failed": False},
                            result_path="$.transform")
        task.add_catch(notify, errors=["States.ALL"], result_path="$.transform")
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
        # The message is the run's state: which step failed ({"Error", "Cause"} or
        # {"failed": true, ...}) and which succeeded; docs/operations.md reads it.
        publish = tasks.SnsPublish(
            self, "NotifyFailure", topic=topic, subject="binance-lake run failed",
            message=sfn.TaskInput.from_object({
                "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                "run": sfn.JsonPath.entire_payload,
            }),
            result_path=sfn.JsonPath.DISCARD, task_timeout=sfn.Timeout.duration(Duration.seconds(NOTIFY.timeout_s)))
        _apply(publish, NOTIFY)
        return publish.next(self._release("ReleaseLeaseAfterFailure")).next(sfn.Fail(
            self, "Failed", error="BinanceLakeRunFailed",
            cause="guard, lease, extract or transform failed; see the SNS notification"))

    def _schedule(self, minutes: int) -> scheduler.Schedule:
        return scheduler.Schedule(
            self, "Schedule", schedule=scheduler.ScheduleExpression.rate(Duration.minutes(minutes)),
            description=f"binance-lake run every {minutes} minutes",
            # No retries: a missed tick is covered by the next one (watermarks derive from the data).
            target=targets.StepFunctionsStartExecution(self.state_machine, retry_attempts=0,
                                                       max_event_age=Duration.minutes(minutes)),
        )
