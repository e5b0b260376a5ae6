"""
### Lake layers: bronze -> silver -> gold

Runs whenever the bronze ingest DAG updates `lake.bronze.upload_events` (data-aware
scheduling on the asset); trigger it by hand from the UI at any time.

1. **silver**: normalizes only the images bronze gained since the last successful run
   (Iceberg snapshot watermark in the MongoDB catalog), behind the `silver_images`
   Great Expectations gate; failures land in `lake.bronze.quarantine` with the reason.
2. **gold**: `training_examples` (gated, frozen as a catalog data set), `ingest_daily`,
   and the Trino views `lake.gold.image_captions`, `layer_counts`, `quarantine_by_reason`.

Both are idempotent: a re-run with nothing new commits nothing. `lake layers status` and
`lake quality report` show the outcome; so do the task logs here.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

UPLOAD_EVENTS = Asset("lake://bronze/upload_events")
SILVER_IMAGES = Asset("lake://silver/images")
TRAINING_EXAMPLES = Asset("lake://gold/training_examples")
CORE = "cd \"$LAKE_REPO\" && \"$LAKE_CORE_PYTHON\""


@dag(
    schedule=UPLOAD_EVENTS,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one writer per table
    tags=["lake", "silver", "gold"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "execution_timeout": timedelta(hours=2)},
)
def lake_layers():
    @task.bash(outlets=[SILVER_IMAGES])
    def silver() -> str:
        """Spark: new bronze images -> quality gate -> lake.silver.images + s3://silver."""
        return f"{CORE} -m spark_jobs.silver.normalize_images"

    @task.bash(outlets=[TRAINING_EXAMPLES])
    def gold() -> str:
        """Spark: silver -> gold tables, data set snapshot, Trino views."""
        return f"{CORE} -m spark_jobs.gold.build_gold"

    silver() >> gold()


lake_layers()
