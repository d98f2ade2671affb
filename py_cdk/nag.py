"""cdk-nag (AwsSolutions) acknowledgment helpers; each construct acknowledges its own findings.

cdk-nag 3 matches acknowledgments exactly (``AwsSolutions-IAM5[Resource::...]``), so every
finding is listed, on the narrowest construct that produces it, next to the grant it is about
(extractors.py, transform_function.py, catalog.py, orchestration.py, secret.py,
pipeline_stack.py). Logical IDs, accounts and regions are resolved from the constructs
themselves, so a rename cannot silently widen an acknowledgment: it fails synth instead.
"""

from __future__ import annotations

from typing import Iterable

from aws_cdk import Acknowledgment, CfnElement, DefaultStackSynthesizer, Stack, Validations
from constructs import IConstruct

IAM5, IAM4, L1, S1, SMG4 = "AwsSolutions-IAM5", "AwsSolutions-IAM4", "AwsSolutions-L1", "AwsSolutions-S1", \
    "AwsSolutions-SMG4"

# Wildcard actions that aws-cdk-lib's own grant helpers (bucket.grantRead/ReadWrite,
# key.grantEncryptDecrypt) emit; we cannot narrow grants made inside L2/L3 constructs.
CDK_S3_READ = ("Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*")
CDK_S3_WRITE = ("Action::s3:Abort*", "Action::s3:DeleteObject*")
CDK_KMS = ("Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*")

ZONE_REASON = ("Scoped to one lake zone prefix (objects are created with keys derived at run time); "
               "per-prefix is the tightest S3 scope possible.")
METRIC_REASON = ("cloudwatch:PutMetricData has no resource-level permissions; it is restricted to the "
                 "BinanceLake namespace by condition.")
RUNTIME_REASON = ("python3.13, not the latest python3.14, on purpose: CI proves the bundles under the deployed "
                  "Python version and has a 3.13 interpreter, not 3.14; python3.13 is supported until 2029-06-30 "
                  "(AWS Lambda Developer Guide, Building Lambda functions with Python).")


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


def zone_findings(bucket: IConstruct, prefixes: Iterable[str]) -> list:
    """The IAM5 findings of grants on ``<bucket>/<prefix>*``, one per lake zone."""
    arn = ref(bucket, "Arn")
    return [f"Resource::{arn}/{p}*" for p in prefixes]
