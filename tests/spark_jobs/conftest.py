"""A plain local SparkSession for the Spark unit tests (no servers, no Iceberg)."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(scope="module")
def local_spark():
    """Reuses a session an integration test already started (it outlives this module);
    otherwise starts one and, at the end, shuts its JVM down too, so that a later
    `lake.spark.spark_session` launches a JVM with the Iceberg jars on its class path."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from infra.install import java_home

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    os.environ["JAVA_HOME"] = str(java_home(17, 21))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    s = (SparkSession.builder.master("local[2]").appName("unit").config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield s
    s.stop()
    if SparkContext._gateway is not None:  # a fresh JVM for whoever comes next
        SparkContext._gateway.shutdown()
        SparkContext._gateway = SparkContext._jvm = None
