"""
### Lake retrain: new human captions -> candidate -> promotion gate -> production

Runs whenever the layers DAG freezes a new `training_examples` data set (data-aware
scheduling on the asset), or by hand. `lake model retrain`:

1. counts the train examples that reached gold since the production model's data set
   (Iceberg time travel on both snapshots); below 100 the task is **skipped** (exit 99);
2. warm-starts from the production weights on the new examples plus a replay sample of
   older ones, registers a candidate (`catalog.lake.models`);
3. evaluates candidate and production on the same test split, per slice
   (`lake.gold.model_evaluations`);
4. gates: no slice may drop more than 5 % and the slices the new data is about must
   improve; the decision is in `catalog.lake.promotions` either way;
5. on promotion publishes `models.promoted`: the API swaps to the new weights in seconds.

Roll back with `lake model rollback` (the API follows the same way).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

TRAINING_EXAMPLES = Asset("lake://gold/training_examples")
MODELS = Asset("lake://models/production")
CORE = "cd \"$LAKE_REPO\" && \"$LAKE_CORE_PYTHON\""


@dag(
    schedule=TRAINING_EXAMPLES,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one candidate at a time
    tags=["lake", "model"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2), "execution_timeout": timedelta(hours=1)},
)
def lake_retrain():
    @task.bash(outlets=[MODELS])
    def retrain() -> str:
        """Train, evaluate and gate a candidate; skipped when fewer than 100 new examples arrived."""
        return f"{CORE} -m lake.cli model retrain --idle-exit-code 99"

    retrain()


lake_retrain()
