"""A deployable copy of the lake (Beta or Prod): one Stage, one data stack."""

from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stage
from constructs import Construct

from py_cdk.config import LakeSettings, StageSettings
from py_cdk.lake_stack import LakeStack


class LakeStage(Stage):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageSettings, lake: LakeSettings,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, env=Environment(account=stage.account, region=stage.region),
                         **kwargs)
        self.lake_stack = LakeStack(self, "BinanceLake", stage=stage, lake=lake)
