"""
### Lake retrain: new human captions -> candidate -> promotion gate -> production -> API

Runs whenever `lake_ingest` freezes a new `training_examples` data set (data-aware scheduling on
the asset), or by hand (parameters: model name, `min_new`, the budget; their defaults are the settings
`LAKE_RETRAIN_MIN_NEW`, `LAKE_RETRAIN_MINUTES` and `LAKE_RETRAIN_STEPS`).

1. **check**: counts the train examples that reached gold since the production model's data set
   (Iceberg time travel on both snapshots); below `min_new` the rest of the run is **skipped**.
2. **retrain** (`lake model retrain`): warm-starts from the production weights on the new
   examples plus a replay sample of older ones, registers a candidate (`catalog.lake.models`),
   evaluates candidate and production on the same test split per slice
   (`lake.gold.model_evaluations`), gates (no slice may drop more than 5 %; the slices the new
   data is about must improve; the decision is in `catalog.lake.promotions` either way) and on
   promotion publishes `models.promoted`.
3. **serving**: waits until the running API captions with the production model it serves
   (`LAKE_CAPTION_MODEL`; it swaps on the event, without a restart): the run fails if it does
   not within a minute.

Roll back with `lake model rollback` (the API follows the same way).
"""

from __future__ import annotations

from datetime import timedelta

from _lake import (
    CORE,
    PRODUCTION_MODEL,
    RETRAIN_MIN_NEW,
    RETRAIN_MINUTES,
    RETRAIN_STEPS,
    SKIPPED,
    START,
    TRAINING_EXAMPLES,
    policy,
)
from airflow.sdk import Param, dag, task

# Parameters reach the commands as environment variables: a trigger's text is never shell code.
ENV = {
    "LAKE_DAG_MODEL": "{{ params.model }}",
    "LAKE_DAG_MIN_NEW": "{{ params.min_new }}",
    "LAKE_DAG_MINUTES": "{{ params.minutes }}",
    "LAKE_DAG_STEPS": "{{ params.steps }}",
}
RETRAIN = f'{CORE} -m lake.cli model retrain --name "$LAKE_DAG_MODEL" --min-new "$LAKE_DAG_MIN_NEW"'


@dag(
    schedule=TRAINING_EXAMPLES,
    start_date=START,
    catchup=False,
    max_active_runs=1,  # one candidate at a time
    dagrun_timeout=timedelta(hours=2),  # a run past this fails (red in the grid), freeing the slot
    tags=["lake", "model"],
    doc_md=__doc__,
    default_args=policy(retries=1, retry_minutes=2, timeout_hours=1),
    params={
        "model": Param("compact", type="string", pattern=r"^[A-Za-z0-9_-]+$", description="registry name"),
        "min_new": Param(RETRAIN_MIN_NEW, type="integer", minimum=1, description="new train examples needed"),
        "minutes": Param(RETRAIN_MINUTES, type="number", exclusiveMinimum=0, description="training wall-clock budget"),
        "steps": Param(RETRAIN_STEPS, type="integer", minimum=0, description="training step budget (0: none)"),
    },
)
def lake_retrain():
    @task.bash(env=ENV, append_env=True, skip_on_exit_code=SKIPPED, retries=0, execution_timeout=timedelta(minutes=10))
    def check() -> str:
        """Enough new human-captioned examples since the production model's data set? Else skip the rest."""
        return f"{RETRAIN} --check --idle-exit-code {SKIPPED}"

    @task.bash(outlets=[PRODUCTION_MODEL], env=ENV, append_env=True)
    def retrain() -> str:
        """Train, evaluate and gate a candidate; promote it (models.promoted) if the gate holds."""
        return f'{RETRAIN} --minutes "$LAKE_DAG_MINUTES" --steps "$LAKE_DAG_STEPS"'

    @task.bash(skip_on_exit_code=SKIPPED, execution_timeout=timedelta(minutes=5))
    def serving() -> str:
        """The running API answers with the production model it serves (it swapped on the event)."""
        return f"{CORE} -m lake.cli model serving --wait 60 --idle-exit-code {SKIPPED}"

    check() >> retrain() >> serving()


lake_retrain()
