"""Silver -> gold captions: batch captioning of silver images with one model version.

Incremental: only images with no caption from that version in `lake.gold.captions`; captions the
API already computed with that version (the catalog's `captions`) are written as they are, not
computed again. Every caption passes the moderation filter (`lake.moderation`) first. The
model is loaded once per Python worker (not per task or row) and `generate` runs on
batches; JPEGs come from s3://silver on the executors. Rows are MERGEd on (image_id,
model_version), so a re-run adds nothing; `lake.gold.image_captions` shows the latest. A silver
image that is missing or does not decode (bit rot, a truncated object) is captioned by no one: it
goes to the quarantine table (stage `gold.caption_images`, reason `missing_object` or
`corrupt_image`, the error) and later runs skip it, while the rest of its batch is captioned; the
store's own errors (MinIO down) still fail the task. The catalog records each run (model
version, counts) in `runs`; captions per image stay in gold (`catalog.lake.images` joins them
through Trino). Marking 30,000 image documents instead took minutes on FerretDB 1.x, whose
multi-document update scans the collection per call.

    python -m spark_jobs.gold.caption_images --model out/compact --model-version shapes-v1
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import pandas as pd
import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = structlog.get_logger("lake.captions")

STAGE = "gold.caption_images"
CAPTION_COLUMNS = ["image_id", "model_version", "caption"]  # what gold.captions keeps (with generated_at, run_id)
# One row per image: a caption, or (caption null) the reason it was quarantined and the error.
RESULT_SCHEMA = "image_id string, model_version string, caption string, reason string, error string"
RESULT_COLUMNS = [*CAPTION_COLUMNS, "reason", "error"]
Fetch = Callable[[str], "bytes | None"]  # silver_key -> JPEG bytes, None when the object is missing


def _captioner(model: str):
    """The worker's captioner, loaded on first use and kept: ``model`` is a saved model directory or a
    registered version (``compact-v3``), which each executor fetches (and checks) itself, so that no path
    of the driver's has to exist on the executors."""
    from lake.clients import per_process
    from lake.registry import model_source
    from models.captioner import load

    return per_process(("captioner", model), lambda: load(model_source(model)))


def load_image(key: str, fetch: Fetch):
    """The silver JPEG at ``key`` as an RGB image; Rejected (missing_object, corrupt_image) when the
    object is gone or does not decode. The store's own errors (MinIO down) are not caught: they fail
    the task, which Spark retries, rather than quarantine images that are fine."""
    import io

    from PIL import Image

    from lake.events import Reason, Rejected

    data = fetch(key)
    if data is None:
        raise Rejected(Reason.MISSING_OBJECT, f"no silver object {key}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")  # decodes here: a truncated or rotten JPEG fails now, not in generate
    except Exception as e:  # whatever Pillow raises for bytes it cannot decode
        raise Rejected(Reason.CORRUPT_IMAGE, f"{type(e).__name__}: {e}"[:500]) from e


def caption_partition(
    batches: Iterator[pd.DataFrame], model_dir: str, model_version: str, fetch: Fetch, batch_size: int = 32
) -> Iterator[pd.DataFrame]:
    """(image_id, silver_key) frames -> RESULT_COLUMNS frames: a caption per image, or for an image
    whose silver object is missing or does not decode, no caption but the reason and error (the
    others of its batch are captioned all the same). A failing store fails the task."""
    from lake.events import Rejected
    from lake.moderation import get_filter, moderate_all

    captioner, check = _captioner(model_dir), get_filter()
    for pdf in batches:
        for start in range(0, len(pdf), batch_size):
            part = pdf.iloc[start : start + batch_size]
            ids, images, refused = [], [], []
            for image_id, key in zip(part.image_id, part.silver_key, strict=True):
                try:
                    images.append(load_image(key, fetch))
                    ids.append(image_id)
                except Rejected as e:
                    log.warning("silver image quarantined", image_id=image_id, reason=e.reason.value, error=e.message)
                    refused.append((image_id, model_version, None, e.reason.value, e.message[:2000]))
            captions = moderate_all(captioner.caption(images, batch_size=batch_size), check)[0] if images else []
            rows = [(i, model_version, c, None, None) for i, c in zip(ids, captions, strict=True)] + refused
            yield pd.DataFrame(rows, columns=RESULT_COLUMNS)


