"""lake/iceberg.py against the real Spark + Iceberg (JDBC catalog in PostgreSQL, data on MinIO), in a
namespace of the test's own: merge_changed commits only what is new or changed, and nothing at all
when nothing is; snapshots work as watermarks for read_appended.

    .lake/venvs/core/bin/python -m pytest -q tests/lake/test_iceberg.py
"""

from __future__ import annotations

import uuid

import pytest

from lake.iceberg import current_snapshot, merge_changed, read_appended

pytestmark = pytest.mark.integration

SCHEMA = "k string, v long, note string"


@pytest.fixture
def table(spark):
    ns = f"lake.iceberg_{uuid.uuid4().hex[:8]}"
    name = f"{ns}.t"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {ns}")
    spark.sql(f"CREATE TABLE {name} ({SCHEMA}) USING iceberg TBLPROPERTIES ('format-version'='2')")
    yield name
    spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")
    spark.sql(f"DROP NAMESPACE IF EXISTS {ns}")


def _rows(spark, table: str) -> dict:
    return {r.k: (r.v, r.note) for r in spark.table(table).collect()}


def test_merge_changed_inserts_updates_and_skips_what_is_the_same(spark, table):
    df = lambda rows: spark.createDataFrame(rows, SCHEMA)  # noqa: E731
    assert current_snapshot(spark, table) is None
    assert merge_changed(spark, df([("a", 1, "x"), ("b", 2, None)]), table, ["k"]) == 2
    first = current_snapshot(spark, table)
    # the same rows again (NULL = NULL here): nothing to do, and no snapshot
    assert merge_changed(spark, df([("a", 1, "x"), ("b", 2, None)]), table, ["k"]) == 0
    assert current_snapshot(spark, table) == first
    # one changed, one new: two rows, one commit
    assert merge_changed(spark, df([("a", 1, "x"), ("b", 3, None), ("c", 4, "y")]), table, ["k"]) == 2
    assert _rows(spark, table) == {"a": (1, "x"), "b": (3, None), "c": (4, "y")}
    # update=False with compare on the key: an insert-only MERGE (what bronze does on event_id)
    assert merge_changed(spark, df([("a", 9, "z"), ("d", 5, None)]), table, ["k"], compare=["k"], update=False) == 1
    assert _rows(spark, table)["a"] == (1, "x") and _rows(spark, table)["d"] == (5, None)


def test_read_appended_between_watermarks(spark, table):
    spark.createDataFrame([("a", 1, None)], SCHEMA).writeTo(table).append()
    since = current_snapshot(spark, table)
    spark.createDataFrame([("b", 2, None), ("c", 3, None)], SCHEMA).writeTo(table).append()
    until = current_snapshot(spark, table)
    assert sorted(r.k for r in read_appended(spark, table, since, until).collect()) == ["b", "c"]
    assert sorted(r.k for r in read_appended(spark, table, None, until).collect()) == ["a", "b", "c"]
    assert read_appended(spark, table, until, until).count() == 0
    assert sorted(r.k for r in read_appended(spark, table, 12345, until).collect()) == [
        "a",
        "b",
        "c",
    ]  # not an ancestor
