"""Data lake storage: one KMS key, the lake bucket (zones), Athena results, access logs.

One lake bucket with zone prefixes (``raw/``, ``curated/``, ``quarantine/``): the
core needs a single ``LAKE_URI`` and IAM is scoped per prefix, which is as tight as
per bucket. Athena results, access logs and artifacts (the core wheel for Glue) are
separate buckets because their lifecycles and writers differ - in particular the
CDK BucketDeployment that publishes the wheel can only be granted a whole bucket,
and it must never be the lake.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from binance_lake import layout

# Zone prefixes of IAM resources and lifecycle rules, from the lake's one layout module.
RAW, CURATED, QUARANTINE = layout.zone(layout.RAW), layout.zone(layout.CURATED), layout.zone(layout.QUARANTINE)
PENDING = layout.zone(layout.PENDING)
LOCKS = layout.zone(layout.LOCKS)  # binance_lake.lock: per-(table, symbol) writer leases


class LakeStorage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, retain_data: bool) -> None:
        super().__init__(scope, construct_id)
        self._retain = retain_data
        self.removal_policy = RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY
        self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=self.removal_policy,
                           description="binance-lake: lake buckets, secret, logs, alerts")
        self._allow_service_principals()
        self.access_logs = self._bucket("AccessLogs", kms_encrypted=False, logs=None, expire_days=365)
        self.lake = self._bucket("Lake", logs=self.access_logs, versioned=True)
        self._lake_lifecycle()
        self.athena_results = self._bucket("AthenaResults", logs=self.access_logs, expire_days=30)
        self.artifacts = self._bucket("Artifacts", logs=self.access_logs)

    @property
    def lake_uri(self) -> str:
        return f"s3://{self.lake.bucket_name}"

    def _bucket(self, cid: str, *, logs: s3.IBucket | None, kms_encrypted: bool = True,
                versioned: bool = False, expire_days: int | None = None) -> s3.Bucket:
        # S3 server access logs cannot be delivered to a KMS-CMK bucket: the log bucket uses SSE-S3.
        encryption = dict(encryption=s3.BucketEncryption.KMS, encryption_key=self.key, bucket_key_enabled=True) \
            if kms_encrypted else dict(encryption=s3.BucketEncryption.S3_MANAGED)
        lifecycle = [s3.LifecycleRule(id="expire", expiration=Duration.days(expire_days),
                                      noncurrent_version_expiration=Duration.days(1))] if expire_days else None
        return s3.Bucket(
            self, cid, **encryption, enforce_ssl=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, versioned=versioned,
            server_access_logs_bucket=logs, server_access_logs_prefix=f"{cid.lower()}/" if logs else None,
            lifecycle_rules=lifecycle, removal_policy=self.removal_policy, auto_delete_objects=not self._retain,
        )

    def _lake_lifecycle(self) -> None:
        # Raw is immutable and rarely re-read (only to rebuild curated): a cheaper class after 30 days.
        self.lake.add_lifecycle_rule(
            id="raw-to-infrequent-access", prefix=RAW,
            transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                       transition_after=Duration.days(30))],
        )
        # Curated partitions are rewritten whole: old versions are garbage after a week.
        self.lake.add_lifecycle_rule(id="curated-old-versions", prefix=CURATED,
                                     noncurrent_version_expiration=Duration.days(7))
        self.lake.add_lifecycle_rule(id="abort-incomplete-uploads",
                                     abort_incomplete_multipart_upload_after=Duration.days(1))

    def _allow_service_principals(self) -> None:
        """CloudWatch Logs (Lambda/SFN/Glue log groups) and CloudWatch alarms (-> encrypted SNS) use the key."""
        stack = Stack.of(self)
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchLogs",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                    f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"}},
        ))
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsToSns",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ))

    def prefix_arn(self, prefix: str) -> str:
        """``arn:...:<lake>/<prefix>*``: IAM grants are per zone, never the whole bucket."""
        return self.lake.arn_for_objects(f"{prefix}*")
