#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk deploy`` (or ``python app.py`` to synth without the CLI)."""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk

from py_cdk.application import build

app = cdk.App()
build(app)
app.synth()
