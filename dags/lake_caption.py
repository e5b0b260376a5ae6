"""
### Lake caption: silver images -> model captions

Runs whenever `lake_ingest` updates `lake.silver.images` (data-aware scheduling on the asset),
or by hand, where the `model` parameter picks a registry version (`compact-v3`) instead of
`production` and `limit` a sample of the newest images. Spark captions every silver image that
has no caption from that model yet (the model is loaded once per Spark Python worker, batched
`generate`); captions the API already computed are taken from the catalog, not computed again. Rows are MERGEd into
`lake.gold.captions` on (image_id, model_version): a re-run adds nothing, and
`lake.gold.image_captions` shows the newest caption of each image. On a lake with no
production model yet the task is **skipped**, not failed. `lake model list` shows the registry.
"""

from __future__ import annotations

from datetime import timedelta

from _lake import CORE, MODEL_CAPTIONS, SILVER_IMAGES, SKIPPED, START, policy
from airflow.sdk import Param, dag, task


@dag(
    schedule=SILVER_IMAGES,
    start_date=START,
    catchup=False,
    max_active_runs=1,  # one writer per table
    dagrun_timeout=timedelta(hours=3),  # a run past this fails (red in the grid), freeing the slot
    tags=["lake", "gold", "model"],
    doc_md=__doc__,
    default_args=policy(),
    params={
        "model": Param(
            "production",
            type="string",
            pattern=r"^[A-Za-z0-9._:-]+$",
            description="production, NAME:production, NAME-vN or vN",
        ),
        "limit": Param(0, type="integer", minimum=0, description="at most this many images, newest first"),
    },
)
def lake_caption():
    # Parameters reach the command as environment variables: a trigger's text is never shell code.
    env = {"LAKE_DAG_MODEL": "{{ params.model }}", "LAKE_DAG_LIMIT": "{{ params.limit }}"}

    @task.bash(outlets=[MODEL_CAPTIONS], skip_on_exit_code=SKIPPED, env=env, append_env=True)
    def caption() -> str:
        """Spark: silver images without a caption from the model -> lake.gold.captions."""
        return f'{CORE} -m lake.cli model caption-silver "$LAKE_DAG_MODEL" --limit "$LAKE_DAG_LIMIT"'

    caption()


lake_caption()
