"""One synth per test session, shared by every CDK test.

The app is built exactly like ``app.py`` (same context from cdk.json, cdk-nag
registered), except that asset bundling is skipped (``aws:cdk:bundling-stacks``);
``test_bundling.py`` bundles for real. Synth itself is the cdk-nag gate: any
unacknowledged finding raises here and fails every test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk.assertions import Template

from py_cdk.application import build
from py_cdk.lake_stack import LakeStack
from py_cdk.pipeline_stack import PipelineStack

ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> Dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synth:
    app: cdk.App
    outdir: Path
    pipeline_stack: PipelineStack
    beta_stack: LakeStack
    prod_stack: LakeStack
    pipeline: Template
    beta: Template
    prod: Template
    context: Dict[str, Any]


def _template(stage: cdk.Stage, stack: cdk.Stack) -> Template:
    # Stage.synth() is cached: this reads the assembly the app synth already produced.
    return Template.from_json(stage.synth().get_stack_artifact(stack.artifact_id).template)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = {**cdk_json_context(), "aws:cdk:bundling-stacks": []}
    app = cdk.App(context=context, outdir=str(outdir))
    pipeline_stack = build(app)
    app.synth()
    beta, prod = pipeline_stack.beta, pipeline_stack.prod
    return Synth(
        app=app, outdir=outdir, pipeline_stack=pipeline_stack, beta_stack=beta.lake_stack,
        prod_stack=prod.lake_stack, pipeline=_template(app, pipeline_stack),
        beta=_template(beta, beta.lake_stack), prod=_template(prod, prod.lake_stack), context=context,
    )


@pytest.fixture(scope="session")
def beta(synth: Synth) -> Template:
    return synth.beta


def resources(template: Template, type_: str) -> Dict[str, Dict[str, Any]]:
    return template.find_resources(type_)


def only(template: Template, type_: str, **match: Any) -> Dict[str, Any]:
    """The one resource of a type whose Properties contain ``match`` (shallow)."""
    found = [r for r in resources(template, type_).values()
             if all(r.get("Properties", {}).get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one {type_} with {match}, found {len(found)}"
    return found[0]


def logical_id(stack: cdk.Stack, construct: Any) -> str:
    element = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
    return stack.resolve(stack.get_logical_id(element))


def flatten(value: Any) -> str:
    """Render Fn::Join/Ref/GetAtt to a plain string (tokens as <Ref>/<LogicalId.Attr>) for assertions."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(flatten(v) for v in value)
    if isinstance(value, dict):
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(flatten(p) for p in parts)
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value)


def policy_statements(template: Template, role_logical_id: str) -> list:
    """All statements of the inline policies attached to one role."""
    out = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]
