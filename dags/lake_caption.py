"""
### Lake caption: silver images -> model captions

Runs whenever the layers DAG updates `lake.silver.images` (data-aware scheduling on the
asset), or by hand. Spark captions every silver image that has no caption from the
**production** model yet (the model is loaded once per Spark Python worker, batched
`generate`), MERGEd into `lake.gold.captions` on (image_id, model_version): a re-run
adds nothing. `lake.gold.image_captions` then shows the newest caption of each image.

Which model is production: `lake model list`; the registry is in `catalog.lake.models`. On
a lake with no production model yet the task is skipped (exit code 99), not failed.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

SILVER_IMAGES = Asset("lake://silver/images")
MODEL_CAPTIONS = Asset("lake://gold/captions")
CORE = "cd \"$LAKE_REPO\" && \"$LAKE_CORE_PYTHON\""


@dag(
    schedule=SILVER_IMAGES,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one writer per table
    tags=["lake", "gold", "model"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "execution_timeout": timedelta(hours=2)},
)
def lake_caption():
    @task.bash(outlets=[MODEL_CAPTIONS])
    def caption() -> str:
        """Spark: silver images without a production-model caption -> lake.gold.captions."""
        return f"{CORE} -m lake.cli model caption-silver production"

    caption()


lake_caption()
