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


def test_a_missing_silver_object_fails_the_task(local_spark, tiny_model):
    from spark_jobs.gold.caption_images import transform

    todo = local_spark.createDataFrame([("a" * 64, "images/missing.jpg")], "image_id string, silver_key string")
    with pytest.raises(Exception, match="missing"):
        transform(todo, tiny_model, "tiny-v1", lambda: {}.get).collect()
