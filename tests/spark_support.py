"""One local Spark session for the Spark tests (Glue 5.0 runs Spark 3.5.4; pyspark is pinned to it)."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Iterator, Mapping, Optional

import pytest

NO_JAVA = "no Java runtime (java not on PATH, JAVA_HOME unset): Spark cannot start"


def local_spark(app_name: str, executor_env: Optional[Mapping[str, str]] = None) -> Iterator[object]:
    """A ``local[2]`` session on 127.0.0.1, stopped afterwards.

    ``executor_env`` reaches the Python workers (``spark.executorEnv.*``), e.g. the endpoint of a
    moto_server S3: the py4j JVM outlives a session, so the workers may not see a later os.environ.

    Without Java the Spark tests cannot run: under CI (``CI=true``) that is a failure, since the
    Spark path is a deployed contract; on a developer machine it is a skip that says why.
    """
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{NO_JAVA}; CI must run the Spark tests (install Java 17)")
        print(f"SKIP: {NO_JAVA}")
        pytest.skip(NO_JAVA)
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors import this checkout's binance_lake
    builder = (SparkSession.builder.master("local[2]").appName(app_name)
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1"))
    for name, value in (executor_env or {}).items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    session = builder.getOrCreate()
    yield session
    session.stop()
