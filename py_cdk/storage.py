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
# Bookkeeping prefixes: small objects rewritten or deleted on every tick (pending markers, run
# records, leases, indexes, state). In the versioned lake each overwrite leaves a noncurrent
# version and each delete a delete marker; both are garbage after a day.
BOOKKEEPING = tuple(layout.zone(p) for p in (layout.PENDING, layout.RUNS, layout.GAPS, layout.RESOLVED,
                                             layout.LOCKS, layout.INDEX, layout.FRESHNESS_STATE_KEY.rsplit("/", 1)[0]))
# S3 does not transition objects under 128 KB by default (lifecycle
# TransitionDefaultMinimumObjectSize "all_storage_classes_128K"), and Standard-IA bills at least
# 128 KB per object: only larger raw objects (the archive zips) are worth moving.
IA_MIN_OBJECT_BYTES = 128 * 1024


class LakeStorage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, retain_data: bool) -> None:
        super().__init__(scope, construct_id)
        self._retain = retain_data
        # Prod: CloudFormation's RetainExceptOnCreate - kept on update and stack deletion, but
        # removed when the stack operation that created it rolls back, so a failed first deploy
        # can be retried without "already exists" on fixed names (CloudFormation User Guide,
        # "DeletionPolicy attribute"). Beta: deleted with the stack.
        self.removal_policy = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain_data else RemovalPolicy.DESTROY
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
        """Versioned lake: expire what versioning keeps behind (S3 User Guide, "Managing delete
        markers": ExpiredObjectDeleteMarker removes a delete marker once no noncurrent version is
        left; NoncurrentVersionExpiration removes old versions). Without it every tick's
        pending-marker delete and lease release would leave a marker in prefixes listed every tick."""
        for prefix in BOOKKEEPING:
            self.lake.add_lifecycle_rule(id=f"bookkeeping-{prefix.strip('/').replace('/', '-')}", prefix=prefix,
                                         noncurrent_version_expiration=Duration.days(1),
                                         expired_object_delete_marker=True)
        # Raw is immutable; a deleted raw page (quarantined, or a consumed marker) stays
        # recoverable for 30 days. Larger raw objects (archive zips) move to Standard-IA.
        self.lake.add_lifecycle_rule(id="raw-old-versions", prefix=RAW,
                                     noncurrent_version_expiration=Duration.days(30),
                                     expired_object_delete_marker=True)
        self.lake.add_lifecycle_rule(
            id="raw-large-to-infrequent-access", prefix=RAW, object_size_greater_than=IA_MIN_OBJECT_BYTES,
            transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                       transition_after=Duration.days(30))],
        )
        # CloudFormation types ObjectSizeGreaterThan as a string; the L2 writes a number (W9003).
        ia_rule = len(BOOKKEEPING) + 1  # the bookkeeping rules, raw-old-versions, then this one
        self.lake.node.default_child.add_property_override(  # type: ignore[union-attr]
            f"LifecycleConfiguration.Rules.{ia_rule}.ObjectSizeGreaterThan", str(IA_MIN_OBJECT_BYTES))
        # Curated partitions are rewritten whole: old versions are garbage after a week.
        self.lake.add_lifecycle_rule(id="curated-old-versions", prefix=CURATED,
                                     noncurrent_version_expiration=Duration.days(7),
                                     expired_object_delete_marker=True)
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
        # EventBridge rules publishing to the encrypted topic (the Glue failure rule): the same two
        # actions (Amazon SNS Developer Guide, "Key management", "Enable compatibility between event
        # sources from AWS services and encrypted topics"). No aws:Source* condition here: the KMS
        # request EventBridge makes for SNS delivery is not documented to carry those keys, and a
        # condition it lacks would drop every notification silently. Who may publish at all is
        # limited by the topic policy (this stack's rule only, py_cdk/monitoring.py).
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="EventRulesToSns",
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
        ))

    def prefix_arn(self, prefix: str) -> str:
        """``arn:...:<lake>/<prefix>*``: IAM grants are per zone, never the whole bucket."""
        return self.lake.arn_for_objects(f"{prefix}*")
