"""What every Lake DAG file shares (not a DAG; `.airflowignore` keeps the DAG processor off it):
how a task runs Lake code, the assets DAGs schedule on, the default retry/timeout policy.

A task runs Lake code with the core venv's interpreter from the checkout, as set by `lake up`
(infra/apps.py exports LAKE_CORE_PYTHON and LAKE_REPO); nothing heavy is imported here, so
parsing a DAG file stays cheap and offline. Exit code 99 from a task means "nothing to do":
the task shows *skipped* (`skip_on_exit_code`) and emits no asset event: a DAG downstream wakes
only when a task changed what it reads.

Schedules and budgets come from Lake's settings: `lake up` exports them to Airflow's processes
(`LAKE_INGEST_INTERVAL`, `LAKE_RETRAIN_*`; infra/apps.py), and the defaults here are the settings'.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset

CORE = 'cd "$LAKE_REPO" && "$LAKE_CORE_PYTHON"'
START = pendulum.datetime(2026, 1, 1, tz="UTC")
SKIPPED = 99

INGEST_INTERVAL = timedelta(minutes=float(os.environ.get("LAKE_INGEST_INTERVAL", "10")))
RETRAIN_MIN_NEW = int(os.environ.get("LAKE_RETRAIN_MIN_NEW", "100"))
RETRAIN_MINUTES = float(os.environ.get("LAKE_RETRAIN_MINUTES", "5"))
RETRAIN_STEPS = int(os.environ.get("LAKE_RETRAIN_STEPS", "0"))
RETRAIN_TOLERANCE = float(os.environ.get("LAKE_RETRAIN_TOLERANCE", "0.05"))

# Data-aware scheduling: a DAG runs when a task of another one updated what it reads.
UPLOAD_EVENTS = Asset("lake://bronze/upload_events")
SILVER_IMAGES = Asset("lake://silver/images")
TRAINING_EXAMPLES = Asset("lake://gold/training_examples")
MODEL_CAPTIONS = Asset("lake://gold/captions")
PRODUCTION_MODEL = Asset("lake://models/production")
SEARCH_INDEX = Asset("lake://gold/search_index")


def policy(retries: int = 2, retry_minutes: float = 1, timeout_hours: float = 2) -> dict:
    """Default task arguments: retries with a delay, a hard timeout, failures shown in the UI with the log."""
    return {
        "retries": retries,
        "retry_delay": timedelta(minutes=retry_minutes),
        "execution_timeout": timedelta(hours=timeout_hours),
    }
