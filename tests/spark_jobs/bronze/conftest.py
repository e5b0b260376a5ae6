"""Fixtures of the bronze tests: ``lane``, a topic, namespace and catalog database of the test's own."""

from tests.spark_jobs.bronze.lane import lane  # noqa: F401
