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
