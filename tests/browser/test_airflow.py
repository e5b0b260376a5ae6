"""Airflow's UI in a real browser: the login form, a DAG list naming every DAG file, one DAG's page.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/browser/test_airflow.py

Saves ``.lake/stacks/test/screenshots/airflow-dags.png`` and ``airflow-dag-<dag_id>.png``.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from infra.apps import ui_password
from lake.config import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARSE_WAIT_S = 90  # the dag-processor rescans the folder every 30 s


def dag_ids() -> list[str]:
    """One DAG per file, named after it: read at test time, so renamed files are followed."""
    return sorted(p.stem for p in (REPO_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def airflow_ui(stack_up, context):
    """The browser context, logged in through the simple auth manager's form; its `_token`
    cookie also authenticates ``context.request`` against the REST API."""
    s = stack_up
    base = f"http://{s.host}:{s.airflow_port}"
    pg = context.new_page()
    pg.goto(f"{base}/")
    pg.wait_for_url(re.compile(r"/auth/login"))
    pg.get_by_label("Username").fill(s.airflow_user)
    pg.get_by_label("Password").fill(ui_password(s, "airflow"))
    pg.get_by_role("button", name="Sign in").click()
    pg.wait_for_url(re.compile(r"^(?!.*/auth/login)"))
    pg.close()
    return base


def api(context, base: str, path: str) -> dict:
    r = context.request.get(f"{base}/api/v2{path}")
    assert r.ok, f"GET /api/v2{path}: {r.status} {r.text()[:300]}"
    return r.json()


def import_errors(context, base: str) -> list[str]:
    errs = api(context, base, "/importErrors?limit=100")["import_errors"]
    return [f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errs]


@pytest.fixture(scope="module")
def parsed_dags(airflow_ui, context):
    """Waits until Airflow has parsed every DAG file; returns the API's records of them."""
    want = set(dag_ids())
    deadline = time.monotonic() + PARSE_WAIT_S
    while True:
        dags = {d["dag_id"]: d for d in api(context, airflow_ui, "/dags?limit=100")["dags"]}
        if want <= set(dags) or time.monotonic() > deadline:
            break
        time.sleep(3)
    missing = sorted(want - set(dags))
    assert not missing, (
        f"Airflow never listed {missing} within {PARSE_WAIT_S} s; "
        f"import errors: {import_errors(context, airflow_ui) or 'none'}"
    )
    return {k: v for k, v in dags.items() if k in want}


def test_dag_list_shows_every_dag_file_and_no_import_error(airflow_ui, parsed_dags, context, page, shots):
    want = dag_ids()
    page.set_viewport_size({"width": page.viewport_size["width"], "height": max(900, 400 + 55 * len(want))})
    page.goto(f"{airflow_ui}/dags")
    page.get_by_role("button", name="Show table view").click()
    try:
        for dag_id in want:
            page.get_by_role("link", name=dag_id, exact=True).first.wait_for(timeout=15_000)
    except PlaywrightTimeout:
        pass  # reported below, with what the list does show
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / "airflow-dags.png")

    shown = set(
        page.locator('a[href^="/dags/"]').evaluate_all("links => links.map(a => a.getAttribute('href').split('/')[2])")
    )
    assert set(want) <= shown, f"DAG list lacks {sorted(set(want) - shown)} (shows {sorted(shown)})"
    # On the DAG list the import-error badge is icon-only: its name is in aria-label/title.
    banner = page.get_by_label(re.compile(r"Dag Import Errors?", re.I))
    assert banner.count() == 0, f"import-error banner on the DAG list: {import_errors(context, airflow_ui)}"
    assert import_errors(context, airflow_ui) == []


def test_dag_page_shows_its_tasks(airflow_ui, parsed_dags, context, page, shots):
    # The most recently run DAG makes the fullest picture (a grid of runs); else the first.
    runs = api(context, airflow_ui, "/dags/~/dagRuns?order_by=-start_date&limit=50")["dag_runs"]
    dag_id = next((r["dag_id"] for r in runs if r["dag_id"] in parsed_dags), min(parsed_dags))
    tasks = [t["task_id"] for t in api(context, airflow_ui, f"/dags/{dag_id}/tasks")["tasks"]]

    page.goto(f"{airflow_ui}/dags/{dag_id}")
    missing = []
    for task_id in tasks:  # the grid's row labels
        try:
            page.get_by_text(task_id, exact=True).first.wait_for(timeout=15_000)
        except PlaywrightTimeout:
            missing.append(task_id)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / f"airflow-dag-{dag_id}.png")
    assert not missing, f"{dag_id}'s page never showed tasks {missing} (of {tasks})"


def test_the_retrain_grid_shows_each_step(airflow_ui, parsed_dags, context, page, shots):
    """lake_retrain's grid has a row per step of the loop (README's screenshot of a scheduler-driven run is
    this page after tests/dags/test_autonomy.py)."""
    steps = ["check", "train", "evaluate", "gate", "promote", "reject", "serving"]
    tasks = [t["task_id"] for t in api(context, airflow_ui, "/dags/lake_retrain/tasks")["tasks"]]
    assert sorted(tasks) == sorted(steps)
    runs = api(context, airflow_ui, "/dags/lake_retrain/dagRuns?order_by=-start_date&limit=1")["dag_runs"]
    page.goto(f"{airflow_ui}/dags/lake_retrain" + (f"/runs/{runs[0]['dag_run_id']}" if runs else ""))
    for task_id in steps:
        page.get_by_text(task_id, exact=True).first.wait_for(timeout=15_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=shots / "airflow-dag-lake_retrain.png")
