"""Fixtures of the runtime contract tests: an S3 (moto_server) on 127.0.0.1 and the bundle dir."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import boto3
import pytest

from tests.runtimes.venvs import bundle_dir


class MotoS3:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="eu-west-1").client("s3", endpoint_url=endpoint)

    def bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        return name


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto_server from the dev venv; runtime processes reach it through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoS3(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lambda_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The core and the Lambda handler modules, as the Lambda packages carry them."""
    return bundle_dir(tmp_path_factory.mktemp("lambda-bundle"),
                      ("candles.py", "orders.py", "transform.py", "lambda_logging.py"))


@pytest.fixture(scope="session")
def glue_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The core, as the Glue jobs get it (the core wheel holds binance_lake only)."""
    return bundle_dir(tmp_path_factory.mktemp("glue-bundle"))
