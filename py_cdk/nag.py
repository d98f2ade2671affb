"""cdk-nag (AwsSolutions) acknowledgments, each with its reason.

cdk-nag 3 matches acknowledgments exactly (``AwsSolutions-IAM5[Resource::...]``),
so every finding is listed, on the narrowest construct that produces it. Logical
IDs, accounts and regions are resolved from the constructs themselves, so a
rename cannot silently widen an acknowledgment: it fails synth instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from aws_cdk import Acknowledgment, CfnElement, DefaultStackSynthesizer, Stack, Validations
from constructs import IConstruct

from binance_lake import layout
from binance_lake.schema import CANDLES, ORDERS, TRADES
from py_cdk.catalog import ARCHIVE, GAPS
from py_cdk.storage import CURATED, LOCKS, PENDING, QUARANTINE, RAW

if TYPE_CHECKING:  # pragma: no cover
    from py_cdk.lake_stack import LakeStack
    from py_cdk.pipeline_stack import PipelineStack

IAM5, IAM4, L1, S1, SMG4 = "AwsSolutions-IAM5", "AwsSolutions-IAM4", "AwsSolutions-L1", "AwsSolutions-S1", \
    "AwsSolutions-SMG4"

# Wildcard actions that aws-cdk-lib's own grant helpers (bucket.grantRead/ReadWrite,
# key.grantEncryptDecrypt) emit; we cannot narrow grants made inside L2/L3 constructs.
CDK_S3_READ = ("Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*")
CDK_S3_WRITE = ("Action::s3:Abort*", "Action::s3:DeleteObject*")
CDK_KMS = ("Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*")


def acknowledge(scope: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    findings = list(findings)
    ids = [f"{rule}[{f}]" for f in findings] if findings else [rule]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def ref(construct: IConstruct, attribute: str = "") -> str:
    """``<LogicalId>`` / ``<LogicalId.Arn>`` as cdk-nag prints references in findings."""
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    stack = Stack.of(construct)
    logical_id = stack.resolve(stack.get_logical_id(element))  # type: ignore[arg-type]
    return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"


def assets_bucket(stack: Stack) -> str:
    qualifier = DefaultStackSynthesizer.DEFAULT_QUALIFIER
    return f"Resource::arn:{stack.partition}:s3:::cdk-{qualifier}-assets-{stack.account}-{stack.region}/*"


def policy(role: IConstruct) -> IConstruct:
    return role.node.find_child("DefaultPolicy")


# ---------------------------------------------------------------------- lake stack


def acknowledge_lake_stack(stack: LakeStack) -> None:
    _lake_grants(stack)
    _state_machine(stack)
    _bucket_deployment(stack)
    acknowledge(stack.secret.secret, SMG4,
                "Binance API keys are issued in the Binance UI and cannot be rotated by a Lambda; rotation is "
                "manual (new key in Binance, then put-secret-value, see docs/deploy.md).")


def _lake_grants(stack: LakeStack) -> None:
    lake = ref(stack.storage.lake, "Arn")
    for role in (stack.extractors.candles.role, stack.extractors.orders.role):
        acknowledge(policy(role), IAM5, ZONE_REASON,  # type: ignore[arg-type]
                    [f"Resource::{lake}/{RAW}*", f"Resource::{lake}/{CURATED}*"])
    transform = policy(stack.transform.role)
    acknowledge(transform, IAM5, ZONE_REASON,
                [f"Resource::{lake}/{z}*" for z in (RAW, PENDING, layout.zone(CANDLES.raw_prefix),
                                                     layout.zone(ORDERS.raw_prefix), layout.zone(TRADES.raw_prefix),
                                                     CURATED, LOCKS, QUARANTINE)])
    acknowledge(transform, IAM5, "cloudwatch:PutMetricData has no resource-level permissions; it is restricted "
                "to the BinanceLake namespace by condition.", ["Resource::*"])
    _glue_role(stack, stack.catalog.backfill_role,
               (RAW, ARCHIVE, GAPS, CURATED, LOCKS, QUARANTINE), metric=False)
    _glue_role(stack, stack.catalog.verify_role,
               (RAW, CURATED, LOCKS, QUARANTINE), metric=True)
    _runtime(stack)


ZONE_REASON = ("Scoped to one lake zone prefix (objects are created with keys derived at run time); "
               "per-prefix is the tightest S3 scope possible.")


def _glue_role(stack: LakeStack, role: IConstruct, zones: tuple, metric: bool) -> None:
    lake = ref(stack.storage.lake, "Arn")
    glue_policy = policy(role)
    acknowledge(glue_policy, IAM5, ZONE_REASON, [f"Resource::{lake}/{z}*" for z in zones])
    acknowledge(glue_policy, IAM5,
                "Glue job libraries: the job script (CDK assets bucket, granted read-only by aws-cdk-lib "
                "glue.Code) and the core + pinned wheels under glue/ in the artifacts bucket.",
                [*CDK_S3_READ, assets_bucket(stack), f"Resource::{ref(stack.storage.artifacts, 'Arn')}/glue/*"])
    log_group = f"Resource::arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws-glue/*"
    acknowledge(glue_policy, IAM5,
                "Glue creates its log groups under /aws-glue/ with names derived from the security "
                "configuration and the run; cloudwatch:PutMetricData has no resource-level permissions and is "
                "restricted to the BinanceLake namespace by condition.",
                [log_group, "Resource::*"] if metric else [log_group])


def _runtime(stack: LakeStack) -> None:
    reason = ("python3.13, not the latest python3.14, on purpose: CI proves the bundles under the deployed "
              "Python version and has a 3.13 interpreter, not 3.14; python3.13 is supported until 2029-06-30 "
              "(AWS Lambda Developer Guide, Building Lambda functions with Python).")
    for fn in (stack.extractors.candles, stack.extractors.orders, stack.transform.function):
        acknowledge(fn, L1, reason)


def _state_machine(stack: LakeStack) -> None:
    role = stack.orchestration.state_machine.role
    functions = (stack.extractors.candles, stack.extractors.orders, stack.transform.function)
    acknowledge(policy(role), IAM5,
                "Generated by aws-cdk-lib: LambdaInvoke may invoke the function's versions/aliases (<arn>:*); "
                "X-Ray tracing and CloudWatch Logs delivery (SF1/SF2) do not support resource-level permissions; "
                "publishing to the KMS-encrypted alerts topic needs kms:GenerateDataKey* on the lake key "
                "(Amazon SNS key management).",
                [f"Resource::{ref(fn, 'Arn')}:*" for fn in functions]
                + ["Resource::*", "Action::kms:GenerateDataKey*"])


def _bucket_deployment(stack: LakeStack) -> None:
    # The singleton handler of every BucketDeployment in the stack (publishes the core wheel for Glue).
    handler = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
    reason = ("aws-cdk-lib BucketDeployment handler that publishes the Glue wheels: it reads the CDK "
              "assets bucket and writes the dedicated artifacts bucket (never the lake); its grants, managed "
              "policy and runtime are chosen by aws-cdk-lib.")
    acknowledge(handler, L1, reason)
    acknowledge(handler, IAM4, reason,
                ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
    acknowledge(handler, IAM5, reason, [*CDK_S3_READ, *CDK_S3_WRITE, *CDK_KMS, assets_bucket(stack),
                                        f"Resource::{ref(stack.storage.artifacts, 'Arn')}/*"])


# ---------------------------------------------------------------------- pipeline stack


def acknowledge_pipeline_stack(stack: PipelineStack) -> None:
    pipelines = stack.pipeline
    artifacts = pipelines.pipeline.artifact_bucket
    acknowledge(artifacts, S1,
                "CDK Pipelines' artifact bucket: transient build artifacts, KMS-encrypted with the rotated "
                "pipeline key, TLS-only, reachable only by the pipeline's roles.")
    region, account, partition = stack.region, stack.account, stack.partition
    synth_project, mutation_project = pipelines.synth_project, pipelines.self_mutation_project
    acknowledge(pipelines, IAM5,
                "Generated by CDK Pipelines (CodePipeline/CodeBuild roles): artifact bucket and key access via "
                "aws-cdk-lib grant helpers, CodeBuild log groups and report groups named per build, asset "
                "publishing and self-mutation (assumes the cdk bootstrap roles, role/*, and reads "
                "stack metadata, *). Not narrowable from outside the construct.",
                [*CDK_S3_READ, *CDK_S3_WRITE, *CDK_KMS,
                 f"Resource::{ref(artifacts, 'Arn')}/*",
                 "Resource::*",
                 f"Resource::arn:{partition}:logs:{region}:{account}:log-group:/aws/codebuild/*",
                 f"Resource::arn:{partition}:codebuild:{region}:{account}:report-group/*",
                 *(f"Resource::arn:{partition}:logs:{region}:{account}:log-group:/aws/codebuild/{ref(p)}:*"
                   for p in (synth_project, mutation_project)),
                 *(f"Resource::arn:{partition}:codebuild:{region}:{account}:report-group/{ref(p)}-*"
                   for p in (synth_project, mutation_project)),
                 f"Resource::arn:*:iam::{account}:role/*"])
