"""spark_jobs/gold/caption_images.transform on a local SparkSession with a tiny BLIP-2 checkpoint:
the Spark path gives exactly the captions a direct `generate` gives (no servers)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lake.datasets.shapes import generate
from lake.normalize import normalize_image


def test_spark_captions_match_direct_generate(local_spark, tiny_model):
    from models.captioner import load
    from spark_jobs.gold.caption_images import transform

    jpegs = {f"images/{i:064x}.jpg": normalize_image(s.data).jpeg for i, s in enumerate(generate(10, seed=9))}
    todo = local_spark.createDataFrame([(k.split("/")[1][:64], k) for k in jpegs], "image_id string, silver_key string")
    rows = transform(todo.repartition(3), tiny_model, "tiny-v1", lambda: jpegs.get, batch_size=4).collect()
    got = {r.image_id: r.caption for r in rows}
    assert len(got) == 10 and {r.model_version for r in rows} == {"tiny-v1"}
    direct = load(tiny_model).caption([Image.open(io.BytesIO(jpegs[k])).convert("RGB") for k in jpegs])
    assert [got[k.split("/")[1][:64]] for k in jpegs] == direct


def test_missing_and_corrupt_silver_objects_are_set_aside_not_the_task(local_spark, tiny_model):
    """One corrupt object and one missing in a partition: the other images still get their captions."""
    from spark_jobs.gold.caption_images import transform

    jpegs = {f"images/{i:064x}.jpg": normalize_image(s.data).jpeg for i, s in enumerate(generate(3, seed=4))}
    corrupt, missing = "images/" + "c" * 64 + ".jpg", "images/" + "d" * 64 + ".jpg"
    jpegs[corrupt] = jpegs[next(iter(jpegs))][:300]  # a truncated JPEG
    keys = [*jpegs, missing]
    todo = local_spark.createDataFrame([(k[7:71], k) for k in keys], "image_id string, silver_key string")
    rows = {r.image_id: r for r in transform(todo.coalesce(1), tiny_model, "tiny-v1", lambda: jpegs.get).collect()}
    assert len(rows) == 5
    good = [r for r in rows.values() if r.reason is None]
    assert len(good) == 3 and all(r.caption is not None and r.error is None for r in good)
    assert (rows["c" * 64].reason, rows["d" * 64].reason) == ("corrupt_image", "missing_object")
    assert rows["c" * 64].caption is None and "truncated" in rows["c" * 64].error.lower()


def test_a_failing_store_fails_the_task(local_spark, tiny_model):
    from spark_jobs.gold.caption_images import transform

    def fetch_factory():
        def fetch(key):
            raise ConnectionError("MinIO is down")

        return fetch

    todo = local_spark.createDataFrame([("a" * 64, "images/a.jpg")], "image_id string, silver_key string")
    with pytest.raises(Exception, match="MinIO is down"):
        transform(todo, tiny_model, "tiny-v1", fetch_factory).collect()
