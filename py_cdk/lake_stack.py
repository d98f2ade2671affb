"""The data stack of one stage: storage, secret, extractors, catalog, orchestration, monitoring.

One stack per stage on purpose: the pieces reference each other densely (bucket,
key, topic, jobs), cross-stack exports would pin those references, and the data
that must survive (buckets, key, secret) is protected by removal policies rather
than by a stack boundary.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from py_cdk.catalog import Catalog
from py_cdk.config import LakeSettings, StageSettings
from py_cdk.extractors import Extractors
from py_cdk.monitoring import AlertTopic, Monitoring
from py_cdk.orchestration import Orchestration
from py_cdk.secret import BinanceApiSecret
from py_cdk.storage import LakeStorage
from py_cdk.transform_function import TransformFunction


class LakeStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageSettings, lake: LakeSettings,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="binance-lake: Binance candles and orders data lake",
                         **kwargs)
        self.storage = LakeStorage(self, "Storage", retain_data=stage.retain_data)
        self.secret = BinanceApiSecret(self, "BinanceApi", key=self.storage.key,
                                       removal_policy=self.storage.removal_policy)
        self.extractors = Extractors(self, "Extractors", storage=self.storage, settings=lake,
                                     secret=self.secret.secret)
        self.transform = TransformFunction(self, "Transform", storage=self.storage, settings=lake)
        self.catalog = Catalog(self, "Catalog", storage=self.storage, settings=lake, stage_name=stage.name)
        self.alerts = AlertTopic(self, "Alerts", key=self.storage.key, email=lake.alarm_email)
        self.orchestration = Orchestration(
            self, "Orchestration", candles=self.extractors.candles, orders=self.extractors.orders,
            transform=self.transform.function, topic=self.alerts.topic, key=self.storage.key,
            schedule_minutes=lake.schedule_minutes)
        # The first tick must not start before the Glue libraries are uploaded (a deploy that
        # fails half-way must not leave a running schedule behind a missing artifact).
        self.orchestration.schedule.node.add_dependency(self.catalog.core_wheel)
        self.monitoring = Monitoring(
            self, "Monitoring", alerts=self.alerts, state_machine=self.orchestration.state_machine,
            transform_logs=self.transform.log_group,
            freshness_threshold_minutes=lake.freshness_threshold_minutes,
            query_prefix=f"binance-lake-{stage.name.lower()}",
            glue_jobs=[self.catalog.backfill_job, self.catalog.verify_job])
