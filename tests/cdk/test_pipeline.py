"""Pipeline: source -> synth (tests) -> self-mutation -> assets -> Beta -> approval -> Prod."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Dict, List

import aws_cdk as cdk
import pytest
from aws_cdk import pipelines

from py_cdk.config import load_settings
from py_cdk.pipeline_stack import SYNTH_COMMANDS, pipeline_source

from .support import Synth, as_list, flatten, only, resources


def _stages(synth: Synth) -> List[Dict[str, Any]]:
    return only(synth.pipeline, "AWS::CodePipeline::Pipeline")["Properties"]["Stages"]


def test_stages_in_order(synth: Synth) -> None:
    assert [s["Name"] for s in _stages(synth)] == ["Source", "Build", "UpdatePipeline", "Assets", "Beta", "Prod"]


def test_assets_are_published_one_at_a_time(synth: Synth) -> None:
    """One CodeBuild action publishes every file asset in turn (issue 18 item 8): parallel
    publishing starts one build per asset, past a new account's concurrent-build quota."""
    assets = next(s for s in _stages(synth) if s["Name"] == "Assets")
    assert len(assets["Actions"]) == 1, [a["Name"] for a in assets["Actions"]]
    assert assets["Actions"][0]["ActionTypeId"]["Provider"] == "CodeBuild"


def test_prod_waits_for_manual_approval(synth: Synth) -> None:
    prod = next(s for s in _stages(synth) if s["Name"] == "Prod")
    actions = sorted(prod["Actions"], key=lambda a: a["RunOrder"])
    assert actions[0]["ActionTypeId"]["Category"] == "Approval"
    assert actions[0]["Name"] == "PromoteToProd"
    deploys = [a for a in actions if a["ActionTypeId"]["Category"] == "Deploy"]
    assert deploys and all(a["RunOrder"] > actions[0]["RunOrder"] for a in deploys)
    beta = next(s for s in _stages(synth) if s["Name"] == "Beta")
    assert all(a["ActionTypeId"]["Category"] == "Deploy" for a in beta["Actions"])


def test_stages_deploy_to_the_configured_accounts(synth: Synth) -> None:
    ctx = synth.context
    for name, account in (("Beta", ctx["binance-lake:beta-account"]), ("Prod", ctx["binance-lake:prod-account"])):
        stage = next(s for s in _stages(synth) if s["Name"] == name)
        deploy = next(a for a in stage["Actions"] if a["ActionTypeId"]["Category"] == "Deploy")
        assert f":iam::{account}:role/cdk-" in flatten(deploy["Configuration"]["RoleArn"])
        assert deploy["Configuration"]["StackName"] == f"{name}-BinanceLake"


def test_pipeline_is_v2_with_rotated_cross_account_key(synth: Synth) -> None:
    assert only(synth.pipeline, "AWS::CodePipeline::Pipeline")["Properties"]["PipelineType"] == "V2"
    synth.pipeline.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_source_is_the_github_connection_by_default(synth: Synth) -> None:
    source = _stages(synth)[0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == synth.context["binance-lake:github-repository"]
    assert source["Configuration"]["BranchName"] == "main"


def test_synth_runs_the_tests_before_synthesizing() -> None:
    test_step = next(i for i, c in enumerate(SYNTH_COMMANDS) if "pytest" in c)
    synth_step = next(i for i, c in enumerate(SYNTH_COMMANDS) if " synth" in c)
    assert test_step < synth_step


def test_codecommit_source_is_selectable(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> None:
    # No second synth: the source factory alone decides the provider.
    calls: list = []
    monkeypatch.setattr(pipelines.CodePipelineSource, "code_commit",
                        staticmethod(lambda repo, branch: calls.append((repo.repository_name, branch)) or "cc"))
    settings = load_settings(synth.app.node).pipeline
    source = pipeline_source(cdk.Stack(cdk.App(), "Scratch"), replace(settings, source_type="codecommit"))
    assert source == "cc"
    assert calls == [(synth.context["binance-lake:codecommit-repository"], "main")]


def _buildspec(synth: Synth, project: Dict[str, Any]) -> Dict[str, Any]:
    """Inline, or (the one asset-publishing project) a file of the cloud assembly that CDK Pipelines
    writes when assets are published one at a time."""
    spec = project["Properties"]["Source"]["BuildSpec"]
    return json.loads((synth.outdir / spec).read_text() if spec.startswith("buildspec-") else spec)


def test_every_codebuild_step_pins_node_python_and_java(synth: Synth) -> None:
    projects = resources(synth.pipeline, "AWS::CodeBuild::Project").values()
    assert projects
    for project in projects:
        assert project["Properties"]["Environment"]["Image"] == "aws/codebuild/standard:7.0"
        spec = _buildspec(synth, project)
        # Node 24: CDK support to 2028-10-30; Node 20's ended 2026-10-30 (see pipeline_stack.py).
        assert spec["phases"]["install"]["runtime-versions"] == {
            "nodejs": "24", "python": "3.11", "java": "corretto17"}


def _synth_project(synth: Synth) -> Dict[str, Any]:
    """The CodeBuild project whose buildspec runs the test suite."""
    def commands(project: Dict[str, Any]) -> List[str]:
        return _buildspec(synth, project)["phases"]["build"]["commands"]

    found = [p for p in resources(synth.pipeline, "AWS::CodeBuild::Project").values()
             if "python -m pytest -q" in commands(p)]
    assert len(found) == 1
    return found[0]


def test_the_test_step_really_tests_the_runtime_contracts(synth: Synth) -> None:
    project = _synth_project(synth)
    env = {v["Name"]: v.get("Value") for v in project["Properties"]["Environment"].get("EnvironmentVariables", [])}
    assert env.get("CI") == "true"  # tests/runtimes fail instead of skipping without python3.13 / Java
    commands = json.loads(project["Properties"]["Source"]["BuildSpec"])["phases"]["build"]["commands"]
    pyenv = next(i for i, c in enumerate(commands) if c.startswith("pyenv global"))
    # python stays 3.11 (listed first) and python3.13 resolves, before the suite runs.
    assert commands[pyenv].split()[2:] == ['"$PYTHON_311_VERSION"', '"$PYTHON_313_VERSION"']
    check = next(i for i, c in enumerate(commands) if "python3.13 --version" in c)
    assert pyenv < check < commands.index("python -m pytest -q")
    assert "java -version" in commands[check]


def test_source_role_may_use_the_connection_under_both_prefixes(synth: Synth) -> None:
    arn = synth.context["binance-lake:github-connection-arn"]
    used: dict = {}
    for policy in resources(synth.pipeline, "AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(st["Action"]):
                if action.endswith(":UseConnection"):
                    used.setdefault(action, set()).update(flatten(r) for r in as_list(st["Resource"]))
    assert used == {"codestar-connections:UseConnection": {arn}, "codeconnections:UseConnection": {arn}}
