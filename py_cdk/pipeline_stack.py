"""CDK Pipelines: source -> synth (with the unit tests) -> Beta -> manual approval -> Prod.

The source is chosen in cdk.json context: a CodeStar/CodeConnections connection to
GitHub (default; CodeCommit is closed to new AWS customers) or CodeCommit.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_codepipeline as codepipeline
from constructs import Construct

from py_cdk import nag
from py_cdk.config import AppSettings, PipelineSettings
from py_cdk.stage import LakeStage

SYNTH_COMMANDS = [
    "python -m pip install --quiet -r requirements-dev.txt",
    "export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20",
    # The whole offline test suite gates every deployment (CDK assertions, cdk-nag, cfn-lint included).
    "python -m pytest -q",
    "npx --yes aws-cdk@2 synth --no-notices",
]


def pipeline_source(scope: Construct, settings: PipelineSettings) -> pipelines.CodePipelineSource:
    if settings.source_type == "codecommit":
        repo = codecommit.Repository.from_repository_name(scope, "Repository", settings.codecommit_repository)
        return pipelines.CodePipelineSource.code_commit(repo, settings.branch)
    return pipelines.CodePipelineSource.connection(settings.github_repository, settings.branch,
                                                   connection_arn=settings.github_connection_arn)


class PipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: AppSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="binance-lake: delivery pipeline (Beta -> Prod)",
                         env=Environment(account=settings.pipeline.account, region=settings.pipeline.region),
                         **kwargs)
        synth = pipelines.ShellStep("Synth", input=pipeline_source(self, settings.pipeline), commands=SYNTH_COMMANDS)
        self.pipeline = pipelines.CodePipeline(
            self, "Pipeline", pipeline_name="binance-lake", synth=synth,
            pipeline_type=codepipeline.PipelineType.V2,
            cross_account_keys=True, enable_key_rotation=True,  # Beta/Prod live in other accounts
            code_build_defaults=pipelines.CodeBuildOptions(build_environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0)),
        )
        self.beta = LakeStage(self, "Beta", stage=settings.beta, lake=settings.lake)
        self.prod = LakeStage(self, "Prod", stage=settings.prod, lake=settings.lake)
        self.pipeline.add_stage(self.beta)
        self.pipeline.add_stage(self.prod, pre=[pipelines.ManualApprovalStep(
            "PromoteToProd", comment="Beta is deployed and healthy: promote this commit to Prod?")])
        self.pipeline.build_pipeline()  # materialize now so the acknowledgments below can find its constructs
        nag.acknowledge_pipeline_stack(self)
