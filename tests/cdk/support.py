"""Helpers shared by the CDK tests (the session fixture lives in conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import aws_cdk as cdk
from aws_cdk.assertions import Template

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


def grants_by_action(synth: Synth, role: Any) -> Dict[str, set]:
    """action -> the (flattened) resources a role's Allow statements grant it in the Beta stack."""
    granted: Dict[str, set] = {}
    for st in policy_statements(synth.beta, logical_id(synth.beta_stack, role)):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            granted.setdefault(action, set()).update(flatten(r) for r in as_list(st["Resource"]))
    return granted
