"""The candles and orders extractor Lambdas (arm64, bundled without Docker).

Each function has its own role with exactly what it needs: read+write ``raw/*``,
read ``curated/*`` (watermarks derive from curated data), list only those
prefixes, use the lake key; the orders function may also read its one secret.

No reserved concurrency: setting any needs the account to keep at least 100 unreserved
concurrent executions ("You can reserve up to the Unreserved account concurrency value
minus 100", AWS Lambda Developer Guide, "Configuring reserved concurrency for a function",
docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html), so CreateFunction
fails in a new account whose quota is 10 or 50. Scheduled runs cannot overlap anyway: the
state machine's first state ends a run while another one is RUNNING (py_cdk/orchestration.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from binance_lake.aws.settings import ExtractSettings, OrdersSettings
from py_cdk import bundling, nag
from py_cdk.config import LakeSettings
from py_cdk.storage import CURATED, RAW, LakeStorage

SERVICE_NAME, LOG_LEVEL = "binance-lake", "INFO"  # Powertools' service name and level (every Lambda)


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    handler: str
    # Sized for a 5-minute increment plus a catch-up of about a day after an outage
    # (1000 candles per request, weight 2). Memory from docs/cloud.md (bench/cloud_lambda.py:
    # ~80 MB peak for a 24 h catch-up or 1000 orders), doubled for headroom; re-check against
    # the REPORT lines (Max Memory Used / Duration) after the first deploy.
    memory_mb: int
    timeout: Duration
    description: str


CANDLES = ExtractorSpec("Candles", "candles.handler", 256, Duration.minutes(4),
                        "Closed candles from Binance -> raw/klines (binance-lake)")
ORDERS = ExtractorSpec("Orders", "orders.handler", 256, Duration.minutes(4),
                       "Account orders from Binance -> raw/orders (binance-lake)")


class Extractors(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, storage: LakeStorage, settings: LakeSettings,
                 secret: sm.ISecret) -> None:
        super().__init__(scope, construct_id)
        code = bundling.lambda_code()  # one asset, bundled once, two handlers
        candles = self.candles_settings(storage, settings)
        self.candles = self._function(CANDLES, code, candles.render(), storage)
        orders = OrdersSettings(**vars(candles), secret_arn=secret.secret_arn)
        self.orders = self._function(ORDERS, code, orders.render(), storage)
        self.orders.role.add_to_principal_policy(iam.PolicyStatement(  # type: ignore[union-attr]
            sid="ReadBinanceApiKey", actions=["secretsmanager:GetSecretValue"], resources=[secret.secret_arn]))

    @property
    def functions(self) -> Dict[str, lambda_.Function]:
        return {"candles": self.candles, "orders": self.orders}

    @staticmethod
    def candles_settings(storage: LakeStorage, settings: LakeSettings) -> ExtractSettings:
        """The candles extractor's settings (binance_lake/aws/settings.py renders its environment)."""
        return ExtractSettings(service=SERVICE_NAME, log_level=LOG_LEVEL, lake_uri=storage.lake_uri,
                               symbols=list(settings.symbols), intervals=list(settings.intervals),
                               base_url=settings.binance_base_url)

    def _function(self, spec: ExtractorSpec, code: lambda_.Code, env: Dict[str, str],
                  storage: LakeStorage) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{spec.name}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  encryption_key=storage.key, removal_policy=RemovalPolicy.DESTROY)
        role = iam.Role(self, f"{spec.name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"binance-lake {spec.name.lower()} extractor")
        fn = lambda_.Function(
            self, spec.name, runtime=bundling.LAMBDA_RUNTIME, architecture=bundling.LAMBDA_ARCHITECTURE,
            handler=spec.handler, code=code, memory_size=spec.memory_mb, timeout=spec.timeout,
            description=spec.description, environment=env, role=role, log_group=log_group,
        )
        # Own role + explicit log grant instead of the AWSLambdaBasicExecutionRole managed policy.
        log_group.grant_write(role)
        self._grant_lake(role, storage)
        nag.acknowledge(nag.policy(role), nag.IAM5, nag.ZONE_REASON, nag.zone_findings(storage.lake, (RAW, CURATED)))
        nag.acknowledge(fn, nag.L1, nag.RUNTIME_REASON)
        return fn

    @staticmethod
    def _grant_lake(role: iam.Role, storage: LakeStorage) -> None:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="RawReadWrite", actions=["s3:GetObject", "s3:PutObject"], resources=[storage.prefix_arn(RAW)]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="CuratedRead", actions=["s3:GetObject"], resources=[storage.prefix_arn(CURATED)]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ListZones", actions=["s3:ListBucket"], resources=[storage.lake.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{RAW}*", f"{CURATED}*"]}}))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LakeKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[storage.key.key_arn]))
