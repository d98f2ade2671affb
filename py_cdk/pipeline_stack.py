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
from aws_cdk import aws_iam as iam
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


# Pin the toolchain instead of taking the image's defaults (aws/codebuild/standard:7.0 defaults
# to Node 18; aws-cdk-lib 2.27x needs Node >= 20; the project and its tests target Python 3.11).
# CodeBuild picks the versions named in the buildspec's install phase ("runtime-versions",
# AWS CodeBuild User Guide, "Runtime versions" / "Available runtimes": "If a runtime version is
# not specified, CodeBuild uses the default version", which changes when a default reaches EOL).
RUNTIME_VERSIONS = {"nodejs": "20", "python": "3.11"}
INSTALL_PHASE = {"phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}


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
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=codebuild.LinuxBuildImage.STANDARD_7_0),
                partial_build_spec=codebuild.BuildSpec.from_object(INSTALL_PHASE)),
        )
        self.beta = LakeStage(self, "Beta", stage=settings.beta, lake=settings.lake)
        self.prod = LakeStage(self, "Prod", stage=settings.prod, lake=settings.lake)
        self.pipeline.add_stage(self.beta)
        self.pipeline.add_stage(self.prod, pre=[pipelines.ManualApprovalStep(
            "PromoteToProd", comment="Beta is deployed and healthy: promote this commit to Prod?")])
        self.pipeline.build_pipeline()  # materialize now so the acknowledgments below can find its constructs
        if settings.pipeline.source_type == "github":
            self._allow_codeconnections(settings.pipeline.github_connection_arn)
        nag.acknowledge_pipeline_stack(self)

    def _allow_codeconnections(self, connection_arn: str) -> None:
        """CodeStar Connections was renamed CodeConnections (2024-03-29); connections created since
        July 2024 have ``arn:aws:codeconnections:`` ARNs, and "when specifying a resource in the IAM
        policy, the service prefix needs to match that of the resource" (Developer Tools console
        User Guide, "Connections rename - Summary of changes"). aws-cdk-lib grants only
        ``codestar-connections:UseConnection``: add the new action for the same connection."""
        # The pipeline creates the source action's role (<Pipeline>/Source/<action>/CodePipelineActionRole).
        source_stage = self.pipeline.pipeline.node.find_child("Source")
        roles = [c for c in source_stage.node.find_all() if isinstance(c, iam.Role)]
        assert len(roles) == 1, f"expected the source action's role, found {[r.node.path for r in roles]}"
        roles[0].add_to_principal_policy(iam.PolicyStatement(
            sid="UseCodeConnection", actions=["codeconnections:UseConnection"], resources=[connection_arn]))
