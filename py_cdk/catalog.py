"""Glue catalog (database + tables), the Glue 5.0 Spark jobs (backfill, verify), and Athena.

Table columns and partition keys come from ``binance_lake.schema`` (never retyped
here). Partition projection makes every partition queryable the moment its
Parquet file lands: no crawler, no ``MSCK REPAIR``.

Glue is the engine for history only (the 5-minute transform is a Lambda,
py_cdk/transform_function.py): the archive backfill (started by hand) and a twice-weekly
rebuild-and-verify of the days since the last run (VERIFY_CRON, VERIFY_DAYS_BACK). One role
per job, each derived from the S3 calls of its code path (see the statements below). Both jobs
install the core wheel and the pinned third-party wheels (``glue_scripts/requirements-glue.txt``)
from the artifacts bucket, with pip's index disabled: nothing is fetched from PyPI at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from binance_lake import layout
from binance_lake.aws.metrics import METRIC_NAMESPACE
from binance_lake.aws.settings import BackfillSettings, GlueSettings, VerifySettings
from binance_lake.positions import ATHENA, positions_view
from binance_lake.schema import CANDLES, CANDLES_MONTHLY, MONTH_PROJECTION, REDERIVED_TABLES, TABLES, Table
from binance_lake.sources.archive import ArchiveConfig
from py_cdk import bundling, nag
from py_cdk.config import LakeSettings
from py_cdk.storage import CURATED, LOCKS, QUARANTINE, RAW, LakeStorage

ARCHIVE, GAPS = layout.zone(layout.ARCHIVE_ZONE), layout.zone(layout.GAPS)
CORE_WHEEL_PREFIX = "glue/"
VERIFY_SCRIPT = "verify_spark.py"
# Twice a week, Monday and Thursday at 01:30 UTC, over the VERIFY_DAYS_BACK full days before the
# run (issue 21: daily cost 0.88 USD/month at 1 symbol, nearly all Spark start-up and the 1-minute
# minimum; docs/cost.md). Glue cron: "cron(Minutes Hours Day-of-month Month Day-of-week Year)",
# day-of-week 1-7 or SUN-SAT, "?" in the day-of-month when the day-of-week is given (AWS Glue
# Developer Guide, "Time-based schedules for jobs and crawlers"). Why not weekly: the verify alarm
# (py_cdk/monitoring.py) hears of a run that published nothing only within its evaluation range,
# and CloudWatch caps that range at 7 days ("Period multiplied by EvaluationPeriods can't be more
# than 604,800 seconds", CloudWatch API Reference, PutMetricAlarm): runs at most 4 days apart leave
# 3 days of margin; a weekly run would sit on the edge of the range every week.
VERIFY_CRON = "cron(30 1 ? * MON,THU *)"
# Monday's run covers Thursday-Sunday, Thursday's Sunday-Wednesday: every day at least once (Sunday
# twice), found at most ~3 days after it closes (docs/operations.md, detection delay).
VERIFY_DAYS_BACK = 4
# The verify also compares REST with Binance's daily archive files (report only), for the days
# ARCHIVE_LAG_DAYS before the ones it verifies: at 01:30 UTC on day T it checks T-6..T-3, whose
# newest file has had 49.5 hours to appear. Binance's maintainers: spot daily files are "usually uploaded in
# about 4-6 hours" (binance/binance-public-data issue 181) and "we try our best to make it available
# in 1-2 days, but it may delay" (issue 151). A day still unpublished is reported "not-published"
# (no alarm); docs/reliability.md has the rule.
ARCHIVE_LAG_DAYS = 2
GLUE_METRIC_NAMESPACE = "Glue"
# Glue 5.0 writes each job's logs to "<prefix>/error" and "<prefix>/output" when the job has
# --custom-logGroup-prefix ("Logging for AWS Glue jobs": without it the account-wide
# /aws-glue/jobs/error and /output, which this stack must not own). The stack creates those
# groups with a retention; the prefix stays under /aws-glue/ so the GlueLogs grant covers it.
GLUE_LOG_RETENTION = logs.RetentionDays.ONE_MONTH  # like every other log group of the stack


def _columns(items: Sequence[Dict[str, str]]) -> List[glue.Column]:
    return [glue.Column(name=c["name"], type=glue.Schema.custom(c["type"], is_primitive=True),
                        comment=c["comment"]) for c in items]


def _projection(table: Table, settings: LakeSettings, intervals: Sequence[str] = (),
                month: bool = False) -> Dict[str, glue.PartitionProjectionConfiguration]:
    """Projection per partition key, from the schema's hints.

    ``symbol`` is an enum of the deployed SYMBOLS rather than ``injected``: injected
    projection rejects every query without ``WHERE symbol = ...`` (e.g. "orders by
    status" across symbols), and the symbol list is deployed from the same context
    as the extractors, so the enum is always exactly the set of symbols we write.
    ``intervals``: the configured intervals this table serves; ``month``: its ``date`` partitions
    are UTC months (``schema.MONTH_PROJECTION``), the candles of intervals from 1h up.
    """
    result: Dict[str, glue.PartitionProjectionConfiguration] = {}
    for key in table.partition_keys:
        hint = MONTH_PROJECTION if month and key.name == "date" else key.projection
        if key.name == "symbol":
            result[key.name] = glue.PartitionProjectionConfiguration.enum(values=list(settings.symbols))
        elif key.name == "interval":  # the configured intervals, not a hard-coded 1m
            result[key.name] = glue.PartitionProjectionConfiguration.enum(values=list(intervals))
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
        self.database_name = f"binance_lake_{stage_name.lower()}"
        self.database = glue.Database(self, "Database", database_name=self.database_name,
                                      description="binance-lake curated tables (Parquet, partition projection)")
        # Fixed names: retained like the data in Prod but never on a rolled-back create (a retry
        # would fail with AlreadyExists), deleted with Beta (py_cdk/storage.py, removal_policy).
        self.database.apply_removal_policy(storage.removal_policy)
        self.tables = self._tables()
        self.workgroup = self._workgroup(stage_name)
        self.positions_query = self._positions_query(stage_name)
        self.glue_wheels = bundling.glue_wheel_names()
        # The core wheel and the pinned wheels, under their real file names (pip insists on them).
        self.core_wheel = s3deploy.BucketDeployment(
            self, "CoreWheel", sources=[bundling.core_wheel_source(), bundling.glue_wheels_source()],
            destination_bucket=storage.artifacts, destination_key_prefix=CORE_WHEEL_PREFIX, prune=True,
            retain_on_delete=False, memory_limit=512,
            log_group=logs.LogGroup(self, "CoreWheelLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    encryption_key=storage.key, removal_policy=RemovalPolicy.DESTROY))
        self._acknowledge_bucket_deployment()
        self.security = glue.SecurityConfiguration(
            self, "Security",
            cloud_watch_encryption=glue.CloudWatchEncryption.kms(storage.key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(storage.key),
            s3_encryption=glue.S3Encryption.kms(storage.key))
        self.security.apply_removal_policy(storage.removal_policy)
        self.backfill_role = self._job_role("Backfill", BACKFILL_S3, list_prefixes=(RAW, CURATED))
        self.verify_role = self._job_role("Verify", VERIFY_S3, list_prefixes=(RAW, CURATED), metric=True)
        self.backfill_job = self._backfill_job()
        self.verify_job = self._verify_job()
        self.verify_trigger = self._verify_schedule()

    # ------------------------------------------------------------------ tables

    def _tables(self) -> Dict[str, glue.S3Table]:
        """One Glue table per schema table; candles split by partition grain (layout.grain): the
        configured intervals below 1h in ``candles`` (day partitions), those from 1h up in
        ``candles_monthly`` (month partitions), both over ``curated/candles/``. Each exists only
        for intervals it serves (an enum projection cannot be empty)."""
        intervals = list(self._settings.intervals)
        day = [i for i in intervals if layout.grain(i) == layout.DAY]
        month = [i for i in intervals if layout.grain(i) == layout.MONTH]
        tables = {name: self._table(table) for name, table in TABLES.items() if name != CANDLES.name or day}
        if month:
            tables[CANDLES_MONTHLY] = self._table(CANDLES, name=CANDLES_MONTHLY, intervals=month, month=True)
        return tables

    def _table(self, table: Table, name: str = "", intervals: Sequence[str] = (), month: bool = False
               ) -> glue.S3Table:
        name = name or table.name
        intervals = intervals or [i for i in self._settings.intervals if layout.grain(i) == layout.DAY]
        prefix = layout.zone(layout.partition_prefix(table))
        location = f"s3://{self._storage.lake.bucket_name}/{prefix}"
        template = location + "/".join(f"{p.name}=${{{p.name}}}" for p in table.partition_keys) + "/"
        description = table.description + (" (intervals from 1h: one date=YYYY-MM partition per UTC month)"
                                           if month else "")
        s3_table = glue.S3Table(
            self, "".join(w.capitalize() for w in name.split("_")), database=self.database, table_name=name,
            description=description, storage=glue.S3TableStorage.from_bucket(self._storage.lake),
            s3_prefix=prefix, data_format=glue.DataFormat.PARQUET,
            columns=_columns(table.glue_columns()), partition_keys=_columns(table.glue_partition_keys()),
            partition_projection=_projection(table, self._settings, intervals, month),
            parameters={"storage.location.template": template, "classification": "parquet"},
        )
        # The L2 writes has_encrypted_data, which Athena reserves for client-side (CSE-KMS)
        # encrypted data; SSE-KMS objects need no table property (Athena User Guide, "Create
        # tables based on encrypted datasets in Amazon S3"). Our objects are SSE-KMS.
        cfn = s3_table.node.default_child
        cfn.add_property_deletion_override("TableInput.Parameters.has_encrypted_data")  # type: ignore[union-attr]
        return s3_table

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

    def _positions_query(self, stage_name: str) -> athena.CfnNamedQuery:
        """The ``positions`` view for Athena (binance_lake/positions.py, Trino rendering), as a saved
        query in the stack's workgroup: running it once creates or replaces the view in the database
        (docs/trades.md). A saved query rather than a Glue VIRTUAL_VIEW table: Athena builds the
        view's catalog entry itself, so the stack never writes Athena's private view encoding.
        CloudFormation: AWS::Athena::NamedQuery (Database, QueryString <= 262,144 chars, WorkGroup);
        every property change replaces the resource, so a new view text simply redeploys it."""
        query = athena.CfnNamedQuery(
            self, "PositionsView", name=f"binance-lake-{stage_name.lower()} positions view",
            description="Creates or replaces the positions view (average cost, realized P&L, fees per "
                        "asset) over trades; run it once after a deploy that changes it",
            # Refs: created after the database and the workgroup. The view's text names the table
            # literally (a token would turn it into an Fn::Join).
            database=self.database.database_name, work_group=self.workgroup.ref,
            query_string=positions_view(ATHENA, trades=f'"{self.database_name}"."trades"'))
        return query

    # ------------------------------------------------------------------ jobs

    def _job_role(self, name: str, s3: Sequence[Tuple[str, List[str], List[str]]], *,
                  list_prefixes: Sequence[str], metric: bool = False) -> iam.Role:
        storage, stack = self._storage, Stack.of(self)
        role = iam.Role(self, f"{name}JobRole", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                        description=f"binance-lake Glue {name.lower()} job")
        for sid, actions, prefixes in s3:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid=sid, actions=actions, resources=[storage.prefix_arn(p) for p in prefixes]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ListZones", actions=["s3:ListBucket"], resources=[storage.lake.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in list_prefixes]}}))
        # The core wheel and the pinned wheels, installed by Glue at job start.
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="GlueLibraries", actions=["s3:GetObject"],
            resources=[storage.artifacts.arn_for_objects(f"{CORE_WHEEL_PREFIX}*")]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LakeKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]))
        # The job metrics the jobs enable (--enable-metrics, observability metrics) are put by the
        # job in namespace "Glue" with the job's role ("Monitoring AWS Glue using Amazon CloudWatch
        # metrics"); the verify also publishes its own figures.
        namespaces = [GLUE_METRIC_NAMESPACE, METRIC_NAMESPACE] if metric else [GLUE_METRIC_NAMESPACE]
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="JobMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": namespaces}}))
        nag.acknowledge(nag.policy(role), nag.IAM5,
                        f"cloudwatch:PutMetricData has no resource-level permissions; restricted to {namespaces} "
                        "by the cloudwatch:namespace condition.", ["Resource::*"])
        # Glue writes its own log groups (/aws-glue/...), encrypted with the key via the security configuration.
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="GlueLogs", actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                     "logs:AssociateKmsKey"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name="/aws-glue/*",
                                        arn_format=ArnFormat.COLON_RESOURCE_NAME)]))
        self._acknowledge_role(role, s3, metric)
        return role

    def _acknowledge_role(self, role: iam.Role, s3: Sequence[Tuple[str, List[str], List[str]]],
                          metric: bool) -> None:
        storage, stack = self._storage, Stack.of(self)
        glue_policy = nag.policy(role)
        zones = list(dict.fromkeys(p for _sid, _actions, prefixes in s3 for p in prefixes))
        nag.acknowledge(glue_policy, nag.IAM5, nag.ZONE_REASON, nag.zone_findings(storage.lake, zones))
        nag.acknowledge(glue_policy, nag.IAM5,
                        "Glue job libraries: the job script (CDK assets bucket, granted read-only by aws-cdk-lib "
                        "glue.Code) and the core + pinned wheels under glue/ in the artifacts bucket.",
                        [*nag.CDK_S3_READ, nag.assets_bucket(stack),
                         f"Resource::{nag.ref(storage.artifacts, 'Arn')}/{CORE_WHEEL_PREFIX}*"])
        log_group = f"Resource::arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws-glue/*"
        nag.acknowledge(glue_policy, nag.IAM5,
                        "Glue creates its log groups under /aws-glue/ with names derived from the security "
                        "configuration and the run; cloudwatch:PutMetricData has no resource-level permissions and "
                        "is restricted to the BinanceLake namespace by condition.",
                        [log_group, "Resource::*"] if metric else [log_group])

    def _acknowledge_bucket_deployment(self) -> None:
        """The stack-wide singleton handler that every BucketDeployment shares (ours publishes the wheels)."""
        stack = Stack.of(self)
        handler = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        reason = ("aws-cdk-lib BucketDeployment handler that publishes the Glue wheels: it reads the CDK "
                  "assets bucket and writes the dedicated artifacts bucket (never the lake); its grants, managed "
                  "policy and runtime are chosen by aws-cdk-lib.")
        nag.acknowledge(handler, nag.L1, reason)
        nag.acknowledge(handler, nag.IAM4, reason,
                        ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"])
        nag.acknowledge(handler, nag.IAM5, reason, [
            *nag.CDK_S3_READ, *nag.CDK_S3_WRITE, *nag.CDK_KMS, nag.assets_bucket(stack),
            f"Resource::{nag.ref(self._storage.artifacts, 'Arn')}/*"])

    def backfill_settings(self) -> BackfillSettings:
        """What the backfill job parses (binance_lake/aws/settings.py): every configured interval."""
        return BackfillSettings(lake_uri=self._storage.lake_uri, symbols=list(self._settings.symbols),
                                intervals=list(self._settings.intervals), archive_url=ArchiveConfig.base_url)

    def verify_settings(self) -> VerifySettings:
        """What the verify job parses: every configured interval, every re-derived table (trades are
        checked against the orders by the same job), the VERIFY_DAYS_BACK days before the run, and REST
        against the public archive for the same number of days ARCHIVE_LAG_DAYS earlier (report only).

        Egress (docs/reliability.md): the job has no Glue connection, so it runs in Glue's own
        network, not in a subnet of ours; AWS Glue Developer Guide, "Setting up network access to
        data stores": a job that does not need to run in a VPC subnet needs "no additional
        configuration", while a connection puts its ENIs (private IPs only) in that subnet, which
        then needs a NAT gateway for the public internet. The backfill reaches data.binance.vision
        the same way. Should egress be lost, every day's check is "failed" and the alarm fires."""
        return VerifySettings(lake_uri=self._storage.lake_uri, symbols=list(self._settings.symbols),
                              intervals=list(self._settings.intervals), tables=list(REDERIVED_TABLES),
                              days_back=VERIFY_DAYS_BACK, against_archive=True, archive_url=ArchiveConfig.base_url,
                              archive_lag_days=ARCHIVE_LAG_DAYS)

    def _job_arguments(self) -> Dict[str, str]:
        """Glue's own arguments, the same for both jobs (each job adds its settings)."""
        bucket = self._storage.artifacts.bucket_name
        wheels = [bundling.CORE_WHEEL_NAME, *self.glue_wheels]
        return {
            # Exactly our wheels from S3, pip's index disabled: never PyPI at run time ("Using
            # Python libraries with AWS Glue": S3 wheel paths in --additional-python-modules;
            # --python-modules-installer-option passes options to pip3).
            "--additional-python-modules": ",".join(f"s3://{bucket}/{CORE_WHEEL_PREFIX}{w}" for w in wheels),
            "--python-modules-installer-option": "--no-index",
        }

    def _log_groups(self, cid: str) -> Dict[str, str]:
        """The job's own /aws-glue/... error and output log groups (retention, the lake key)."""
        prefix = f"/aws-glue/{Stack.of(self).stack_name.lower()}/{cid.lower()}"
        for stream in ("error", "output"):
            logs.LogGroup(self, f"{cid}{stream.capitalize()}Logs", log_group_name=f"{prefix}/{stream}",
                          retention=GLUE_LOG_RETENTION, encryption_key=self._storage.key,
                          removal_policy=RemovalPolicy.DESTROY)
        return {"--custom-logGroup-prefix": prefix}

    def _spark_job(self, cid: str, *, role: iam.Role, script: Path, description: str, timeout: Duration,
                   settings: GlueSettings) -> glue.PySparkEtlJob:
        job = glue.PySparkEtlJob(
            self, cid, role=role, security_configuration=self.security, description=description,
            script=glue.Code.from_asset(str(script)), glue_version=glue.GlueVersion.V5_0,
            max_concurrent_runs=1, max_retries=0,
            worker_configuration=glue.WorkerConfiguration(worker_type=glue.WorkerType.G_1X, number_of_workers=2),
            timeout=timeout, default_arguments={**self._job_arguments(), **settings.render(), **self._log_groups(cid)},
            enable_metrics=True,
            # Glue 5.0 logs in real time without it: "Enabling continuous logging for AWS Glue 4.0
            # and earlier jobs" (AWS Glue Developer Guide) - the flag would only be noise.
            continuous_logging=glue.ContinuousLoggingProps(enabled=False),
        )
        job.node.add_dependency(self.core_wheel)  # a run must find the wheels it installs
        return job

    def _backfill_job(self) -> glue.PySparkEtlJob:
        return self._spark_job(
            "Backfill", role=self.backfill_role, script=bundling.GLUE_SCRIPTS_DIR / "backfill_spark.py",
            description="binance-lake: archive backfill from data.binance.vision (Spark, started by hand)",
            timeout=Duration.hours(2), settings=self.backfill_settings())

    def _verify_job(self) -> glue.PySparkEtlJob:
        return self._spark_job(
            "Verify", role=self.verify_role, script=bundling.GLUE_SCRIPTS_DIR / VERIFY_SCRIPT,
            description=f"binance-lake: rebuild-and-verify of the last {VERIFY_DAYS_BACK} days, twice a week "
                        "(re-derive curated from raw, compare, repair, report)",
            timeout=Duration.hours(1), settings=self.verify_settings())

    def _verify_schedule(self) -> glue.CfnTrigger:
        """A Glue SCHEDULED trigger rather than an EventBridge Scheduler schedule: it needs no
        extra IAM role (Scheduler would need one with glue:StartJobRun), lives and is versioned
        with the job, and a run's outcome shows in Glue's job history; a twice-weekly job needs neither
        Scheduler's retry policy nor its flexible window (a missed day is covered by the next
        run's range, or by a manual start)."""
        trigger = glue.CfnTrigger(
            self, "VerifySchedule", type="SCHEDULED", schedule=VERIFY_CRON, start_on_creation=True,
            description=f"binance-lake: rebuild-and-verify the last {VERIFY_DAYS_BACK} days, Monday and "
                        "Thursday at 01:30 UTC",
            actions=[glue.CfnTrigger.ActionProperty(job_name=self.verify_job.job_name)])
        trigger.node.add_dependency(self.core_wheel)
        return trigger


# S3 actions per job, from the code paths (binance_lake.lake.S3Lake: read_bytes/exists ->
# GetObject/HeadObject, version_of -> HeadObject, write_bytes/write_if_version (If-Match, the
# curated compare-and-swap) -> PutObject, delete/delete_if_match -> DeleteObject,
# list_* -> ListObjectsV2).
# Backfill (binance_lake.aws.spark -> jobs.backfill_file -> fold.fold_archive_file): reads and writes the
# archive zips and their .sidecar.json under raw/archive/; records exchange gaps under
# raw/_gaps/ (write_bytes if_absent) and drops a replaced file's gaps (delete); reads the
# day's REST raw (raw/klines/) to merge; merges curated day partitions (read + write) under
# the per-symbol writer lease, like every curated write (lock put/get/delete in curated/_locks/, and a
# read of a transform run's curated/_locks/run.lock, which it waits for: binance_lake.lock);
# quarantines rejected rows.
BACKFILL_S3: List[Tuple[str, List[str], List[str]]] = [
    ("RawRead", ["s3:GetObject"], [RAW]),
    ("ArchiveWrite", ["s3:PutObject"], [ARCHIVE]),
    ("GapsWriteDelete", ["s3:PutObject", "s3:DeleteObject"], [GAPS]),
    ("CuratedReadWrite", ["s3:GetObject", "s3:PutObject"], [CURATED]),
    ("WriterLockRelease", ["s3:DeleteObject"], [LOCKS]),
    ("QuarantineWrite", ["s3:PutObject"], [QUARANTINE]),
]
# Verify (glue_scripts/verify_spark.py -> binance_lake.verify): re-derives curated from raw
# (REST raw pages and the verified archive zips: read only), compares, repairs by rewriting
# curated partitions under the per-symbol writer lease (lock put/get/delete, run lock read, in
# curated/_locks/), stores its report under curated/_verify/, keeps an unreadable curated file
# in quarantine/ before replacing it, publishes counts to CloudWatch. Never writes or deletes raw.
# Its REST-against-archive check (verify.against_archive) reads raw pages, stored archive zips
# (raw/archive/) and curated, downloads from the public archive over HTTPS (no AWS call), and
# stores its report under curated/_verify/: covered by RawRead and CuratedReadWrite, nothing more.
VERIFY_S3: List[Tuple[str, List[str], List[str]]] = [
    ("RawRead", ["s3:GetObject"], [RAW]),
    ("CuratedReadWrite", ["s3:GetObject", "s3:PutObject"], [CURATED]),
    ("TransformLockRelease", ["s3:DeleteObject"], [LOCKS]),
    ("QuarantineWrite", ["s3:PutObject"], [QUARANTINE]),
]
