"""The transform Lambda: pending raw -> curated Parquet every tick, then the freshness metric.

Replaces the former Glue Python shell job (Python 3.9 with AWS's 2022-era library set, on
which the core's pyarrow casts and S3 conditional writes fail). Same runtime and
architecture as the extractors, but its own bundle with pinned pyarrow and boto3.

Its role, derived from the S3 calls of the code path (``transform_pending`` ->
``binance_lake.lake.S3Lake``: read_bytes/exists/version_of = GetObject/HeadObject,
write_bytes/write_if_version = PutObject, delete/delete_if_match = DeleteObject,
list_keys/list_children = ListObjectsV2; ``binance_lake.lock``: PutObject ``IfNoneMatch`` (create)
and ``IfMatch`` (renewal) + GetObject + DeleteObject ``IfMatch`` on ``curated/_locks/``):

* read ``raw/*`` (pending markers, REST raw files, the day's archive share);
* delete only ``raw/_pending/*`` (markers once curated) and ``raw/klines/*``/``raw/orders/*``/``raw/trades/*``
  (a raw file that fails validation, after its copy to quarantine; the bucket is
  versioned, so the bytes stay recoverable) - never archive zips or gap records;
* read and write ``curated/*`` (partitions, the orders index, the lock), delete only
  ``curated/_locks/*``; write ``quarantine/*``; list ``raw/`` and ``curated/``;
* the lake key; ``cloudwatch:PutMetricData`` only in the ``BinanceLake`` namespace.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from binance_lake import layout
from binance_lake.aws.metrics import METRIC_NAMESPACE
from binance_lake.aws.settings import TransformSettings
from binance_lake.schema import TABLES
from py_cdk import bundling, nag
from py_cdk.config import LakeSettings
from py_cdk.extractors import LOG_LEVEL, SERVICE_NAME
from py_cdk.storage import CURATED, LOCKS, PENDING, QUARANTINE, RAW, LakeStorage

# 512 MB: ~175 MB peak measured for a 24 h catch-up and for a tick (bench/cloud_lambda.py,
# docs/cloud.md), about 3x headroom for pyarrow's casts and a day partition's rewrite; re-check against the
# REPORT lines (Max Memory Used) after the first deploy (measurements in docs/cloud.md).
MEMORY_MB = 512
TIMEOUT = Duration.minutes(10)


class TransformFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, storage: LakeStorage,
                 settings: LakeSettings) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                       encryption_key=storage.key, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="binance-lake transform Lambda (raw -> curated)")
        self.function = lambda_.Function(
            self, "Function", runtime=bundling.LAMBDA_RUNTIME, architecture=bundling.LAMBDA_ARCHITECTURE,
            handler="transform.handler", code=bundling.lambda_code(bundling.TRANSFORM_BUNDLE),
            memory_size=MEMORY_MB, timeout=TIMEOUT, role=self.role, log_group=self.log_group,
            description="Pending raw -> curated Parquet, then the freshness metric (binance-lake)",
            environment=self.settings(storage, settings).render(),
        )
        self.log_group.grant_write(self.role)
        for statement in statements(storage):
            self.role.add_to_principal_policy(statement)
        transform_policy = nag.policy(self.role)
        nag.acknowledge(transform_policy, nag.IAM5, nag.ZONE_REASON, nag.zone_findings(storage.lake, (
            RAW, PENDING, *(layout.zone(t.raw_prefix) for t in TABLES.values()), CURATED, LOCKS, QUARANTINE)))
        nag.acknowledge(transform_policy, nag.IAM5, nag.METRIC_REASON, ["Resource::*"])
        nag.acknowledge(self.function, nag.L1, nag.RUNTIME_REASON)

    @staticmethod
    def settings(storage: LakeStorage, settings: LakeSettings) -> TransformSettings:
        """The transform Lambda's settings (binance_lake/aws/settings.py renders its environment)."""
        return TransformSettings(service=SERVICE_NAME, log_level=LOG_LEVEL, lake_uri=storage.lake_uri,
                                 symbols=list(settings.symbols), tables=list(TABLES),
                                 intervals=list(settings.intervals))


def statements(storage: LakeStorage) -> list:
    def allow(sid: str, actions: list, prefixes: list) -> iam.PolicyStatement:
        return iam.PolicyStatement(sid=sid, actions=actions, resources=[storage.prefix_arn(p) for p in prefixes])

    return [
        allow("RawRead", ["s3:GetObject"], [RAW]),
        allow("RawConsume", ["s3:DeleteObject"], [PENDING, *(layout.zone(t.raw_prefix) for t in TABLES.values())]),
        allow("CuratedReadWrite", ["s3:GetObject", "s3:PutObject"], [CURATED]),
        allow("TransformLockRelease", ["s3:DeleteObject"], [LOCKS]),
        allow("QuarantineWrite", ["s3:PutObject"], [QUARANTINE]),
        iam.PolicyStatement(sid="ListZones", actions=["s3:ListBucket"], resources=[storage.lake.bucket_arn],
                            conditions={"StringLike": {"s3:prefix": [f"{RAW}*", f"{CURATED}*"]}}),
        iam.PolicyStatement(sid="LakeKey", actions=["kms:Decrypt", "kms:GenerateDataKey"],
                            resources=[storage.key.key_arn]),
        # PutMetricData has no resource-level permissions; the namespace condition scopes it.
        iam.PolicyStatement(sid="FreshnessMetric", actions=["cloudwatch:PutMetricData"], resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}),
    ]
