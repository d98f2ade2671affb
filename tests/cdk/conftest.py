"""One synth per test session, shared by every CDK test.

The app is built exactly like ``app.py`` (same context from cdk.json, cdk-nag
registered), except that asset bundling is skipped (``aws:cdk:bundling-stacks``);
``test_bundling.py`` bundles for real. Synth itself is the cdk-nag gate: any
unacknowledged finding raises here and fails every test.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk.assertions import Template

from py_cdk.application import build

from .support import Synth, cdk_json_context


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
