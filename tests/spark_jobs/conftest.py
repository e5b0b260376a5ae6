"""A plain local SparkSession for the Spark unit tests (no servers, no Iceberg)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_spark():
    """Reuses a session an integration test already started (it outlives this module);
    otherwise starts one and shuts it down, JVM included, at the end (`lake.spark.local_session`)."""
    from lake.spark import local_session

    conf = {"spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "2"}
    with local_session("unit", 2, conf) as spark:
        yield spark