def transform(
    todo: DataFrame, model_dir: str, model_version: str, fetch_factory: Callable[[], Fetch], batch_size: int = 32
) -> DataFrame:
    """Silver rows (image_id, silver_key) -> one RESULT_COLUMNS row each (a caption, or why there is none),
    spread over every core first: the silver table scans as few partitions (30,222 images in 3 small files
    are one Iceberg split), and one partition is one Python worker with one torch thread (Spark sets
    OMP_NUM_THREADS to spark.task.cpus)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from caption_partition(batches, model_dir, model_version, fetch_factory(), batch_size)

    cores = todo.sparkSession.sparkContext.defaultParallelism
    return todo.select("image_id", "silver_key").repartition(cores).mapInPandas(run, RESULT_SCHEMA)


def minio_fetch() -> Fetch:
    from lake.clients import minio_client
    from lake.storage import read_object
    from lake.tables import SILVER_BUCKET

    mc = minio_client()
    return lambda key: read_object(mc, SILVER_BUCKET, key)


def run(
    spark: SparkSession,
    model_dir: str,
    model_version: str,
    *,
    fetch_factory=minio_fetch,
    tables=None,
    batch_size: int = 32,
    catalog=None,
    limit: int | None = None,
) -> dict[str, int]:
    """Caption the silver images that have no caption from ``model_version`` yet (``limit``: at most that many,
    the most recently normalized first: a sample to try a version on). Images this stage quarantined
    before are left out, whatever the version: their silver object is the same for every model."""
    from lake.catalog import Catalog
    from lake.config import get_settings
    from lake.iceberg import merge_changed
    from lake.locks import single_writer
    from lake.quality import quarantine
    from lake.tables import ensure_tables

    t, cat = tables or get_settings().tables, catalog or Catalog.connect()
    with single_writer(f"captions:{t.captions}"):
        ensure_tables(spark, t, "gold")
        with cat.run(STAGE, {"model_dir": model_dir, "model_version": model_version, "limit": limit}) as rec:
            done = (
                spark.table(t.captions)
                .where(F.col("model_version") == model_version)
                .select("image_id")
                .unionByName(spark.table(t.quarantine).where(F.col("stage") == STAGE).select("image_id"))
            )
            silver = spark.table(t.silver)
            todo = silver.join(done, "image_id", "left_anti")
            if limit:
                todo = todo.orderBy(F.col("normalized_at").desc(), "image_id").limit(limit)
            stored = cat.stored_captions(model_version)  # what the API computed with this version
            reused, n_reused = None, 0
            if stored:
                api = spark.createDataFrame(stored, "image_id string, caption string")
                reused = (
                    todo.select("image_id")
                    .join(api, "image_id")
                    .select("image_id", F.lit(model_version).alias("model_version"), "caption")
                )
                todo = todo.join(api.select("image_id"), "image_id", "left_anti")
                n_reused = reused.count()  # before the merge: afterwards they are done
            # Checkpointed: the captions and the quarantine rows both come from it, and the model runs once.
            results = transform(todo, model_dir, model_version, fetch_factory, batch_size).localCheckpoint(eager=True)
            out = results.where(F.col("reason").isNull()).select(*CAPTION_COLUMNS)
            out = (
                (out.unionByName(reused) if reused is not None else out)
                .withColumn("generated_at", F.current_timestamp())
                .withColumn("run_id", F.lit(rec.run_id))
            )
            n = merge_changed(
                spark,
                out,
                t.captions,
                ["image_id", "model_version"],
                compare=["image_id", "model_version"],
                update=False,
            )
            refused = results.where(F.col("reason").isNotNull()).join(
                silver.select("image_id", "first_seen_at", "last_seen_at", "sightings"), "image_id"
            )
            n_bad = quarantine(spark, refused, t.quarantine, STAGE)
            counts = {"captioned": n, "stored_by_api": n_reused, "quarantined": n_bad}
            rec.counts = counts
            rec.outputs = {"captions_table": t.captions, "quarantine_table": t.quarantine}
    log.info("captioning done", model_version=model_version, **counts)
    return counts


def main(model_dir: str, model_version: str, batch_size: int = 32, limit: int | None = None) -> dict[str, int]:
    from lake.spark import spark_session, stop_session

    spark = spark_session("gold-caption-images")
    try:
        return run(spark, model_dir, model_version, batch_size=batch_size, limit=limit)
    finally:
        stop_session(spark)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", required=True, help="a saved model directory (save_pretrained) or a registered version (compact-v3)"
    )
    ap.add_argument("--model-version", required=True, help="recorded with every caption, e.g. shapes-v1")
    ap.add_argument("--batch-size", type=int, default=32, help="images per generate() call")
    ap.add_argument("--limit", type=int, default=0, help="at most this many images, newest first (0: all)")
    a = ap.parse_args()
    from lake.logging import fails_in_one_line

    with fails_in_one_line("batch captioning"):
        print(main(a.model, a.model_version, a.batch_size, a.limit or None))
