"""Pausing and holding DAGs through the Airflow REST API, on the test stack (integration; its DAGs are
created paused: `lake env test` sets LAKE_DAGS_LIVE=false)."""

from __future__ import annotations

import pytest

from lake.apps.orchestration import PIPELINE, AirflowError, hold_pipeline, set_paused, status

pytestmark = pytest.mark.integration


def paused(s) -> dict[str, bool]:
    return {r["dag_id"]: r["paused"] for r in status(s)}


def test_hold_waits_for_the_pipeline_and_leaves_a_held_lake_paused(stack_up):
    with hold_pipeline(stack_up) as was_live:
        assert was_live == []
        assert all(paused(stack_up)[d] for d in PIPELINE)
    assert all(paused(stack_up)[d] for d in PIPELINE), "not live (LAKE_DAGS_LIVE=false): still paused"


def test_pause_and_unpause_say_what_they_changed(stack_up):
    # lake_stack_smoke has no schedule: unpaused, the scheduler still starts nothing
    before = set_paused(("lake_stack_smoke",), False, stack_up)
    try:
        assert paused(stack_up)["lake_stack_smoke"] is False
        assert set_paused(("lake_stack_smoke",), True, stack_up) == {"lake_stack_smoke": False}
        assert paused(stack_up)["lake_stack_smoke"] is True
    finally:
        set_paused(("lake_stack_smoke",), before["lake_stack_smoke"], stack_up)


def test_an_unknown_dag_is_named(stack_up):
    with pytest.raises(AirflowError, match="no DAG 'lake_nope'"):
        set_paused(("lake_nope",), True, stack_up)


def test_a_task_instance_becomes_one_document_per_try():
    from datetime import UTC, datetime

    from lake.apps.orchestration import task_run

    ti = {
        "dag_id": "lake_ingest",
        "dag_run_id": "scheduled__2026-12-03T10:00:00+00:00",
        "task_id": "silver",
        "map_index": -1,
        "try_number": 2,
        "state": "failed",
        "start_date": "2026-12-03T10:00:05.5Z",
        "end_date": "2026-12-03T10:01:05.5Z",
        "duration": 60.0,
    }
    doc = task_run(ti)
    assert doc["_id"] == "lake_ingest/scheduled__2026-12-03T10:00:00+00:00/silver/-1/2"
    assert doc["finished_at"] == datetime(2026, 12, 3, 10, 1, 5, 500000, tzinfo=UTC)
    assert (doc["state"], doc["try_number"], doc["duration_s"]) == ("failed", 2, 60.0)


@pytest.mark.slow
def test_a_failed_task_is_red_with_its_cause_and_counted(stack_up):
    """A run whose task fails (a model that does not exist) is failed in Airflow, the cause is in the task's
    log, and `lake dags record` brings the failed try to lake.gold.pipeline_runs."""
    from lake.apps.orchestration import AirflowApi, record_task_runs, run_dag
    from lake.clients import trino_query
    from spark_jobs.gold.build_gold import views

    done = run_dag("lake_retrain", {"model": "nosuchmodel"}, stack_up, timeout=600)
    assert done.state == "failed" and done.tasks["check"] == "failed", done.tasks
    assert "error: no model 'nosuchmodel:production'" in done.log.read_text()  # the cause, in the task log
    assert record_task_runs(stack_up) >= len(done.tasks)
    assert record_task_runs(stack_up) >= len(done.tasks)  # the overlap again: upserts, nothing twice
    rows = trino_query(
        f"SELECT task, state, count(*) FROM ({views(stack_up.tables)['pipeline_runs']}) "
        "WHERE source = 'airflow' AND run_id = ? GROUP BY 1, 2",
        [done.run_id],
        s=stack_up,
    )
    assert ["check", "failed", 1] in rows, rows
    api = AirflowApi(stack_up)
    try:
        assert api.get(f"/dags/lake_retrain/dagRuns/{done.run_id}")["state"] == "failed"
    finally:
        api.close()
