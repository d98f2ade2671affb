"""Glue tables derive from the core schema; projection; the Glue 5.0 Spark jobs and roles; Athena."""

from __future__ import annotations

from typing import Any, Dict

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from binance_lake.positions import ATHENA, positions_view
from binance_lake.schema import TABLES
from py_cdk import bundling
from py_cdk.catalog import ARCHIVE_LAG_DAYS, VERIFY_CRON, Catalog
from py_cdk.config import LakeSettings
from py_cdk.storage import LakeStorage

from .support import (
    Synth,
    as_list,
    cdk_json_context,
    flatten,
    grants_by_action,
    logical_id,
    only,
    policy_statements,
    resources,
)


def _table(synth: Synth, name: str) -> Dict[str, Any]:
    return next(t["Properties"]["TableInput"] for t in resources(synth.beta, "AWS::Glue::Table").values()
                if t["Properties"]["TableInput"]["Name"] == name)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_columns_and_partition_keys_come_from_the_schema(synth: Synth, name: str) -> None:
    table, schema = _table(synth, name), TABLES[name]
    expected = [{"Name": c["name"], "Type": c["type"], "Comment": c["comment"]} for c in schema.glue_columns()]
    assert table["StorageDescriptor"]["Columns"] == expected
    # Glue forbids a data column named like a partition key; the schema leaves those out.
    assert not {c["Name"] for c in expected} & {p.name for p in schema.partition_keys}
    assert table["PartitionKeys"] == [{"Name": p["name"], "Type": p["type"], "Comment": p["comment"]}
                                      for p in schema.glue_partition_keys()]


def test_orders_symbol_column_is_served_by_the_partition_key(synth: Synth) -> None:
    orders = _table(synth, "orders")
    assert "symbol" not in [c["Name"] for c in orders["StorageDescriptor"]["Columns"]]
    assert orders["PartitionKeys"][0]["Name"] == "symbol"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_parquet_location_and_partition_projection(synth: Synth, name: str) -> None:
    table, schema = _table(synth, name), TABLES[name]
    lake = f"<{logical_id(synth.beta_stack, synth.beta_stack.storage.lake)}>"
    sd = table["StorageDescriptor"]
    assert flatten(sd["Location"]) == f"s3://{lake}/{schema.curated_prefix}/"
    assert "parquet" in sd["InputFormat"].lower()
    params = {k: flatten(v) for k, v in table["Parameters"].items()}
    assert params["projection.enabled"] == "true"
    keys = "/".join(f"{p.name}=${{{p.name}}}" for p in schema.partition_keys)
    assert params["storage.location.template"] == f"s3://{lake}/{schema.curated_prefix}/{keys}/"
    assert params["projection.symbol.type"] == "enum"
    assert params["projection.symbol.values"] == synth.context["binance-lake:symbols"]
    assert params["projection.date.type"] == "date"
    assert params["projection.date.format"] == "yyyy-MM-dd"
    assert params["projection.date.range"] == "2017-07-01,NOW"
    assert params["projection.date.interval"] == "1"
    assert params["projection.date.interval.unit"] == "DAYS"
    if name == "candles":
        assert params["projection.interval.type"] == "enum"
        assert params["projection.interval.values"] == synth.context["binance-lake:intervals"]
    # Athena reserves has_encrypted_data for client-side encrypted data; ours is SSE-KMS.
    assert "has_encrypted_data" not in params


def test_interval_projection_follows_the_configured_intervals() -> None:
    """A catalog alone, configured with two intervals: Athena projects both."""
    settings = LakeSettings(symbols=("BTCUSDT", "ETHUSDT"), intervals=("1m", "5m"), binance_base_url="https://x",
                            schedule_minutes=5, freshness_threshold_minutes=30, alarm_email=None)
    app = cdk.App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "CatalogOnly", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    Catalog(stack, "Catalog", storage=LakeStorage(stack, "Storage", retain_data=False), settings=settings,
            stage_name="Test")
    template = Template.from_stack(stack)
    candles = next(t["Properties"]["TableInput"] for t in template.find_resources("AWS::Glue::Table").values()
                   if t["Properties"]["TableInput"]["Name"] == "candles")
    assert candles["Parameters"]["projection.interval.values"] == "1m,5m"
    assert candles["Parameters"]["projection.symbol.values"] == "BTCUSDT,ETHUSDT"


def _jobs(synth: Synth) -> Dict[str, Dict[str, Any]]:
    return {k: j["Properties"] for k, j in resources(synth.beta, "AWS::Glue::Job").items()}


