"""
### Stack smoke test

Proves the local stack is wired end to end, from Airflow: a Spark job (run by the
core venv's interpreter, as every Lake task is) writes `lake.demo.hello` as an Iceberg
table on MinIO, then Trino reads the same rows back and a MongoDB document is read
through Trino's `catalog`.

Trigger it from the Airflow UI (http://localhost:8080) or:

    curl -X POST localhost:8080/api/v2/dags/lake_stack_smoke/dagRuns -H "Authorization: Bearer $TOKEN" \\
         -H 'Content-Type: application/json' -d '{"logical_date": null}'
"""

from __future__ import annotations

from _lake import CORE, START
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["lake", "smoke"],
    doc_md=__doc__,
)
def lake_stack_smoke():
    @task.bash
    def spark_writes_iceberg() -> str:
        """Spark writes 100 rows to lake.demo.hello."""
        return f"{CORE} -m spark_jobs.demo.hello_lake --rows 100"

    @task.bash
    def trino_reads_back() -> str:
        """The demo's stack check: Spark write, Trino read, pymongo through Trino (no ingest)."""
        return f"{CORE} -m lake.cli demo --rows 100 --images 0"

    spark_writes_iceberg() >> trino_reads_back()


lake_stack_smoke()
