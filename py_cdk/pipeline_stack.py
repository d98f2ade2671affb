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

# The CodeBuild image: Ubuntu standard:7.0 carries Python 3.9-3.14 side by side under pyenv and
# Node 18/20/22/24 under `n` (image definition github.com/aws/aws-codebuild-docker-images,
# ubuntu/standard/7.0/Dockerfile: PYTHON_311_VERSION="3.11.15", PYTHON_313_VERSION="3.13.12",
# NODE_24_VERSION="24.14.0", JAVA_HOME=Corretto 17; its runtimes.yml maps `python: 3.11` to
# `pyenv global $PYTHON_311_VERSION` and `nodejs: 24` to `n $NODE_24_VERSION`). AWS CodeBuild
# User Guide, "Available runtimes" / "Runtime versions" list the same runtimes per image.
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0

SYNTH_COMMANDS = [
    # `python` stays 3.11 (the first version); python3.13 also resolves: the Lambda runtime-contract
    # tests run the handlers under it (docs/runtimes.md). Both are preinstalled in the image.
    'pyenv global "$PYTHON_311_VERSION" "$PYTHON_313_VERSION"',
    "python --version && python3.13 --version && java -version && node --version",
    "python -m pip install --quiet -r requirements-dev.txt",
    # The whole offline test suite gates every deployment (CDK assertions, cdk-nag, cfn-lint and,
    # with CI=true below, the runtime contracts under Python 3.13 / Glue 5.0's versions included).
    "python -m pytest -q",
    "npx --yes aws-cdk@2 synth --no-notices",
]

# CI=true turns a missing runtime interpreter or Java from a skip into a failure
# (tests/runtimes/venvs.py require_python, test_glue_runtimes.java_or_skip).
SYNTH_ENV = {"CI": "true"}


# Pin the toolchain instead of taking the image's defaults (standard:7.0 defaults to Node 18).
# CodeBuild picks the versions named in the buildspec's install phase ("runtime-versions",
# AWS CodeBuild User Guide, "Available runtimes": "If a runtime version is not specified,
# CodeBuild uses the default version", which changes when a default reaches EOL).
# Node 24: AWS CDK v2 Developer Guide, "Supported Node.js versions for the AWS CDK" lists 24.x
# (Node EOL 2028-04-30, CDK support to 2028-10-30), 22.x (to 2027-10-30) and 20.x (CDK support
# ended 2026-10-30; jsii under aws-cdk-lib 2.275 prints "Node 20 is end-of-life and not supported
# anymore" and names ^24 and ^22). 24 is the newest LTS (nodejs/Release schedule) the image has.
# Python 3.11 for the suite (Glue 5.0's version, the dev venv's); Java 17 (Corretto) for the
# local Spark runs of the Glue 5.0 contract tests (Glue 5.0 = Spark 3.5.4, Java 17).
RUNTIME_VERSIONS = {"nodejs": "24", "python": "3.11", "java": "corretto17"}
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
        synth = pipelines.ShellStep("Synth", input=pipeline_source(self, settings.pipeline), commands=SYNTH_COMMANDS,
                                    env=SYNTH_ENV)
        self.pipeline = pipelines.CodePipeline(
            self, "Pipeline", pipeline_name="binance-lake", synth=synth,
            pipeline_type=codepipeline.PipelineType.V2,
            # One CodeBuild project publishes every file asset in turn instead of one action per
            # asset starting at once: a new account's "Concurrently running builds for Linux/Small
            # environment" quota (AWS CodeBuild) can be lower than our asset count, and the extra
            # builds then fail the first run at Assets. aws-cdk-lib pipelines.CodePipeline
            # ``publishAssetsInParallel``: "If set to false, use one Project per type to publish all
            # assets" (API reference, aws_cdk.pipelines/CodePipeline; default true). Quota: docs/deploy.md.
            publish_assets_in_parallel=False,
            cross_account_keys=True, enable_key_rotation=True,  # Beta/Prod live in other accounts
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
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
        self._acknowledge_pipeline()

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

    def _acknowledge_pipeline(self) -> None:
        """CDK Pipelines' own resources: their grants are made inside the construct."""
        pipelines_ = self.pipeline
        artifacts = pipelines_.pipeline.artifact_bucket
        nag.acknowledge(artifacts, nag.S1,
                        "CDK Pipelines' artifact bucket: transient build artifacts, KMS-encrypted with the rotated "
                        "pipeline key, TLS-only, reachable only by the pipeline's roles.")
        region, account, partition = self.region, self.account, self.partition
        projects = (pipelines_.synth_project, pipelines_.self_mutation_project)
        nag.acknowledge(
            pipelines_, nag.IAM5,
            "Generated by CDK Pipelines (CodePipeline/CodeBuild roles): artifact bucket and key access via "
            "aws-cdk-lib grant helpers, CodeBuild log groups and report groups named per build, asset "
            "publishing and self-mutation (assumes the cdk bootstrap roles, role/*, and reads "
            "stack metadata, *). Not narrowable from outside the construct.",
            [*nag.CDK_S3_READ, *nag.CDK_S3_WRITE, *nag.CDK_KMS,
             f"Resource::{nag.ref(artifacts, 'Arn')}/*",
             "Resource::*",
             f"Resource::arn:{partition}:logs:{region}:{account}:log-group:/aws/codebuild/*",
             f"Resource::arn:{partition}:codebuild:{region}:{account}:report-group/*",
             *(f"Resource::arn:{partition}:logs:{region}:{account}:log-group:/aws/codebuild/{nag.ref(p)}:*"
               for p in projects),
             *(f"Resource::arn:{partition}:codebuild:{region}:{account}:report-group/{nag.ref(p)}-*"
               for p in projects),
             f"Resource::arn:*:iam::{account}:role/*"])