def _job(synth: Synth, name: str) -> Dict[str, Any]:
    stack = synth.beta_stack
    return _jobs(synth)[logical_id(stack, getattr(stack.catalog, f"{name}_job"))]


def test_no_python_shell_job_left(synth: Synth) -> None:
    jobs = _jobs(synth)
    assert sorted(j["Command"]["Name"] for j in jobs.values()) == ["glueetl", "glueetl"]  # backfill, verify


@pytest.mark.parametrize("name", ["backfill", "verify"])
def test_spark_jobs_install_our_wheels_never_pypi(synth: Synth, name: str) -> None:
    job, stack = _job(synth, name), synth.beta_stack
    assert job["GlueVersion"] == "5.0" and job["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    assert job["WorkerType"] == "G.1X" and job["NumberOfWorkers"] == 2
    args = {k: flatten(v) for k, v in job["DefaultArguments"].items()}
    artifacts = f"s3://<{logical_id(stack, stack.storage.artifacts)}>/glue/"
    modules = args["--additional-python-modules"].split(",")
    assert modules[0] == f"{artifacts}binance_lake-0.1.0-py3-none-any.whl"
    assert all(m.startswith(artifacts) and m.endswith(".whl") for m in modules)  # S3 wheels only, no PyPI names
    names = [m[len(artifacts):] for m in modules]
    assert names[1:] == bundling.glue_wheel_names()
    pinned = {line.split("==")[0] for line in bundling.GLUE_REQUIREMENTS.read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    shipped = {n.split("-")[0].lower() for n in names}
    assert {p.lower().replace("-", "_") for p in pinned} <= shipped  # every pinned distribution is shipped
    assert {"boto3", "botocore"} <= shipped  # S3 conditional writes need botocore >= 1.35.70
    assert args["--python-modules-installer-option"] == "--no-index"
    assert args["--lake_uri"] == f"s3://<{logical_id(stack, stack.storage.lake)}>"
    assert args["--symbols"] == synth.context["binance-lake:symbols"]
    assert args["--intervals"] == synth.context["binance-lake:intervals"] and "--interval" not in args
    assert "SecurityConfiguration" in job


def test_jobs_wait_for_the_wheel_upload(synth: Synth) -> None:
    (deployment,) = synth.beta.find_resources("Custom::CDKBucketDeployment")
    for job in resources(synth.beta, "AWS::Glue::Job").values():
        assert deployment in job["DependsOn"]


def test_verify_runs_twice_a_week_from_a_glue_trigger(synth: Synth) -> None:
    stack = synth.beta_stack
    trigger = only(synth.beta, "AWS::Glue::Trigger")["Properties"]
    assert trigger["Type"] == "SCHEDULED" and trigger["StartOnCreation"]
    # Glue cron: day-of-month "?" when the day-of-week is given (AWS Glue, "Time-based schedules").
    assert trigger["Schedule"] == VERIFY_CRON == "cron(30 1 ? * MON,THU *)"
    assert trigger["Actions"] == [{"JobName": {"Ref": logical_id(stack, stack.catalog.verify_job)}}]
    # Monday covers Thursday-Sunday, Thursday covers Sunday-Wednesday: every day, at least once.
    assert {k: flatten(v) for k, v in _job(synth, "verify")["DefaultArguments"].items()}["--days_back"] == "4"


def test_verify_compares_rest_with_the_archive_report_only(synth: Synth) -> None:
    """The daily verify's archive comparison: on, the public archive, the publication horizon; it
    runs without a Glue connection (Glue's own network reaches the public archive, as the backfill
    does) and needs no grant beyond the verify's: raw read, its report under curated/_verify/."""
    stack = synth.beta_stack
    job = _job(synth, "verify")
    args = {k: flatten(v) for k, v in job["DefaultArguments"].items()}
    assert (args["--against_archive"], args["--archive_url"], args["--archive_lag_days"]) == \
        ("true", "https://data.binance.vision", str(ARCHIVE_LAG_DAYS))
    assert "Connections" not in job  # no VPC subnet of ours: no NAT needed for data.binance.vision
    lake = f"<{logical_id(stack, stack.storage.lake)}.Arn>"
    g = _grants(synth, stack.catalog.verify_role)
    assert f"{lake}/raw/*" in g["s3:GetObject"]  # REST pages and stored archive zips (raw/archive/)
    assert f"{lake}/curated/*" in g["s3:PutObject"]  # the report: curated/_verify/<started>-<run>-archive.json
    assert not any("raw" in r for r in g["s3:PutObject"] | g["s3:DeleteObject"])  # report only: raw untouched


def _grants(synth: Synth, role: Any) -> Dict[str, set]:
    return grants_by_action(synth, role)


def test_one_role_per_job(synth: Synth) -> None:
    stack = synth.beta_stack
    roles = {flatten(j["Role"]) for j in _jobs(synth).values()}
    assert roles == {f"<{logical_id(stack, r)}.Arn>" for r in (stack.catalog.backfill_role, stack.catalog.verify_role)}


def test_backfill_role_can_store_archive_zips_and_gaps(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = f"<{logical_id(stack, stack.storage.lake)}.Arn>"
    g = _grants(synth, stack.catalog.backfill_role)
    assert g["s3:PutObject"] == {f"{lake}/raw/archive/*", f"{lake}/raw/_gaps/*", f"{lake}/curated/*",
                                 f"{lake}/quarantine/*"}
    # A replaced archive file's gap records, and its own writer lease (the fold's lock) once released.
    assert g["s3:DeleteObject"] == {f"{lake}/raw/_gaps/*", f"{lake}/curated/_locks/*"}
    assert {f"{lake}/raw/*", f"{lake}/curated/*"} <= g["s3:GetObject"]
    assert g["s3:ListBucket"] == {lake}
    assert g["kms:Decrypt"] == g["kms:GenerateDataKey"] == {f"<{logical_id(stack, stack.storage.key)}.Arn>"}
    artifacts = f"<{logical_id(stack, stack.storage.artifacts)}.Arn>/glue/*"
    assert artifacts in g["s3:GetObject"]
    metrics = [s for s in policy_statements(synth.beta, logical_id(stack, stack.catalog.backfill_role))
               if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    # Glue's own job metrics only (--enable-metrics); the backfill publishes no BinanceLake figure.
    assert [m["Condition"] for m in metrics] == [{"StringEquals": {"cloudwatch:namespace": ["Glue"]}}]


def test_verify_role_repairs_curated_and_never_touches_raw(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = f"<{logical_id(stack, stack.storage.lake)}.Arn>"
    g = _grants(synth, stack.catalog.verify_role)
    assert g["s3:PutObject"] == {f"{lake}/curated/*", f"{lake}/quarantine/*"}
    assert g["s3:DeleteObject"] == {f"{lake}/curated/_locks/*"}  # the lease it takes, nothing else
    assert f"{lake}/raw/*" in g["s3:GetObject"]
    verify = [s for s in policy_statements(synth.beta, logical_id(stack, stack.catalog.verify_role))
              if s.get("Sid") == "JobMetrics"]
    assert verify[0]["Condition"] == {"StringEquals": {"cloudwatch:namespace": ["Glue", "BinanceLake"]}}
    lists = [s for s in policy_statements(synth.beta, logical_id(stack, stack.catalog.verify_role))
             if s.get("Sid") == "ListZones"]
    assert lists[0]["Condition"] == {"StringLike": {"s3:prefix": ["raw/*", "curated/*"]}}


def test_glue_security_configuration_encrypts_everything(synth: Synth) -> None:
    cfg = only(synth.beta, "AWS::Glue::SecurityConfiguration")["Properties"]["EncryptionConfiguration"]
    assert cfg["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert cfg["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"
    assert cfg["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"


def test_athena_workgroup_enforces_encrypted_results(synth: Synth) -> None:
    wg = only(synth.beta, "AWS::Athena::WorkGroup")["Properties"]
    conf = wg["WorkGroupConfiguration"]
    assert conf["EnforceWorkGroupConfiguration"] is True
    results = f"<{logical_id(synth.beta_stack, synth.beta_stack.storage.athena_results)}>"
    assert flatten(conf["ResultConfiguration"]["OutputLocation"]) == f"s3://{results}/results/"
    assert conf["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"


def test_database_per_stage(synth: Synth) -> None:
    assert only(synth.beta, "AWS::Glue::Database")["Properties"]["DatabaseInput"]["Name"] == "binance_lake_beta"
    assert only(synth.prod, "AWS::Glue::Database")["Properties"]["DatabaseInput"]["Name"] == "binance_lake_prod"


def test_glue_jobs_log_to_their_own_groups_with_retention_and_no_continuous_flag(synth: Synth) -> None:
    """Glue 5.0 logs in real time (the --enable-continuous-cloudwatch-log flag is for 4.0 and earlier)
    to <--custom-logGroup-prefix>/error and /output: the stack owns those groups, with a retention."""
    groups = {flatten(g["Properties"]["LogGroupName"]): g["Properties"]
              for g in resources(synth.beta, "AWS::Logs::LogGroup").values() if "LogGroupName" in g["Properties"]}
    jobs = resources(synth.beta, "AWS::Glue::Job").values()
    assert len(jobs) == 2
    for job in jobs:
        args = job["Properties"]["DefaultArguments"]
        assert "--enable-continuous-cloudwatch-log" not in args
        prefix = args["--custom-logGroup-prefix"]
        assert prefix.startswith("/aws-glue/")  # inside the roles' GlueLogs grant
        for stream in ("error", "output"):
            assert groups[f"{prefix}/{stream}"]["RetentionInDays"] == 30
            assert "KmsKeyId" in groups[f"{prefix}/{stream}"]


def test_fixed_name_glue_resources_retry_safe_in_prod_deleted_in_beta(synth: Synth) -> None:
    """A rolled-back first deploy must not leave the fixed-name database/security configuration
    behind (the retry would fail with AlreadyExists): RetainExceptOnCreate in Prod, Delete in Beta."""
    for type_ in ("AWS::Glue::Database", "AWS::Glue::SecurityConfiguration"):
        assert only(synth.prod, type_)["DeletionPolicy"] == "RetainExceptOnCreate", type_
        assert only(synth.beta, type_)["DeletionPolicy"] == "Delete", type_


def test_positions_view_is_a_saved_athena_query_in_the_stage_workgroup(synth: Synth) -> None:
    """The Trino rendering of binance_lake/positions.py, over this stage's trades table, saved in
    this stage's workgroup and database (running it creates the view: docs/trades.md)."""
    for template, stack, stage in ((synth.beta, synth.beta_stack, "beta"), (synth.prod, synth.prod_stack, "prod")):
        query = only(template, "AWS::Athena::NamedQuery")
        props = query["Properties"]
        database = f"binance_lake_{stage}"
        assert props["Database"] == {"Ref": logical_id(stack, stack.catalog.database)}
        assert props["QueryString"] == positions_view(ATHENA, trades=f'"{database}"."trades"')
        assert props["QueryString"].startswith("CREATE OR REPLACE VIEW positions AS")
        workgroup = logical_id(stack, stack.catalog.workgroup)
        assert props["WorkGroup"] == {"Ref": workgroup}
        assert only(template, "AWS::Athena::WorkGroup")["Properties"]["Name"] == f"binance-lake-{stage}"
        assert only(template, "AWS::Glue::Database")["Properties"]["DatabaseInput"]["Name"] == database
        assert len(props["QueryString"]) <= 262_144  # the NamedQuery limit (CloudFormation reference)


def test_month_partitions_get_their_own_table_and_month_projection() -> None:
    """Intervals from 1h are partitioned by month (binance_lake.layout.grain): Athena reads them
    through candles_monthly, whose date projection steps by month; minute intervals stay in candles."""
    settings = LakeSettings(symbols=("BTCUSDT",), intervals=("1m", "1h", "1M"), binance_base_url="https://x",
                            schedule_minutes=5, freshness_threshold_minutes=30, alarm_email=None)
    app = cdk.App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "CatalogOnly", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    Catalog(stack, "Catalog", storage=LakeStorage(stack, "Storage", retain_data=False), settings=settings,
            stage_name="Test")
    tables = {t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
              for t in Template.from_stack(stack).find_resources("AWS::Glue::Table").values()}
    day, month = tables["candles"]["Parameters"], tables["candles_monthly"]["Parameters"]
    assert (day["projection.interval.values"], day["projection.date.format"]) == ("1m", "yyyy-MM-dd")
    assert month["projection.interval.values"] == "1h,1M"
    assert (month["projection.date.type"], month["projection.date.format"], month["projection.date.range"],
            month["projection.date.interval.unit"]) == ("date", "yyyy-MM", "2017-07,NOW", "MONTHS")
    # Same columns, partition keys and location template: the same files, read by month.
    columns = tables["candles"]["StorageDescriptor"]["Columns"]
    assert tables["candles_monthly"]["StorageDescriptor"]["Columns"] == columns
    assert tables["candles_monthly"]["PartitionKeys"] == tables["candles"]["PartitionKeys"]
    assert flatten(month["storage.location.template"]) == flatten(day["storage.location.template"])


def test_an_interval_binance_does_not_have_fails_the_synth() -> None:
    from py_cdk.config import load_settings

    app = cdk.App(context={**cdk_json_context(), "binance-lake:intervals": "1m,1mo"})
    with pytest.raises(ValueError, match="intervals: unsupported interval '1mo'"):
        load_settings(app.node)
