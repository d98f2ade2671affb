"""The transform Lambda: runtime, own bundle, environment, and its role action by action."""

from __future__ import annotations

from typing import Dict

from .support import Synth, flatten, grants_by_action, logical_id, policy_statements, resources


def _props(synth: Synth) -> dict:
    stack = synth.beta_stack
    return resources(synth.beta, "AWS::Lambda::Function")[logical_id(stack, stack.transform.function)]["Properties"]


def test_same_runtime_as_the_extractors_but_its_own_bundle(synth: Synth) -> None:
    stack, props = synth.beta_stack, _props(synth)
    candles = resources(synth.beta, "AWS::Lambda::Function")[logical_id(stack, stack.extractors.candles)]
    assert props["Runtime"] == candles["Properties"]["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"] and props["Handler"] == "transform.handler"
    assert props["Code"]["S3Key"] != candles["Properties"]["Code"]["S3Key"]  # pyarrow only in this one
    assert props["MemorySize"] == 512 and props["Timeout"] == 600
    assert "ReservedConcurrentExecutions" not in props


def test_environment_contract(synth: Synth) -> None:
    stack = synth.beta_stack
    env = _props(synth)["Environment"]["Variables"]
    assert flatten(env["LAKE_URI"]) == f"s3://<{logical_id(stack, stack.storage.lake)}>"
    assert env["SYMBOLS"] == synth.context["binance-lake:symbols"]
    assert env["TABLES"] == "candles,orders,trades" and env["INTERVALS"] == "1m"
    assert "BINANCE_SECRET_ARN" not in env and "BINANCE_BASE_URL" not in env  # never talks to Binance


def _grants(synth: Synth) -> Dict[str, set]:
    return grants_by_action(synth, synth.beta_stack.transform.role)


def test_role_action_by_action(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = f"<{logical_id(stack, stack.storage.lake)}.Arn>"
    key = f"<{logical_id(stack, stack.storage.key)}.Arn>"
    g = _grants(synth)
    assert g["s3:GetObject"] == {f"{lake}/raw/*", f"{lake}/curated/*"}
    assert g["s3:PutObject"] == {f"{lake}/curated/*", f"{lake}/quarantine/*"}  # never raw
    # Markers once curated, an invalid raw file after its quarantine copy, the lease: never an
    # archive zip, a gap record or a curated partition.
    assert g["s3:DeleteObject"] == {f"{lake}/raw/_pending/*", f"{lake}/raw/klines/*", f"{lake}/raw/orders/*",
                                    f"{lake}/raw/trades/*", f"{lake}/curated/_locks/*"}
    assert g["s3:ListBucket"] == {lake}
    assert g["kms:Decrypt"] == g["kms:GenerateDataKey"] == {key}
    assert g["cloudwatch:PutMetricData"] == {"*"}
    assert g["logs:CreateLogStream"] and g["logs:PutLogEvents"]
    assert not [a for a in g if a.startswith("secretsmanager:")]
    by_sid = {s.get("Sid"): s for s in policy_statements(synth.beta, logical_id(stack, stack.transform.role))}
    assert by_sid["FreshnessMetric"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "BinanceLake"}}
    assert by_sid["ListZones"]["Condition"] == {"StringLike": {"s3:prefix": ["raw/*", "curated/*"]}}
    assert "ManagedPolicyArns" not in resources(synth.beta, "AWS::IAM::Role")[
        logical_id(stack, stack.transform.role)]["Properties"]
