"""Fixtures for the cloud tests: one CDK synth per session, moto, the emulator, the box."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from binance_lake.aws import extract_lambda
from binance_lake.emulator import Emulator
from tests.cloud.box import CloudBox, StackAssembly, synth_beta
from tests.conftest import API_KEY, API_SECRET, NOW_MS

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def beta_stack(tmp_path_factory: pytest.TempPathFactory) -> StackAssembly:
    """The Beta lake stack exactly as ``app.py`` builds it (cdk.json context), minus Lambda bundling."""
    return synth_beta(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, beta_stack: StackAssembly) -> Iterator[None]:
    """moto for every AWS call, with Step Functions really executing ASL."""
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": beta_stack.region,
                        "AWS_REGION": beta_stack.region}.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same retry code path, shorter waits: a persistent 5xx must exhaust quickly in tests.
    monkeypatch.setattr(extract_lambda, "CLIENT_TUNING",
                        {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 2.0})
    extract_lambda.clear_secret_cache()


@pytest.fixture
def box_emulator() -> Emulator:
    emu = Emulator(now_ms=NOW_MS, seed=7)
    emu.add_api_key(API_KEY, API_SECRET)
    return emu


@pytest.fixture
def box(aws: None, fast_client: None, beta_stack: StackAssembly, box_emulator: Emulator) -> Iterator[CloudBox]:
    with box_emulator.serve() as url:
        cb = CloudBox(beta_stack, url).deploy()
        with cb.routed():
            yield cb
    extract_lambda.clear_secret_cache()
