"""lake/apps/fingerprint.py: a lake's fingerprint changes with its data and with nothing else.

.lake/venvs/core/bin/python -m pytest -q tests/lake/apps/test_fingerprint.py
"""

from __future__ import annotations

import io
import os

import pytest

from lake.apps.fingerprint import differences, files, fingerprint


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


@pytest.mark.integration
def test_fingerprint_of_a_running_lake_sees_a_new_object(stack_up, unique):
    """On the test stack (never the user's): every part answers, and one object more is a difference."""
    from lake.clients import minio_client

    before = fingerprint(stack_up)
    assert before["state"] == "running"
    assert {"tables", "buckets", "collections", "topics", "dag_runs"} <= before.keys()
    assert "bronze.upload_events" in before["tables"] and "bronze" in before["buckets"]
    mc = minio_client(stack_up)
    mc.make_bucket(unique)
    try:
        mc.put_object(unique, "one", io.BytesIO(b"1"), 1)
        assert f"buckets.{unique}: new (1)" in differences(before, fingerprint(stack_up))
    finally:
        mc.remove_object(unique, "one")
        mc.remove_bucket(unique)
