"""The Binance API key secret, created empty.

The template holds only the placeholder ``{"api_key": "", "api_secret": ""}`` -
never a key. The operator fills it with ``aws secretsmanager put-secret-value``
(docs/deploy.md); CloudFormation does not overwrite a value set outside it as long
as this placeholder is unchanged. The orders handler treats an empty (or missing)
``api_key``/``api_secret`` as "not filled in yet" and skips with a log line.
"""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy, SecretValue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from py_cdk import nag

API_KEY_FIELD, API_SECRET_FIELD = "api_key", "api_secret"
PLACEHOLDER = json.dumps({API_KEY_FIELD: "", API_SECRET_FIELD: ""})


class BinanceApiSecret(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey,
                 removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.secret = sm.Secret(
            self, "Secret",
            description="Binance API key for the orders extractor: JSON {\"api_key\": ..., \"api_secret\": ...}. "
                        "Created empty; fill it with put-secret-value.",
            encryption_key=key,
            # An empty placeholder is not a secret; a generated random value would look like one.
            secret_string_value=SecretValue.unsafe_plain_text(PLACEHOLDER),
            removal_policy=removal_policy,
        )
        nag.acknowledge(self.secret, nag.SMG4, "Binance API keys are issued in the Binance UI and cannot be rotated "
                        "by a Lambda; rotation is manual (new key in Binance, then put-secret-value, see "
                        "docs/deploy.md).")
