"""caption_images.run against the real Spark, Iceberg and catalog, on a lake of the test's own: of four silver
images, one object is corrupt and one missing; the two others get captions, the two are quarantined once
and no later run (of any model version) fetches them again. The silver objects come from an injected
fetch, not MinIO."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from lake.datasets.shapes import generate
from lake.normalize import normalize_image
from lake.tables import ensure_tables
from tests.utils.bronze import T0, scratch_lake

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_corrupt_and_missing_silver_images_are_quarantined_once(spark, tiny_model):
    from spark_jobs.gold import caption_images as job

    with scratch_lake(spark, f"t{uuid.uuid4().hex[:10]}") as lake:
        t = lake.gold
        ensure_tables(spark, t, "silver")
        ids = [f"{c * 64}" for c in "abcd"]  # a, b: fine; c: corrupt; d: missing
        jpegs = {f"images/{i}.jpg": normalize_image(s.data).jpeg for i, s in zip(ids[:2], generate(2, seed=3))}
        jpegs[f"images/{ids[2]}.jpg"] = b"\xff\xd8\xff\xe0" + b"\x00" * 200  # a JPEG header, then rot
        schema = spark.table(t.silver).schema
        rows = [
            {
                **dict.fromkeys(schema.fieldNames()),
                "image_id": i,
                "split": "train",
                "first_seen_at": T0,
                "last_seen_at": T0 + timedelta(hours=n),
                "sightings": n + 1,
                "silver_key": f"images/{i}.jpg",
                "normalized_at": T0,
            }
            for n, i in enumerate(ids)
        ]
        spark.createDataFrame(rows, schema).writeTo(t.silver).append()

        def run(version, fetch_factory):
            return job.run(spark, tiny_model, version, fetch_factory=fetch_factory, tables=t, catalog=lake.catalog)

        assert run("tiny-v1", lambda: jpegs.get) == {"captioned": 2, "stored_by_api": 0, "quarantined": 2}
        captions = spark.table(t.captions).collect()
        assert sorted(r.image_id for r in captions) == ids[:2] and all(r.caption for r in captions)
        bad = {r.image_id: r for r in spark.table(t.quarantine).collect()}
        assert set(bad) == set(ids[2:]) and {r.stage for r in bad.values()} == {job.STAGE}
        assert (bad[ids[2]].reason, bad[ids[3]].reason) == ("corrupt_image", "missing_object")
        assert bad[ids[2]].error and bad[ids[3]].error == f"no silver object images/{ids[3]}.jpg"
        d = bad[ids[3]]  # what silver knows of the image comes with it
        assert d.sightings == 4 and d.last_seen_at - d.first_seen_at == timedelta(hours=3)

        def guarded():  # a quarantined image fetched again would fail the run
            def fetch(key):
                if key in (f"images/{ids[2]}.jpg", f"images/{ids[3]}.jpg"):
                    raise AssertionError(f"{key} fetched again")
                return jpegs.get(key)

            return fetch

        snaps = [spark.table(f"{name}.snapshots").count() for name in (t.captions, t.quarantine)]
        assert run("tiny-v1", guarded) == {"captioned": 0, "stored_by_api": 0, "quarantined": 0}
        assert [spark.table(f"{name}.snapshots").count() for name in (t.captions, t.quarantine)] == snaps
        assert run("tiny-v2", guarded) == {"captioned": 2, "stored_by_api": 0, "quarantined": 0}
        assert spark.table(t.captions).groupBy("model_version").count().count() == 2
        assert spark.table(t.quarantine).count() == 2
