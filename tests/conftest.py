"""Shared fixtures. Tests marked `integration` talk to the real servers that
`make test` (infra/test.sh) starts; the rest are pure unit tests."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def settings():
    from lake.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def stack_up(settings):
    """Skip nothing silently: an integration test fails loudly if the stack is down, and refuses to run
    on the user's own lake (tests write rows, objects, topics and DAG runs)."""
    from infra import stack

    if settings.is_user_lake:
        pytest.fail(
            "integration tests run on a stack of their own, never on your lake: use `make test`, or "
            '`eval "$(.lake/venvs/core/bin/lake env test)"` then `lake up` and pytest'
        )

    down = [r.name for r in stack.status(settings) if r.state != "healthy"]
    if down:
        pytest.fail(f"test stack not healthy ({', '.join(down)}): use `make test`, or `lake up` in its env")
    return settings


@pytest.fixture
def unique():
    """A short unique name for per-test topics, buckets, collections and tables."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def spark(stack_up):
    from lake.spark import spark_session

    session = spark_session("lake-tests")
    yield session
    session.stop()


# The short demo that gives a fresh lake a history: every stage runs (ingest, layers, a production model
# trained 20 s, its evaluation, a gate drill and a retrain decision, captioning), in a few minutes.
SHORT_DEMO = [
    "demo",
    "--images",
    "20",
    "--train-images",
    "400",
    "--train-minutes",
    "0.3",
    "--star-images",
    "200",
    "--retrain-minutes",
    "0.3",
    "--no-airflow",
]


@pytest.fixture(scope="session")
def lake_with_history(stack_up):
    """The test stack's lake with something for every dashboard chart: images through every layer, model
    captions, a production `compact` model with evaluations, a gate decision, an Airflow run recorded. A lake
    that has them (an earlier `make test`) is left as it is; a fresh one gets them from a short `lake demo`
    (and one `lake_stack_smoke` run). The gold views and the Superset dashboards are then (re)made as this
    checkout defines them."""
    import subprocess
    import sys

    from infra.apps import Superset
    from lake.catalog import Catalog
    from lake.clients import trino_query
    from lake.registry import ModelNotFound, Registry
    from spark_jobs.gold.build_gold import create_views

    try:
        Registry.connect().get("compact:production")
        has_model = True
    except ModelNotFound:
        has_model = False
    cat = Catalog.connect()
    if not (
        has_model
        and cat.db.promotions.find_one({"kind": "retrain"})
        and trino_query("SELECT count(*) FROM lake.gold.captions")[0][0]
    ):
        res = subprocess.run(
            [sys.executable, "-m", "lake.cli", *SHORT_DEMO], capture_output=True, text=True, timeout=1800, check=False
        )
        assert res.returncode == 0, f"lake {' '.join(SHORT_DEMO)} failed:\n{(res.stdout + res.stderr)[-4000:]}"
    if not cat.db.pipeline_runs.find_one():  # the short demo runs no DAG: one run for "Pipeline task runs by state"
        from lake.apps.orchestration import record_task_runs, run_dag

        assert run_dag("lake_stack_smoke", {}).ok
        assert record_task_runs()
    create_views()
    Superset("superset", stack_up).import_dashboards()
    return stack_up


@pytest.fixture(scope="module")  # per module: Superset's access tokens expire after 15 minutes
def superset_api(lake_with_history):
    """Superset's REST API, logged in as the admin (a bearer token), on the lake with a history."""
    import httpx

    from infra.apps import ui_password

    s = lake_with_history
    c = httpx.Client(base_url=f"http://{s.host}:{s.superset_port}", timeout=120)
    login = c.post(
        "/api/v1/security/login",
        json={"username": s.superset_user, "provider": "db", "refresh": False, "password": ui_password(s, "superset")},
    )
    assert login.status_code == 200, login.text
    c.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    yield c
    c.close()
