"""Glue tables derive from the core schema; projection; Glue jobs; Athena workgroup."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from binance_lake.schema import TABLES

from .support import Synth, as_list, flatten, logical_id, only, policy_statements, resources


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
        assert params["projection.interval.values"] == "1m"


def _job(synth: Synth, command: str) -> Dict[str, Any]:
    return next(j["Properties"] for j in resources(synth.beta, "AWS::Glue::Job").values()
                if j["Properties"]["Command"]["Name"] == command)


def test_python_shell_transform_job(synth: Synth) -> None:
    job = _job(synth, "pythonshell")
    assert job["Command"]["PythonVersion"] == "3.9"
    assert job["MaxCapacity"] == 0.0625
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    args = {k: flatten(v) for k, v in job["DefaultArguments"].items()}
    artifacts = f"<{logical_id(synth.beta_stack, synth.beta_stack.storage.artifacts)}>"
    assert args["--lake_uri"] == f"s3://<{logical_id(synth.beta_stack, synth.beta_stack.storage.lake)}>"
    assert args["--symbols"] == synth.context["binance-lake:symbols"]
    assert args["--tables"] == "candles,orders"
    assert args["--extra-py-files"] == f"s3://{artifacts}/glue/binance_lake-0.1.0-py3-none-any.whl"
    assert "SecurityConfiguration" in job


def test_spark_backfill_job(synth: Synth) -> None:
    job = _job(synth, "glueetl")
    assert job["GlueVersion"] == "5.0"
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    args = {k: flatten(v) for k, v in job["DefaultArguments"].items()}
    assert args["--additional-python-modules"].endswith("/glue/binance_lake-0.1.0-py3-none-any.whl")
    assert args["--tables"] == "candles,orders"


def test_glue_role_is_scoped_by_zone(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = f"<{logical_id(stack, stack.storage.lake)}.Arn>"
    by_sid = {s.get("Sid"): s for s in policy_statements(synth.beta, logical_id(stack, stack.catalog.role))}
    assert flatten(by_sid["RawReadDelete"]["Resource"]) == f"{lake}/raw/*"
    assert sorted(as_list(by_sid["RawReadDelete"]["Action"])) == ["s3:DeleteObject", "s3:GetObject"]
    assert flatten(by_sid["CuratedReadWrite"]["Resource"]) == f"{lake}/curated/*"
    assert flatten(by_sid["QuarantineWrite"]["Resource"]) == f"{lake}/quarantine/*"
    assert by_sid["FreshnessMetric"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "BinanceLake"}}
    deletes = [s for s in by_sid.values() if any(a.startswith("s3:Delete") for a in as_list(s["Action"]))]
    assert [s["Sid"] for s in deletes] == ["RawReadDelete", "TransformLockRelease"]  # never curated data
    assert flatten(by_sid["TransformLockRelease"]["Resource"]) == f"{lake}/curated/_locks/*"


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
