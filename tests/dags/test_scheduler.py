"""The real scheduler, not `airflow dags test`: unpaused, `lake_ingest` runs by itself on its interval
(the test stack's is 2 minutes) and carries images uploaded through the API to silver with no command
typed; a `lake layers run` typed while that run is in flight either runs (the task waits for it) or is
refused with the reason, and both end correct; paused again, it starts nothing more (integration, slow:
one scheduled run, ~4 minutes).

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/dags/test_scheduler.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from tests.dags.test_dag_runs import ids_in, upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_scheduler_carries_uploads_to_silver_by_itself(stack_up):
    from lake.apps.orchestration import AirflowApi, pause_and_drain, set_paused

    images = upload(3, seed=4242)
    since = datetime.now(UTC).isoformat()
    api = AirflowApi(stack_up)
    try:
        before = set_paused(("lake_ingest",), False, stack_up)
        try:
            deadline, run, by_hand = time.monotonic() + 900, None, None
            while time.monotonic() < deadline:
                runs = api.get(
                    "/dags/lake_ingest/dagRuns", run_type=["scheduled"], start_date_gte=since, order_by="start_date"
                )["dag_runs"]
                if runs and runs[0]["state"] == "running" and by_hand is None:
                    by_hand = subprocess.run(  # a user's command while the scheduler's run is in flight
                        [sys.executable, "-m", "lake.cli", "layers", "run"], capture_output=True, text=True
                    )
                if runs and runs[0]["state"] in ("success", "failed"):
                    run = runs[0]
                    break
                time.sleep(5)
        finally:
            pause_and_drain(("lake_ingest",), api)  # nothing of the scheduler's overlaps the next test
            set_paused(("lake_ingest",), before["lake_ingest"], stack_up)
        assert run is not None, "no scheduled lake_ingest run ended within 15 minutes of the unpause"
        tasks = api.tasks("lake_ingest", run["dag_run_id"])
        assert run["state"] == "success", tasks
        assert tasks["bronze"] == "success" and tasks["silver"] in ("success", "skipped"), tasks
    finally:
        api.close()
    assert by_hand is not None, "the scheduled run was never seen in flight"
    from lake.locks import BUSY_EXIT

    assert by_hand.returncode in (0, BUSY_EXIT), by_hand.stdout + by_hand.stderr
    if by_hand.returncode == BUSY_EXIT:
        assert "another writer holds" in by_hand.stdout and "Traceback" not in by_hand.stderr
    assert ids_in(stack_up.tables.silver, images) == set(images)
    from lake.clients import trino_query

    marks = ", ".join("?" for _ in images)
    rows = trino_query(
        f"SELECT image_id, count(*) FROM {stack_up.tables.silver} WHERE image_id IN ({marks}) GROUP BY 1", list(images)
    )
    assert all(n == 1 for _, n in rows)  # two writers, each image once
