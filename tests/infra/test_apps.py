"""Airflow and Superset are real and wired to the stack (integration)."""

from __future__ import annotations

import time

import httpx
import pytest

from infra.apps import ui_password

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def airflow(stack_up):
    s = stack_up
    base = f"http://{s.host}:{s.airflow_port}"
    r = httpx.post(f"{base}/auth/token", json={"username": s.airflow_user, "password": ui_password(s, "airflow")})
    assert r.status_code == 201, r.text
    return httpx.Client(
        base_url=f"{base}/api/v2", headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=30
    )


def test_airflow_refuses_wrong_password_and_anonymous(stack_up):
    base = f"http://{stack_up.host}:{stack_up.airflow_port}"
    assert httpx.post(f"{base}/auth/token", json={"username": "admin", "password": "wrong"}).status_code == 401
    assert httpx.get(f"{base}/api/v2/dags").status_code == 401


def test_airflow_components_healthy(airflow):
    health = airflow.get("/monitor/health").json()
    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[part]["status"] == "healthy", health


@pytest.mark.slow
def test_smoke_dag_runs_spark_and_trino_through_core_venv(airflow):
    dag = "lake_stack_smoke"
    deadline = time.monotonic() + 120
    while airflow.get(f"/dags/{dag}").status_code == 404:  # the dag-processor parses new files every 30 s
        assert time.monotonic() < deadline, "DAG never parsed"
        time.sleep(3)
    assert airflow.get("/importErrors").json()["total_entries"] == 0
    airflow.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()
    run = airflow.post(f"/dags/{dag}/dagRuns", json={"logical_date": None})
    assert run.status_code == 200, run.text
    run_id = run.json()["dag_run_id"]
    deadline = time.monotonic() + 300
    state = "queued"
    while state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(3)
        state = airflow.get(f"/dags/{dag}/dagRuns/{run_id}").json()["state"]
    tasks = airflow.get(f"/dags/{dag}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert state == "success", {t["task_id"]: t["state"] for t in tasks}


def test_superset_queries_trino(stack_up):
    s = stack_up
    c = httpx.Client(base_url=f"http://{s.host}:{s.superset_port}", timeout=60)
    assert c.get("/health").text == "OK"
    login = c.post(
        "/api/v1/security/login",
        json={"username": s.superset_user, "provider": "db", "refresh": False, "password": ui_password(s, "superset")},
    )
    assert login.status_code == 200, login.text
    h = {"Authorization": f"Bearer {login.json()['access_token']}"}
    dbs = {d["database_name"]: d["id"] for d in c.get("/api/v1/database/", headers=h).json()["result"]}
    assert "Lake (Trino)" in dbs
    csrf = c.get("/api/v1/security/csrf_token/", headers=h).json()["result"]
    r = c.post(
        "/api/v1/sqllab/execute/",
        headers={**h, "X-CSRFToken": csrf, "Referer": str(c.base_url)},
        json={"database_id": dbs["Lake (Trino)"], "sql": "SELECT 1 + 1 AS two", "runAsync": False},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [{"two": 2}]
