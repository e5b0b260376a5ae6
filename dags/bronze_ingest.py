"""
### Bronze ingest

Drains the Kafka topic `images.uploaded` into bronze with Spark Structured Streaming
(trigger *availableNow*): inline bytes land in `s3://bronze/images/<sha256>`, every good
event becomes one row of `lake.bronze.upload_events` (exactly once: the checkpoint is on
MinIO and rows are MERGEd on `event_id`), and refused events go to
`lake.bronze.rejected_events` and `images.uploaded.dlq` with their reason.

Updates the asset `lake.bronze.upload_events`, which downstream DAGs schedule on.
For continuous landing instead, run `lake stream --continuous`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

UPLOAD_EVENTS = Asset("lake://bronze/upload_events")
CORE = "cd \"$LAKE_REPO\" && \"$LAKE_CORE_PYTHON\""


@dag(
    schedule=timedelta(minutes=10),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one stream per checkpoint
    tags=["lake", "bronze"],
    doc_md=__doc__,
)
def bronze_ingest():
    @task.bash(outlets=[UPLOAD_EVENTS], retries=2, retry_delay=timedelta(minutes=1))
    def land_upload_events() -> str:
        """Spark: images.uploaded -> lake.bronze.upload_events (availableNow)."""
        return f"{CORE} -m spark_jobs.bronze.ingest_uploads"

    land_upload_events()


bronze_ingest()
