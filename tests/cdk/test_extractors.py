"""Extractor Lambdas: runtime, env contract, no reserved concurrency, least-privilege grants, the empty secret."""

from __future__ import annotations

import json

from aws_cdk.assertions import Template

from py_cdk import bundling

from .support import Synth, flatten, grants_by_action, logical_id, only, resources


def _fn(synth: Synth, name: str) -> dict:
    fn = getattr(synth.beta_stack.extractors, name)
    return resources(synth.beta, "AWS::Lambda::Function")[logical_id(synth.beta_stack, fn)]["Properties"]


def test_runtime_arch_concurrency(synth: Synth) -> None:
    for name, handler in (("candles", "candles.handler"), ("orders", "orders.handler")):
        props = _fn(synth, name)
        assert props["Runtime"] == bundling.LAMBDA_RUNTIME.name == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == handler
        assert props["MemorySize"] == 256 and props["Timeout"] == 240


def test_environment_contract(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = f"s3://<{logical_id(stack, stack.storage.lake)}>"
    for name in ("candles", "orders"):
        env = _fn(synth, name)["Environment"]["Variables"]
        assert flatten(env["LAKE_URI"]) == lake
        assert env["SYMBOLS"] == synth.context["binance-lake:symbols"]
        assert env["INTERVALS"] == synth.context["binance-lake:intervals"]  # every configured interval
        assert env["BINANCE_BASE_URL"] == "https://api.binance.com"
        assert env["POWERTOOLS_SERVICE_NAME"] == "binance-lake" and env["LOG_LEVEL"] == "INFO"
    secret_id = logical_id(stack, stack.secret.secret)
    assert _fn(synth, "orders")["Environment"]["Variables"]["BINANCE_SECRET_ARN"] == {"Ref": secret_id}
    assert "BINANCE_SECRET_ARN" not in _fn(synth, "candles")["Environment"]["Variables"]


def _grants(synth: Synth, name: str) -> dict:
    return grants_by_action(synth, getattr(synth.beta_stack.extractors, name).role)


def test_least_privilege_lake_grants(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = f"<{logical_id(stack, stack.storage.lake)}.Arn>"
    key = f"<{logical_id(stack, stack.storage.key)}.Arn>"
    for name in ("candles", "orders"):
        grants = _grants(synth, name)
        assert grants["s3:PutObject"] == {f"{lake}/raw/*"}  # writes raw only
        assert grants["s3:GetObject"] == {f"{lake}/raw/*", f"{lake}/curated/*"}
        assert grants["s3:ListBucket"] == {lake}
        assert grants["kms:Decrypt"] == grants["kms:GenerateDataKey"] == {key}
        assert not any(a.startswith("s3:Delete") for a in grants)
        assert grants["logs:PutLogEvents"] and grants["logs:CreateLogStream"]


def test_only_orders_reads_the_secret_and_only_that_secret(synth: Synth) -> None:
    stack = synth.beta_stack
    secret = f"<{logical_id(stack, stack.secret.secret)}>"
    orders, candles = _grants(synth, "orders"), _grants(synth, "candles")
    assert orders["secretsmanager:GetSecretValue"] == {secret}
    assert not any(a.startswith("secretsmanager:") for a in candles)
    assert {a for a in orders if a.startswith("secretsmanager:")} == {"secretsmanager:GetSecretValue"}


def test_no_managed_policies_on_extractor_roles(synth: Synth) -> None:
    stack = synth.beta_stack
    roles = resources(synth.beta, "AWS::IAM::Role")
    for fn in (stack.extractors.candles, stack.extractors.orders):
        assert "ManagedPolicyArns" not in roles[logical_id(stack, fn.role)]["Properties"]


def test_secret_is_created_empty(beta: Template) -> None:
    secret = only(beta, "AWS::SecretsManager::Secret")["Properties"]
    # Only the placeholder, never a key; no generated value the handler could mistake for a key.
    assert json.loads(secret["SecretString"]) == {"api_key": "", "api_secret": ""}
    assert "GenerateSecretString" not in secret
    assert "KmsKeyId" in secret


def test_log_groups_have_retention_and_encryption(beta: Template) -> None:
    groups = resources(beta, "AWS::Logs::LogGroup").values()
    # two extractors, the transform, the state machine, the wheel deployment, 2 Glue jobs x (error, output)
    assert len(groups) == 9
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == 30
        assert "KmsKeyId" in group["Properties"]


def test_no_lambda_reserves_concurrency(beta: Template) -> None:
    """Any reservation needs 100 unreserved executions left in the account: a new account fails."""
    functions = resources(beta, "AWS::Lambda::Function").values()
    assert functions and not [f for f in functions if "ReservedConcurrentExecutions" in f["Properties"]]
