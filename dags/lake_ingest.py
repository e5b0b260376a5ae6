"""
### Lake ingest: Kafka -> bronze -> silver -> quality gate -> gold

Every 10 minutes (`LAKE_INGEST_INTERVAL`), or by hand ("Trigger DAG"):

1. **bronze**: Spark Structured Streaming drains the topic `images.uploaded` (trigger
   *availableNow*; checkpoint on MinIO, rows MERGEd on `event_id`: exactly once). Inline bytes
   land in `s3://bronze/images/<sha256>`; refused events go to `lake.bronze.rejected_events`
   and `images.uploaded.dlq` with their reason. *Skipped* when the topic had no new event.
2. **silver**: normalizes only the images bronze gained since the last successful run
   (Iceberg snapshot watermark in the catalog) behind the `silver_images` Great Expectations
   gate; what fails lands in `lake.bronze.quarantine` with the reason. *Skipped* when bronze
   has nothing new.
3. **gold**: `training_examples` behind the `gold_training_examples` gate (frozen as a catalog
   data set), `ingest_daily`, and the Trino views the dashboards read. *Skipped* when nothing
   changed.
4. **quality_report**: the gates' latest results, per expectation, in this task's log.

Beside them, **record** copies every DAG's finished task runs from Airflow's REST API into the
catalog (`lake dags record`), where `lake.gold.pipeline_runs` and the dashboard count them.

Each step is idempotent: a re-run with nothing new commits nothing, and a skipped step emits no
asset event. Downstream DAGs schedule
on the assets these tasks update: `lake_caption` on silver images, `lake_retrain` and
`lake_index` on training examples. `lake layers status` shows the same from a terminal.
"""

from __future__ import annotations

from datetime import timedelta

from _lake import (
    CORE,
    INGEST_INTERVAL,
    SILVER_IMAGES,
    SKIPPED,
    START,
    TRAINING_EXAMPLES,
    UPLOAD_EVENTS,
    policy,
)
from airflow.sdk import dag, task


@dag(
    schedule=INGEST_INTERVAL,
    start_date=START,
    catchup=False,
    max_active_runs=1,  # one stream per checkpoint, one writer per table
    dagrun_timeout=timedelta(hours=4),  # a run past this fails (red in the grid), freeing the slot
    tags=["lake", "bronze", "silver", "gold"],
    doc_md=__doc__,
    default_args=policy(),
)
def lake_ingest():
    @task.bash(outlets=[UPLOAD_EVENTS], skip_on_exit_code=SKIPPED)
    def bronze() -> str:
        """Spark: images.uploaded -> lake.bronze.upload_events + s3://bronze (availableNow)."""
        return f"{CORE} -m spark_jobs.bronze.ingest_uploads --idle-exit-code {SKIPPED}"

    # Runs after a skipped bronze too: silver may still owe work (a run that failed earlier).
    @task.bash(outlets=[SILVER_IMAGES], skip_on_exit_code=SKIPPED, trigger_rule="none_failed")
    def silver() -> str:
        """Spark: new bronze images -> silver_images gate -> lake.silver.images + s3://silver."""
        return f"{CORE} -m spark_jobs.silver.normalize_images --idle-exit-code {SKIPPED}"

    # Runs after a skipped silver too: gold may still owe work (a new caption of a known image).
    @task.bash(outlets=[TRAINING_EXAMPLES], skip_on_exit_code=SKIPPED, trigger_rule="none_failed")
    def gold() -> str:
        """Spark: silver -> gold_training_examples gate -> gold tables, data set snapshot, Trino views."""
        return f"{CORE} -m spark_jobs.gold.build_gold --idle-exit-code {SKIPPED}"

    @task.bash(trigger_rule="none_failed", execution_timeout=timedelta(minutes=5))
    def quality_report() -> str:
        """The quality gates' latest results (lake quality report)."""
        return f"{CORE} -m lake.cli quality report"

    @task.bash(retries=0, execution_timeout=timedelta(minutes=5))
    def record() -> str:
        """Airflow's finished task runs -> catalog.lake.pipeline_runs (lake.gold.pipeline_runs)."""
        return f"{CORE} -m lake.cli dags record"

    bronze() >> silver() >> gold() >> quality_report()
    record()


lake_ingest()
