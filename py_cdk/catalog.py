"""Glue catalog (database + tables), the Glue transform/backfill jobs, and Athena.

Table columns and partition keys come from ``binance_lake.schema`` (never retyped
here). Partition projection makes every partition queryable the moment its
Parquet file lands: no crawler, no ``MSCK REPAIR``.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from binance_lake.schema import TABLES, Table
from py_cdk import bundling
from py_cdk.config import LakeSettings
from py_cdk.storage import CURATED, LOCKS, QUARANTINE, RAW, LakeStorage

METRIC_NAMESPACE = "BinanceLake"
CORE_WHEEL_PREFIX = "glue/"


def _columns(items: Sequence[Dict[str, str]]) -> List[glue.Column]:
    return [glue.Column(name=c["name"], type=glue.Schema.custom(c["type"], is_primitive=True),
                        comment=c["comment"]) for c in items]


def _projection(table: Table, settings: LakeSettings) -> Dict[str, glue.PartitionProjectionConfiguration]:
    """Projection per partition key, from the schema's hints.

    ``symbol`` is an enum of the deployed SYMBOLS rather than ``injected``: injected
    projection rejects every query without ``WHERE symbol = ...`` (e.g. "orders by
    status" across symbols), and the symbol list is deployed from the same context
    as the extractors, so the enum is always exactly the set of symbols we write.
    """
    result: Dict[str, glue.PartitionProjectionConfiguration] = {}
    for key in table.partition_keys:
        hint = key.projection
        if key.name == "symbol":
            result[key.name] = glue.PartitionProjectionConfiguration.enum(values=list(settings.symbols))
        elif hint["type"] == "enum":
            result[key.name] = glue.PartitionProjectionConfiguration.enum(values=hint["values"].split(","))
        elif hint["type"] == "date":
            low, high = hint["range"].split(",")
            result[key.name] = glue.PartitionProjectionConfiguration.date(
                min=low, max=high, format=hint["format"],
                step=glue.DateProjectionStep(interval=int(hint["interval"]),
                                             interval_unit=glue.DateIntervalUnit(hint["interval.unit"])))
        elif hint["type"] == "injected":
            result[key.name] = glue.PartitionProjectionConfiguration.injected()
        else:
            raise ValueError(f"{table.name}.{key.name}: unsupported projection {hint}")
    return result


class Catalog(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, storage: LakeStorage, settings: LakeSettings,
                 stage_name: str) -> None:
        super().__init__(scope, construct_id)
        self._storage, self._settings = storage, settings
        self.database = glue.Database(self, "Database", database_name=f"binance_lake_{stage_name.lower()}",
                                      description="binance-lake curated tables (Parquet, partition projection)")
        self.tables = {name: self._table(table) for name, table in TABLES.items()}
        self.workgroup = self._workgroup(stage_name)
        self.core_wheel = s3deploy.BucketDeployment(
            self, "CoreWheel", sources=[bundling.core_wheel_source()], destination_bucket=storage.artifacts,
            destination_key_prefix=CORE_WHEEL_PREFIX, prune=True, retain_on_delete=False, memory_limit=256,
            log_group=logs.LogGroup(self, "CoreWheelLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    encryption_key=storage.key, removal_policy=RemovalPolicy.DESTROY))
        self.role = self._glue_role()
        self.security = glue.SecurityConfiguration(
            self, "Security",
            cloud_watch_encryption=glue.CloudWatchEncryption.kms(storage.key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(storage.key),
            s3_encryption=glue.S3Encryption.kms(storage.key))
        self.transform_job = self._transform_job()
        self.backfill_job = self._backfill_job()

    # ------------------------------------------------------------------ tables

    def _table(self, table: Table) -> glue.S3Table:
        prefix = f"{table.curated_prefix}/"
        location = f"s3://{self._storage.lake.bucket_name}/{prefix}"
        template = location + "/".join(f"{p.name}=${{{p.name}}}" for p in table.partition_keys) + "/"
        return glue.S3Table(
            self, table.name.capitalize(), database=self.database, table_name=table.name,
            description=table.description, storage=glue.S3TableStorage.from_bucket(self._storage.lake),
            s3_prefix=prefix, data_format=glue.DataFormat.PARQUET,
            columns=_columns(table.glue_columns()), partition_keys=_columns(table.glue_partition_keys()),
            partition_projection=_projection(table, self._settings),
            parameters={"storage.location.template": template, "classification": "parquet"},
        )

    def _workgroup(self, stage_name: str) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self, "Workgroup", name=f"binance-lake-{stage_name.lower()}", state="ENABLED",
            description="binance-lake queries; results encrypted, location enforced",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=10 * 1024**3,  # a runaway query stops at 10 GB
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self._storage.athena_results.bucket_name}/results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self._storage.key.key_arn)),
            ),
        )

    # ------------------------------------------------------------------ jobs

    def _glue_role(self) -> iam.Role:
        storage, stack = self._storage, Stack.of(self)
        role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                        description="binance-lake Glue transform/backfill")
        statements = [
            # Delete on raw/: pending markers once curated, and raw files that fail validation once
            # copied to quarantine/ (so the next extract re-fetches them). Raw is versioned: a
            # delete is a delete marker, the bytes stay recoverable.
            ("RawReadDelete", ["s3:GetObject", "s3:DeleteObject"], [storage.prefix_arn(RAW)]),
            # Curated partitions are merged (read) then rewritten whole (put); quarantine is append-only.
            ("CuratedReadWrite", ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
             [storage.prefix_arn(CURATED)]),
            ("QuarantineWrite", ["s3:PutObject", "s3:AbortMultipartUpload"], [storage.prefix_arn(QUARANTINE)]),
            # The per-symbol transform lease (binance_lake.lock) is released by deleting its key.
            ("TransformLockRelease", ["s3:DeleteObject"], [storage.prefix_arn(LOCKS)]),
            ("LakeKey", ["kms:Decrypt", "kms:GenerateDataKey"], [storage.key.key_arn]),
        ]
        for sid, actions, resources in statements:
            role.add_to_principal_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ListZones", actions=["s3:ListBucket"], resources=[storage.lake.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in (RAW, CURATED, QUARANTINE)]}}))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="FreshnessMetric", actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}))
        # Glue writes its own log groups (/aws-glue/...), encrypted with the key via the security configuration.
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="GlueLogs", actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                     "logs:AssociateKmsKey"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name="/aws-glue/*",
                                        arn_format=ArnFormat.COLON_RESOURCE_NAME)]))
        return role

    def _job_arguments(self, *, spark: bool) -> Dict[str, str]:
        args = {
            "--lake_uri": self._storage.lake_uri,
            "--symbols": ",".join(self._settings.symbols),
            "--tables": ",".join(TABLES),
            "--interval": self._settings.interval,
        }
        if spark:  # Spark jobs pip-install the core wheel; the Python shell job gets it via extra_python_files
            args["--additional-python-modules"] = f"s3://{self._storage.artifacts.bucket_name}/{self._wheel_key}"
        return args

    @property
    def _wheel_key(self) -> str:
        return f"{CORE_WHEEL_PREFIX}{bundling.CORE_WHEEL_NAME}"

    def _transform_job(self) -> glue.PythonShellJob:
        return glue.PythonShellJob(
            self, "Transform", role=self.role, security_configuration=self.security,
            description="binance-lake: raw JSON -> curated Parquet, every 5 minutes (Python shell)",
            script=glue.Code.from_asset(str(bundling.GLUE_SCRIPTS_DIR / "transform.py")),
            python_version=glue.PythonVersion.THREE_NINE, library_set=glue.LibrarySet.ANALYTICS,
            max_capacity=glue.MaxCapacity.DPU_1_16TH, max_concurrent_runs=1, max_retries=0,
            timeout=Duration.minutes(15), default_arguments=self._job_arguments(spark=False),
            # Python shell pip-installs .whl files from --extra-py-files (pip needs the real wheel name).
            extra_python_files=[glue.Code.from_bucket(self._storage.artifacts, self._wheel_key)],
        )

    def _backfill_job(self) -> glue.PySparkEtlJob:
        return glue.PySparkEtlJob(
            self, "Backfill", role=self.role, security_configuration=self.security,
            description="binance-lake: rebuild curated from raw for a date range (Spark, started by hand)",
            script=glue.Code.from_asset(str(bundling.GLUE_SCRIPTS_DIR / "backfill_spark.py")),
            glue_version=glue.GlueVersion.V5_0, max_concurrent_runs=1, max_retries=0,
            worker_configuration=glue.WorkerConfiguration(worker_type=glue.WorkerType.G_1X, number_of_workers=2),
            timeout=Duration.hours(2), default_arguments=self._job_arguments(spark=True), enable_metrics=True,
        )

