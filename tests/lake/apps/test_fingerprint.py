"""lake/apps/fingerprint.py: a lake's fingerprint changes with its data and with nothing else.

.lake/venvs/core/bin/python -m pytest -q tests/lake/apps/test_fingerprint.py
"""

from __future__ import annotations

import io
import os

import pytest

from lake.apps.fingerprint import compare, differences, files, fingerprint


def test_files_sees_data_and_skips_what_is_not(tmp_path):
    (tmp_path / "data" / "minio").mkdir(parents=True)
    (tmp_path / "data" / "minio" / "obj").write_bytes(b"x")
    for skipped in ("venvs", "stacks", "logs", "run"):
        (tmp_path / skipped).mkdir()
    before = files(tmp_path)
    assert set(before) == {"data"} and before["data"]["files"] == 1
    (tmp_path / "logs" / "lake.log").write_text("a line")  # logs and the tooling's stacks are not the lake
    (tmp_path / "stacks" / "test").mkdir()
    assert differences(before, files(tmp_path)) == []
    obj = tmp_path / "data" / "minio" / "obj"
    obj.write_bytes(b"y")
    os.utime(obj, ns=(1, 1))
    assert differences(before, files(tmp_path)) == [
        f"data.digest: {before['data']['digest']} -> {files(tmp_path)['data']['digest']}"
    ]


def test_differences_names_each_change():
    before = {"tables": {"bronze.upload_events": {"rows": 3, "snapshot": 1}}, "buckets": {"bronze": 2}}
    after = {"tables": {"bronze.upload_events": {"rows": 4, "snapshot": 2}}, "buckets": {"bronze": 2, "t1": 1}}
    assert differences(before, after) == [
        "buckets.t1: new (1)",
        "tables.bronze.upload_events.rows: 3 -> 4",
        "tables.bronze.upload_events.snapshot: 1 -> 2",
    ]
    assert differences(after, after) == []


def test_a_live_lakes_own_changes_are_told_apart():
    """While the lake's scheduler ran, what its DAGs write may change by itself; a run asked for, a file,
    or any change while the scheduler was idle still fails."""
    before = {
        "tables": {"bronze.upload_events": {"rows": 5}},
        "collections": {"runs": 3},
        "dag_runs": {"asked": 2, "scheduler": 10},
    }
    quiet = {**before, "collections": {"runs": 4}}
    assert compare(before, quiet) == (["collections.runs: 3 -> 4"], [], 0)
    live = {**quiet, "dag_runs": {"asked": 2, "scheduler": 12}}
    assert compare(before, live) == ([], ["collections.runs: 3 -> 4", "dag_runs.scheduler: 10 -> 12"], 2)
    asked = {**live, "dag_runs": {"asked": 3, "scheduler": 12}}
    assert compare(before, asked)[0] == ["dag_runs.asked: 2 -> 3"]


@pytest.mark.integration
def test_fingerprint_of_a_running_lake_sees_a_new_object(stack_up, unique):
    """On the test stack (never the user's): every part answers, and one object more is a difference."""
    from lake.clients import minio_client

    before = fingerprint(stack_up)
    assert before["state"] == "running"
    assert {"tables", "buckets", "collections", "topics", "dag_runs"} <= before.keys()
    assert "bronze" in before["buckets"]  # `lake up` makes the buckets; the tables come with the first job
    assert all({"rows", "snapshot"} <= t.keys() for t in before["tables"].values())
    mc = minio_client(stack_up)
    mc.make_bucket(unique)
    try:
        mc.put_object(unique, "one", io.BytesIO(b"1"), 1)
        assert f"buckets.{unique}: new (1)" in differences(before, fingerprint(stack_up))
    finally:
        mc.remove_object(unique, "one")
        mc.remove_bucket(unique)


@pytest.mark.integration
def test_fingerprint_sees_a_new_table_and_its_next_snapshot(stack_up, unique):
    """A table in a scratch schema (Trino's Iceberg connector): new, then a row more and a new snapshot."""
    from lake.apps.fingerprint import tables
    from lake.clients import trino_query

    cat = stack_up.iceberg_catalog
    trino_query(f"CREATE SCHEMA {cat}.{unique}")
    try:
        trino_query(f"CREATE TABLE {cat}.{unique}.one AS SELECT 1 AS x")
        first = tables(stack_up)[f"{unique}.one"]
        assert first["rows"] == 1 and first["snapshot"]
        trino_query(f"INSERT INTO {cat}.{unique}.one VALUES 2")
        second = tables(stack_up)[f"{unique}.one"]
        assert second["rows"] == 2 and second["snapshot"] != first["snapshot"]
    finally:
        trino_query(f"DROP TABLE IF EXISTS {cat}.{unique}.one")
        trino_query(f"DROP SCHEMA {cat}.{unique}")
