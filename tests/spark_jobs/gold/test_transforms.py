"""spark_jobs/gold/build_gold's pure transforms on a local SparkSession (no servers): one training
example per human caption, and the per-day ingest figures.

    .lake/venvs/core/bin/python -m pytest -q tests/spark_jobs/gold/test_transforms.py
"""

from __future__ import annotations

from datetime import date, datetime

from lake.tables import TrainingExample
from spark_jobs.gold.build_gold import ingest_daily, training_examples

T0 = datetime(2026, 1, 2, 3, 4, 5)
SILVER = (
    "image_id string, captions array<string>, split string, silver_key string, width int, height int, "
    "first_seen_at timestamp"
)


def test_training_examples_one_row_per_caption_in_order(local_spark):
    silver = local_spark.createDataFrame(
        [
            ("a" * 64, ["a red circle", "a red circle on the left"], "train", "images/a.jpg", 128, 128, T0),
            ("b" * 64, [], "test", "images/b.jpg", 64, 32, T0),
        ],
        SILVER,
    )
    rows = training_examples(silver).orderBy("image_id", "caption_index").collect()
    assert [(r.image_id[0], r.caption_index, r.caption) for r in rows] == [
        ("a", 0, "a red circle"),
        ("a", 1, "a red circle on the left"),
    ]
    assert set(rows[0].asDict()) == set(TrainingExample.model_fields)  # the columns of gold.training_examples
    assert {r.origin for r in rows} == {"human"} and rows[0].split == "train" and rows[0].width == 128
    TrainingExample(**rows[0].asDict())  # the shared record reads a row as it is


def test_ingest_daily_counts_uploads_images_and_first_sightings(local_spark):
    events = local_spark.createDataFrame(
        [
            ("e1", "i1", "api", datetime(2026, 1, 1, 10), 100),
            ("e2", "i1", "api", datetime(2026, 1, 1, 11), 100),  # the same image again, same day
            ("e3", "i2", "mobile", datetime(2026, 1, 1, 12), 50),
            ("e4", "i1", "mobile", datetime(2026, 1, 2, 9), 100),  # seen before: not new
            ("e5", "i3", "api", datetime(2026, 1, 2, 9), 10),
        ],
        "event_id string, image_id string, source string, ingested_at timestamp, size_bytes long",
    )
    got = {(r.day, r.source): (r.uploads, r.images, r.new_images, r.bytes) for r in ingest_daily(events).collect()}
    assert got == {
        (date(2026, 1, 1), "api"): (2, 1, 1, 200),
        (date(2026, 1, 1), "mobile"): (1, 1, 1, 50),
        (date(2026, 1, 2), "mobile"): (1, 1, 0, 100),
        (date(2026, 1, 2), "api"): (1, 1, 1, 10),
    }
