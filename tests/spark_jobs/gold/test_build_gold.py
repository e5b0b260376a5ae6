"""The gold job against the real Spark, Iceberg, MongoDB-protocol server and Trino, on a lake
of the test's own: silver from 10 Shapes images, then gold, views, data set, re-runs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from lake.clients import minio_client, trino_query
from lake.datasets.shapes import generate
from lake.events import Reason
from lake.storage import put_bronze
from spark_jobs.gold import build_gold as gold
from spark_jobs.silver import normalize_images as silver
from tests.utils.bronze import T0, event_row, scratch_lake, sha
from tests.utils.images import RUN

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def built(spark):
    with scratch_lake(spark, f"t{uuid.uuid4().hex[:10]}") as lake:
        samples = list(generate(10, seed=int(RUN[6:12], 16)))
        for s in samples:
            put_bronze(minio_client(), sha(s.data), s.data, "image/png")
        events = [
            event_row(
                i, sha(s.data), list(s.captions), source="api" if i % 2 else "bulk", at=T0 + timedelta(hours=12 * i)
            )
            for i, s in enumerate(samples)
        ]
        events.append(event_row(99, sha(samples[0].data), [], source="mobile", at=T0 + timedelta(days=9)))
        lake.append(events)
        silver.run(spark, tables=lake.silver, catalog=lake.catalog)
        counts = gold.run(spark, tables=lake.gold, catalog=lake.catalog)
        yield lake, samples, counts


def test_training_examples_one_row_per_caption(spark, built):
    lake, samples, counts = built
    assert counts["training_examples"] == 30 and counts["quarantined"] == 0
    rows = spark.table(lake.gold.training_examples).collect()
    assert len(rows) == 30 and {r.origin for r in rows} == {"human"}
    by_image = {}
    for r in rows:
        by_image.setdefault(r.image_id, []).append((r.caption_index, r.caption))
    s0 = samples[0]
    assert [c for _, c in sorted(by_image[sha(s0.data)])] == list(s0.captions)
    assert {r.split for r in rows} <= {"train", "val", "test"}


def test_ingest_daily(spark, built):
    lake, _, _ = built
    daily = {(str(r.day), r.source): r for r in spark.table(lake.gold.ingest_daily).collect()}
    assert sum(r.uploads for r in daily.values()) == 11
    assert sum(r.new_images for r in daily.values()) == 10  # the mobile re-sighting is not new
    assert daily[(str((T0 + timedelta(days=9)).date()), "mobile")].new_images == 0


def test_dataset_is_frozen_and_time_travel_gives_it_back(spark, built):
    lake, _, _ = built
    ds = lake.catalog.latest_dataset("training_examples")
    assert ds["counts"] and sum(ds["counts"].values()) == 30
    again = spark.read.option("versionAsOf", ds["snapshot_id"]).table(lake.gold.training_examples)
    assert again.count() == 30


def test_views_answer_through_trino(built):
    lake, samples, _ = built
    ns = lake.gold.gold
    rows = trino_query(f"SELECT image_id, caption, human_caption, model_caption FROM {ns}.image_captions")
    assert len(rows) == 10 and all(r[1] == r[2] and r[3] is None for r in rows)
    layers = dict(trino_query(f"SELECT layer, n FROM {ns}.layer_counts"))
    assert layers["silver images"] == 10 and layers["bronze events"] == 11 and layers["gold training examples"] == 30
    # a join of the lake (Iceberg) with the catalog (MongoDB) in one query
    ((n,),) = trino_query(
        f"SELECT count(*) FROM {ns}.image_captions c JOIN catalog.{ns.split('.')[1]}.images i "
        "ON i._id = c.image_id WHERE i.split = c.split"
    )
    assert n == 10


def test_dashboard_views_answer_through_trino(built):
    """The views superset/assets reads, on the scratch lake (no model captions, evaluations yet)."""
    lake, _, _ = built
    ns = lake.gold.gold
    assert sum(r[2] for r in trino_query(f"SELECT * FROM {ns}.image_sizes")) == 10
    assert trino_query(f"SELECT captioner, captioned_images, silver_images, coverage FROM {ns}.caption_coverage") == [
        ["human (gold)", 10, 10, 1.0]
    ]
    assert trino_query(f"SELECT captioner, sum(captions) FROM {ns}.caption_lengths GROUP BY 1") == [
        ["human (gold)", 30]
    ]
    ((captioner, captions, avg_words, vocabulary),) = trino_query(f"SELECT * FROM {ns}.caption_vocabulary")
    assert (captioner, captions) == ("human (gold)", 30) and avg_words > 2 and vocabulary > 5
    # nothing rejected or quarantined: a zero for every reason Lake knows, not an empty chart
    rows = trino_query(f"SELECT stage, reason, n, rate FROM {ns}.quarantine_rate")
    assert sorted(r[1] for r in rows) == sorted({*map(str, Reason), "quality_gate"})
    assert all(r[0] == "none" and r[2] == 0 and r[3] == 0 for r in rows)
    assert trino_query(f"SELECT count(*) FROM {ns}.model_metrics") == [[0]]  # its table is created empty
    columns = [r[0] for r in trino_query(f"DESCRIBE {ns}.model_promotions")]
    assert columns == [c for c, _, _ in gold.PROMOTION_COLUMNS]


def test_freshness_has_each_images_stage_times(built):
    """Upload -> bronze -> silver -> gold from the tables' server times and the catalog's runs; no model caption
    and no index run yet, so no image is captioned or searchable."""
    lake, _, _ = built
    ns = lake.gold.gold
    counts = trino_query(
        f"SELECT count(*), count(silver_at), count(gold_at), count(captioned_at), count(searchable_at) "
        f"FROM {ns}.image_freshness"
    )
    assert counts == [[10, 10, 10, 0, 0]]
    ((late,),) = trino_query(f"SELECT count(*) FROM {ns}.image_freshness WHERE NOT (silver_at <= gold_at)")
    assert late == 0  # the gold run that took an image in ended after silver normalized it
    per_stage: dict[str, int] = {}
    for stage, images, p50, p95 in trino_query(f"SELECT stage, images, p50_s, p95_s FROM {ns}.freshness"):
        per_stage[stage] = per_stage.get(stage, 0) + images
        assert 0 <= p50 <= p95, (stage, p50, p95)
    assert per_stage == {"bronze": 10, "silver": 10, "gold": 10}


def test_pipeline_runs_has_the_catalogs_job_runs(built):
    lake, _, _ = built
    rows = trino_query(
        f"SELECT task, state, duration_s FROM {lake.gold.gold}.pipeline_runs WHERE source = 'job' AND state = ?",
        ["succeeded"],
    )
    assert {"silver.normalize_images", "gold.build"} <= {r[0] for r in rows}
    assert all(r[2] is not None and r[2] >= 0 for r in rows)


def test_rerun_commits_nothing(spark, built):
    lake, _, _ = built
    tables = [lake.gold.training_examples, lake.gold.ingest_daily, lake.silver.silver]
    before = [spark.table(f"{t}.snapshots").count() for t in tables]
    assert silver.run(spark, tables=lake.silver, catalog=lake.catalog)["normalized"] == 0
    assert gold.run(spark, tables=lake.gold, catalog=lake.catalog) == {
        "training_examples": 0,
        "quarantined": 0,
        "ingest_daily": 0,
    }
    assert [spark.table(f"{t}.snapshots").count() for t in tables] == before


def test_caption_job_fills_gold_captions_once(spark, built, tiny_model):
    """Every silver image once; one the API captioned already (stored in the catalog) keeps that caption."""
    from spark_jobs.gold import caption_images

    lake, _, _ = built
    first = sorted(r.image_id for r in spark.table(lake.silver.silver).select("image_id").collect())[0]
    lake.catalog.store_caption(first, "tiny-v1", "a caption the api wrote", None)
    assert caption_images.run(spark, tiny_model, "tiny-v1", tables=lake.gold, catalog=lake.catalog, batch_size=4) == {
        "captioned": 10,
        "stored_by_api": 1,
        "quarantined": 0,
    }
    ns = lake.gold.gold
    rows = trino_query(
        f"SELECT model_version, count(*) FROM {ns}.image_captions WHERE model_caption IS NOT NULL GROUP BY 1"
    )
    assert rows == [["tiny-v1", 10]]
    assert trino_query(f"SELECT caption FROM {ns}.captions WHERE image_id = ?", [first]) == [
        ["a caption the api wrote"]
    ]
    snaps = spark.table(f"{lake.gold.captions}.snapshots").count()
    assert caption_images.run(spark, tiny_model, "tiny-v1", tables=lake.gold, catalog=lake.catalog) == {
        "captioned": 0,
        "stored_by_api": 0,
        "quarantined": 0,
    }
    assert spark.table(f"{lake.gold.captions}.snapshots").count() == snaps
