"""Builds the whole CDK app: the pipeline stack (with Beta and Prod inside) and cdk-nag."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from py_cdk.config import load_settings
from py_cdk.pipeline_stack import PipelineStack


def build(app: App) -> PipelineStack:
    settings = load_settings(app.node)
    pipeline = PipelineStack(app, "BinanceLakePipeline", settings=settings)
    # cdk-nag 3: a policy-validation plugin; any unacknowledged finding fails synth.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return pipeline
