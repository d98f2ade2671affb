#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk deploy``, or ``python app.py`` to synth without the CLI.

Run by the CDK CLI, the context arrives in ``CDK_CONTEXT_JSON``; run as ``python app.py``,
the app reads cdk.json (and cdk.context.json) itself, like the CLI, and writes ``cdk.out/``.
"""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk

from py_cdk.application import app_options, build

app = cdk.App(**app_options(os.environ))
build(app)
app.synth()
