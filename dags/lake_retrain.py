"""
### Lake retrain: new human captions -> candidate -> promotion gate -> production -> API

Runs whenever `lake_ingest` freezes a new `training_examples` data set (data-aware scheduling on
the asset), or by hand (parameters: model name, `min_new`, the budget, the gate's tolerance; their
defaults are the settings `LAKE_RETRAIN_MIN_NEW`, `LAKE_RETRAIN_MINUTES`, `LAKE_RETRAIN_STEPS` and
`LAKE_RETRAIN_TOLERANCE`). Each step of the loop is a task (`lake model retrain --step ...`), so
the grid shows where a run is and what it decided:

1. **check**: counts the train examples that reached gold since the production model's data set
   (Iceberg time travel on both snapshots); below `min_new` the rest of the run is **skipped**.
2. **train**: warm-starts from the production weights on the new examples plus a replay sample of
   older ones and registers a candidate (`catalog.lake.models`); its id is the task's XCom.
3. **evaluate**: candidate and production on the same test split, per slice
   (`lake.gold.model_evaluations`).
4. **gate**: no slice may drop more than 5 %, the slices the new data is about must improve; the
   per-slice table is in the task's log and its XCom, the decision in `catalog.lake.promotions`.
5. **promote** (archives production, publishes `models.promoted`) or **reject**: the one the gate did
   not choose is **skipped**, so a rejected candidate is a skipped promote, not a failure.
6. **serving**: waits until the running API captions with the production model it serves
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
    RETRAIN_TOLERANCE,
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
    "LAKE_DAG_TOLERANCE": "{{ params.tolerance }}",
    "LAKE_DAG_CANDIDATE": "{{ ti.xcom_pull(task_ids='train') }}",
}
RETRAIN = f'{CORE} -m lake.cli model retrain --name "$LAKE_DAG_MODEL" --min-new "$LAKE_DAG_MIN_NEW"'
STEP = f'{RETRAIN} --candidate "$LAKE_DAG_CANDIDATE" --step'


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
        "tolerance": Param(
            RETRAIN_TOLERANCE, type="number", minimum=0, description="the gate's largest relative drop on a slice"
        ),
    },
)
def lake_retrain():
    @task.bash(env=ENV, append_env=True, skip_on_exit_code=SKIPPED, retries=0, execution_timeout=timedelta(minutes=10))
    def check() -> str:
        """Enough new human-captioned examples since the production model's data set? Else skip the rest."""
        return f"{RETRAIN} --step check --idle-exit-code {SKIPPED}"

    @task.bash(env=ENV, append_env=True)
    def train() -> str:
        """Train and register a candidate; the last line of the log (its id) is the XCom the next steps read."""
        return (
            f'{RETRAIN} --step train --minutes "$LAKE_DAG_MINUTES" --steps "$LAKE_DAG_STEPS" '
            '--tolerance "$LAKE_DAG_TOLERANCE"'
        )

    @task.bash(env=ENV, append_env=True, execution_timeout=timedelta(minutes=30))
    def evaluate() -> str:
        """Candidate and production on the candidate's test split (lake.gold.model_evaluations)."""
        return f"{STEP} evaluate"

    @task.bash(env=ENV, append_env=True, execution_timeout=timedelta(minutes=10))
    def gate() -> str:
        """The promotion gate: its per-slice table in the log, the decision as XCom and in catalog.lake.promotions."""
        return f"{STEP} gate"

    @task.bash(outlets=[PRODUCTION_MODEL], env=ENV, append_env=True, skip_on_exit_code=SKIPPED, retries=0)
    def promote() -> str:
        """The gate passed it: production (the previous one archived), models.promoted sent. Else skipped."""
        return f"{STEP} promote --idle-exit-code {SKIPPED}"

    @task.bash(env=ENV, append_env=True, skip_on_exit_code=SKIPPED, retries=0)
    def reject() -> str:
        """The gate rejected it: the candidate's stage is rejected, production is unchanged. Else skipped."""
        return f"{STEP} reject --idle-exit-code {SKIPPED}"

    @task.bash(
        skip_on_exit_code=SKIPPED, trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(minutes=5)
    )
    def serving() -> str:
        """The running API answers with the production model it serves (it swapped on the event)."""
        return f"{CORE} -m lake.cli model serving --wait 60 --idle-exit-code {SKIPPED}"

    decided = check() >> train() >> evaluate() >> gate()
    decided >> [promote(), reject()] >> serving()


lake_retrain()
