"""Builds the whole CDK app: the pipeline stack (with Beta and Prod inside) and cdk-nag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from py_cdk.config import load_settings
from py_cdk.pipeline_stack import PipelineStack

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Set by the CDK CLI when it runs the app (aws-cdk-lib cx-api: CONTEXT_ENV, CONTEXT_OVERFLOW_LOCATION_ENV).
CLI_CONTEXT_ENVS = ("CDK_CONTEXT_JSON", "CONTEXT_OVERFLOW_LOCATION_ENV")


def cdk_json_context(root: Path = PROJECT_ROOT) -> Dict[str, Any]:
    """The context the CLI would pass: cdk.json's ``context``, then cdk.context.json over it."""
    context: Dict[str, Any] = dict(json.loads((root / "cdk.json").read_text()).get("context", {}))
    cached = root / "cdk.context.json"
    if cached.exists():
        context.update(json.loads(cached.read_text()))
    return context


def app_options(env: Mapping[str, str], root: Path = PROJECT_ROOT) -> Dict[str, Any]:
    """``App(**options)``: nothing under the CLI; cdk.json's context and ``cdk.out`` without it."""
    if any(name in env for name in CLI_CONTEXT_ENVS):
        return {}
    options: Dict[str, Any] = {"context": cdk_json_context(root)}
    if "CDK_OUTDIR" not in env:
        options["outdir"] = str(root / "cdk.out")
    return options


def build(app: App) -> PipelineStack:
    settings = load_settings(app.node)
    pipeline = PipelineStack(app, "BinanceLakePipeline", settings=settings)
    # cdk-nag 3: a policy-validation plugin; any unacknowledged finding fails synth.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return pipeline
