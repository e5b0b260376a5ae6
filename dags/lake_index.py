"""
### Lake index: gold captions -> caption search index

Runs whenever the caption DAG writes model captions to `lake.gold.captions`, or `lake_ingest`
rebuilds gold (new silver images show their human caption until the model captions them), or by
hand. `lake search index` reads `lake.gold.image_captions` through Trino and embeds (all-MiniLM-L6-v2)
only the captions not indexed yet:

- only new images: their vectors join the nearest existing lists;
- a changed caption (a new production model re-captioned the lake), or lists grown unbalanced:
  PCA and k-means are refitted on the stored vectors plus the new ones.

Each change publishes a new version under `s3://gold/search/v<N>/`, then the pointer
`s3://gold/search/current.json`; the API loads it within 30 s. Nothing new: the task is
**skipped** (exit 99). Runs are recorded in `catalog.lake.runs` (job `search.index`).
"""

from __future__ import annotations

from datetime import timedelta

from _lake import CORE, MODEL_CAPTIONS, SEARCH_INDEX, SKIPPED, START, TRAINING_EXAMPLES, policy
from airflow.sdk import dag, task


@dag(
    schedule=MODEL_CAPTIONS | TRAINING_EXAMPLES,
    start_date=START,
    catchup=False,
    max_active_runs=1,  # one writer of the index (the job also takes an advisory lock)
    dagrun_timeout=timedelta(hours=2),  # a run past this fails (red in the grid), freeing the slot
    tags=["lake", "gold", "search"],
    doc_md=__doc__,
    default_args=policy(timeout_hours=1),
)
def lake_index():
    @task.bash(outlets=[SEARCH_INDEX], skip_on_exit_code=SKIPPED)
    def index() -> str:
        """Embed new gold captions, add them (or refit), publish s3://gold/search/v<N>/."""
        return f"{CORE} -m lake.cli search index --idle-exit-code {SKIPPED}"

    index()


lake_index()
