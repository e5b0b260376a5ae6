"""Silver -> gold: the tables training and the dashboards read, and the Trino views over them.

- `lake.gold.training_examples`: one row per (image, human caption), with the image's split
  and silver location; gated by the `gold_training_examples` suite (failing rows go to
  `lake.bronze.quarantine`); each run that changes it freezes a data set in the catalog
  (`datasets`: training_examples@<snapshot id>, readable again by Iceberg time travel).
- `lake.gold.ingest_daily`: uploads, distinct and new images, bytes per day and source.
- `lake.gold.captions`: model captions (written by the captioning job; created here empty).
- Views (Trino SQL, created through Trino): `image_captions` (each image with its latest
  model caption and first human caption), `layer_counts`, `quarantine_by_reason`, and those
  the Superset dashboards read (superset/assets): `quarantine_rate`, `caption_coverage`,
  `image_sizes`, `model_metrics`, `model_promotions`, `caption_lengths`, `caption_vocabulary`.

Rows are MERGEd only where they differ, so a re-run with nothing new commits nothing.

    python -m spark_jobs.gold.build_gold
"""

from __future__ import annotations

import argparse

import structlog
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lake.tables import Tables, silver_uri_sql

log = structlog.get_logger("lake.gold")

STAGE = "gold.build"
EXAMPLES_STAGE = "gold.training_examples"  # the quarantine stage of the training-examples gate


def training_examples(silver: DataFrame) -> DataFrame:
    """One row per human caption of each silver image (position kept as caption_index)."""
    return silver.select(
        "image_id",
        F.posexplode("captions").alias("caption_index", "caption"),
        "split",
        "silver_key",
        "width",
        "height",
        "first_seen_at",
    ).select(
        "image_id",
        "caption",
        "caption_index",
        "split",
        F.lit("human").alias("origin"),
        "silver_key",
        "width",
        "height",
        "first_seen_at",
    )


def ingest_daily(events: DataFrame) -> DataFrame:
    """Per UTC day of the lake's clock (ingested_at) and source: upload events, distinct images, images
    seen for the first time anywhere (their first event, ties broken by event id), and bytes."""
    first = F.row_number().over(Window.partitionBy("image_id").orderBy("ingested_at", "event_id"))
    marked = events.withColumn("is_first", first == 1).withColumn("day", F.to_date("ingested_at"))
    return marked.groupBy("day", "source").agg(
        F.count("*").alias("uploads"),
        F.count_distinct("image_id").alias("images"),
        F.sum(F.col("is_first").cast("long")).alias("new_images"),
        F.sum("size_bytes").alias("bytes"),
    )


# model_promotions: (column, type, expression over catalog.<db>.promotions p). The same
# columns, all NULL, stand in while the catalog has no promotions (or not all their fields),
# so the view, and the dashboard chart on it, exist from the first gold run.
PROMOTION_COLUMNS = [
    ("at", "timestamp(6)", "p.at"),
    ("kind", "varchar", "p.kind"),
    ("model", "varchar", "p.model"),
    ("candidate", "varchar", "p.candidate"),
    ("production", "varchar", "p.production"),
    ("decision", "varchar", "p.decision"),
    ("promoted", "boolean", "p.promote"),
    ("metric", "varchar", "p.metric"),
    ("production_score", "double", "round(element_at(filter(p.\"table\", x -> x.slice = 'overall'), 1).production, 3)"),
    ("candidate_score", "double", "round(element_at(filter(p.\"table\", x -> x.slice = 'overall'), 1).candidate, 3)"),
    ("change", "double", "round(element_at(filter(p.\"table\", x -> x.slice = 'overall'), 1).change, 4)"),
    ("dataset", "varchar", "p.dataset"),
    ("reasons", "varchar", "array_join(p.reasons, '; ')"),
    ("run_id", "varchar", "p._id"),
]
PROMOTION_FIELDS = {
    "_id",
    "at",
    "kind",
    "model",
    "candidate",
    "production",
    "decision",
    "promote",
    "metric",
    "table",
    "dataset",
    "reasons",
}


# Freshness: the stages an image passes, each with the server time it got there (NULL: not yet).
FRESHNESS_STAGES = ("bronze", "silver", "gold", "captioned", "searchable")


def _utc(col: str) -> str:
    """An Iceberg timestamp (with time zone) as a UTC timestamp(6), comparable with the catalog's times."""
    return f"CAST({col} AT TIME ZONE 'UTC' AS timestamp(6))"


def _first_run_after(job: str, since: str, runs: str) -> str:
    """The end of the first succeeded run of ``job`` that started at or after ``since`` (a run reads what is there
    when it starts: the earliest run whose output holds what arrived at ``since``)."""
    return (
        f"(SELECT min(CAST(r.finished_at AS timestamp(6))) FROM {runs} r WHERE r.job = '{job}' "
        f"AND r.status = 'succeeded' AND CAST(r.started_at AS timestamp(6)) >= {since})"
    )


def _words(col: str) -> str:
    return f"regexp_extract_all(lower({col}), '[a-z0-9]+')"


def views(t: Tables, *, promotions: bool = True) -> dict[str, str]:
    """name -> Trino SELECT of each gold view, in creation order (later ones may read earlier ones);
    ``promotions=False``: `model_promotions` as an empty stand-in (see PROMOTION_COLUMNS)."""
    from lake.events import Reason
    from lake.search_index import JOB as INDEX_JOB

    q = "'bronze.ingest_uploads'"  # the bronze job's stage, for rejected events
    waited = "CAST(date_diff('millisecond', f.uploaded_at, st.at) AS double) / 1000"
    known_reasons = ", ".join(f"'{r}'" for r in sorted({*map(str, Reason), "quality_gate"}))
    if promotions:
        promoted = ", ".join(f"CAST({e} AS {ty}) AS {c}" for c, ty, e in PROMOTION_COLUMNS)
        promoted += f" FROM {t.promotions} p"
    else:
        promoted = ", ".join(f"CAST(NULL AS {ty}) AS {c}" for c, ty, _ in PROMOTION_COLUMNS) + " WHERE false"
    return {
        "image_captions": f"""
            SELECT s.image_id, s.split, s.width, s.height, s.src_format, s.sightings, s.first_seen_at,
                   s.last_seen_at, element_at(s.captions, 1) AS human_caption, m.caption AS model_caption,
                   m.model_version, m.generated_at AS captioned_at,
                   coalesce(m.caption, element_at(s.captions, 1)) AS caption,
                   {silver_uri_sql("s.silver_key")} AS silver_uri
            FROM {t.silver} s
            LEFT JOIN (SELECT image_id, caption, model_version, generated_at,
                              row_number() OVER (PARTITION BY image_id ORDER BY generated_at DESC) AS rn
                       FROM {t.captions}) m
              ON m.image_id = s.image_id AND m.rn = 1""",
        "layer_counts": f"""
            SELECT 'bronze events' AS layer, count(*) AS n FROM {t.events}
            UNION ALL SELECT 'bronze images', count(DISTINCT image_id) FROM {t.events}
            UNION ALL SELECT 'rejected events', count(*) FROM {t.rejected}
            UNION ALL SELECT 'silver images', count(*) FROM {t.silver}
            UNION ALL SELECT 'quarantined images', count(*) FROM {t.quarantine}
            UNION ALL SELECT 'gold training examples', count(*) FROM {t.training_examples}
            UNION ALL SELECT 'gold model captions', count(*) FROM {t.captions}""",
        "quarantine_by_reason": f"""
            SELECT stage, reason, count(*) AS n FROM {t.quarantine} GROUP BY stage, reason
            UNION ALL
            SELECT {q}, reason, count(*) FROM {t.rejected} GROUP BY reason""",
        # Rejected events out of all upload messages read; quarantined images out of the
        # distinct images bronze holds.
        # Every reason Lake knows has a row: one seen nowhere yet shows 0 (stage `none`), so a clean
        # lake shows zeros, not an empty chart.
        "quarantine_rate": f"""
            WITH totals AS (SELECT (SELECT count(*) FROM {t.events}) + (SELECT count(*) FROM {t.rejected}) AS messages,
                                   (SELECT count(DISTINCT image_id) FROM {t.events}) AS images),
            known(reason) AS (VALUES {known_reasons})
            SELECT r.stage, r.reason, r.n, IF(r.stage = {q}, messages, images) AS out_of,
                   r.n / CAST(nullif(IF(r.stage = {q}, messages, images), 0) AS double) AS rate
            FROM {t.view("quarantine_by_reason")} r CROSS JOIN totals
            UNION ALL
            SELECT 'none', k.reason, 0, images, 0.0 FROM known k CROSS JOIN totals
            WHERE k.reason NOT IN (SELECT reason FROM {t.view("quarantine_by_reason")})""",
        # Share of silver images with a caption: per model version, by any model, and human
        # (the gold training examples).
        "caption_coverage": f"""
            WITH captioned AS (
                SELECT model_version AS captioner, image_id FROM {t.captions}
                UNION ALL SELECT 'any model', image_id FROM {t.captions}
                UNION ALL SELECT 'human (gold)', image_id FROM {t.training_examples}),
            total AS (SELECT count(*) AS images FROM {t.silver})
            SELECT c.captioner, count(DISTINCT c.image_id) AS captioned_images, max(total.images) AS silver_images,
                   count(DISTINCT c.image_id) / CAST(max(total.images) AS double) AS coverage
            FROM captioned c JOIN {t.silver} s ON s.image_id = c.image_id CROSS JOIN total
            GROUP BY c.captioner""",
        # Silver images by source format and longest source side, rounded up to a power of two.
        "image_sizes": f"""
            SELECT src_format,
                   CAST(power(2, ceiling(log2(greatest(coalesce(src_width, 1), coalesce(src_height, 1), 1))))
                        AS bigint) AS longest_side_px,
                   count(*) AS images, sum(bytes_out) AS silver_bytes
            FROM {t.silver} GROUP BY 1, 2""",
        "model_metrics": f"""
            SELECT model_name, model_version, dataset, split, slice, metric, value, n,
                   CAST(evaluated_at AT TIME ZONE 'UTC' AS timestamp(6)) AS evaluated_at, run_id
            FROM {t.model_evaluations}""",
        "model_promotions": f"SELECT {promoted}",
        # Per image, the server time of each stage: upload (the API's Kafka record time), bronze (ingested_at),
        # silver (normalized_at), gold (the gold run that took it in, for images with a human caption),
        # captioned (its first model caption), searchable (the index run that took the caption in).
        "image_freshness": f"""
            WITH up AS (SELECT image_id, min({_utc("kafka_timestamp")}) AS uploaded_at,
                               min({_utc("ingested_at")}) AS bronze_at
                        FROM {t.events} GROUP BY image_id),
            cap AS (SELECT image_id, min({_utc("generated_at")}) AS captioned_at FROM {t.captions} GROUP BY image_id),
            s AS (SELECT up.image_id, up.uploaded_at, up.bronze_at, {_utc("si.normalized_at")} AS silver_at,
                         ex.image_id IS NOT NULL AS human, cap.captioned_at
                  FROM up LEFT JOIN {t.silver} si ON si.image_id = up.image_id
                  LEFT JOIN (SELECT DISTINCT image_id FROM {t.training_examples}) ex ON ex.image_id = up.image_id
                  LEFT JOIN cap ON cap.image_id = up.image_id)
            SELECT image_id, uploaded_at, bronze_at, silver_at,
                   IF(human, {_first_run_after(STAGE, "silver_at", t.runs)}) AS gold_at, captioned_at,
                   {_first_run_after(INDEX_JOB, "captioned_at", t.runs)} AS searchable_at
            FROM s""",
        # p50/p95 seconds from upload to each stage, per hour of upload: what `lake.gold.freshness` charts.
        # seconds as double (a bigint / 1000.0 is a decimal, and approx_percentile of a decimal a real)
        "freshness": f"""
            SELECT date_trunc('hour', f.uploaded_at) AS hour, st.stage, count(st.at) AS images,
                   approx_percentile({waited}, 0.5) AS p50_s, approx_percentile({waited}, 0.95) AS p95_s,
                   max({waited}) AS max_s
            FROM {t.view("image_freshness")} f
            CROSS JOIN UNNEST(ARRAY[{", ".join(f"'{x}'" for x in FRESHNESS_STAGES)}],
                              ARRAY[{", ".join(f"f.{x}_at" for x in FRESHNESS_STAGES)}]) AS st(stage, at)
            WHERE st.at IS NOT NULL AND f.uploaded_at IS NOT NULL
            GROUP BY 1, 2""",
        # Every run: Airflow's task runs (one row per try, kept by `lake dags record`) and the catalog's job runs
        # (what each Lake job recorded, whoever started it).
        "pipeline_runs": f"""
            SELECT 'airflow' AS source, dag_id AS dag, task_id AS task, state, duration_s,
                   CAST(started_at AS timestamp(6)) AS started_at, CAST(finished_at AS timestamp(6)) AS finished_at,
                   run_id, try_number
            FROM {t.task_runs}
            UNION ALL
            SELECT 'job', NULL, job, status, duration_s, CAST(started_at AS timestamp(6)),
                   CAST(finished_at AS timestamp(6)), _id, 1
            FROM {t.runs}""",
        # Words: runs of [a-z0-9] in the lower-cased caption; human = the gold training examples.
        "caption_lengths": f"""
            SELECT captioner, cardinality(words) AS words, count(*) AS captions
            FROM (SELECT model_version AS captioner, {_words("caption")} AS words FROM {t.captions}
                  UNION ALL SELECT 'human (gold)', {_words("caption")} FROM {t.training_examples})
            GROUP BY 1, 2""",
        "caption_vocabulary": f"""
            WITH c AS (SELECT model_version AS captioner, {_words("caption")} AS words FROM {t.captions}
                       UNION ALL SELECT 'human (gold)', {_words("caption")} FROM {t.training_examples}),
            vocab AS (SELECT captioner, count(DISTINCT word) AS vocabulary
                      FROM c CROSS JOIN UNNEST(words) AS w(word) GROUP BY 1)
            SELECT c.captioner, count(*) AS captions, avg(cardinality(c.words)) AS avg_words,
                   coalesce(max(v.vocabulary), 0) AS vocabulary
            FROM c LEFT JOIN vocab v ON v.captioner = c.captioner GROUP BY 1""",
    }


def create_views(t: Tables | None = None) -> list[str]:
    """(Re)create the gold views through Trino (the engine users query them with); cheap, so
    also run on its own (`python -c "from spark_jobs.gold.build_gold import create_views; create_views()"`)."""
    from lake.catalog import Catalog
    from lake.clients import mongo_client, trino_query
    from lake.config import get_settings
    from lake.training import ensure_evaluations_table

    t = t or get_settings().tables
    ensure_evaluations_table(t.model_evaluations)  # model_metrics reads it before any evaluation
    # the catalog's collections the views read (runs, pipeline_runs) exist, in the database t.catalog names
    Catalog(mongo_client()[t.catalog.split(".", 1)[1]]).ensure_indexes()
    catalog, db = t.catalog.split(".")
    fields = {
        r[0]
        for r in trino_query(
            f"SELECT column_name FROM {catalog}.information_schema.columns "
            "WHERE table_schema = ? AND table_name = 'promotions'",
            [db],
        )
    }
    made = views(t, promotions=PROMOTION_FIELDS <= fields)
    for name, sql in made.items():
        trino_query(f"CREATE OR REPLACE VIEW {t.view(name)} AS {sql}")
    return list(made)


def run(spark: SparkSession, *, tables: Tables | None = None, catalog=None, with_views: bool = True) -> dict[str, int]:
    """Bring gold up to date with silver and bronze; one run per gold namespace at a time."""
    from lake.config import get_settings
    from lake.locks import single_writer

    tables = tables or get_settings().tables
    with single_writer(f"gold:{tables.gold}"):
        return _run(spark, tables=tables, catalog=catalog, with_views=with_views)


def _run(spark: SparkSession, *, tables: Tables, catalog, with_views: bool) -> dict[str, int]:
    from lake import quality as gate
    from lake.catalog import Catalog
    from lake.iceberg import current_snapshot, merge_changed
    from lake.tables import ensure_tables

    t, cat = tables, catalog or Catalog.connect()
    ensure_tables(spark, t, "gold")
    counts = {"training_examples": 0, "quarantined": 0, "ingest_daily": 0}
    with cat.run(
        STAGE,
        {
            "silver_table": t.silver,
            "silver_snapshot": current_snapshot(spark, t.silver),
            "bronze_snapshot": current_snapshot(spark, t.events),
        },
    ) as rec:
        rec.counts = counts
        examples = training_examples(spark.table(t.silver))
        known = spark.table(t.training_examples).select("image_id", "caption")
        refused = spark.table(t.quarantine).where(F.col("stage") == EXAMPLES_STAGE).select("image_id")
        new = (
            examples.join(known, ["image_id", "caption"], "left_anti")
            .join(refused, "image_id", "left_anti")
            .localCheckpoint(eager=True)
        )
        if new.count():
            verdict = gate.validate(new, "gold_training_examples")
            gate.record(verdict, rec.run_id, catalog=cat)
            bad_ids = sorted({k.split("|", 1)[0] for k in verdict.failed})
            if bad_ids:
                reasons = {
                    i: "; ".join(sorted({e for k, v in verdict.failed.items() if k.startswith(i) for e in v}))
                    for i in bad_ids
                }
                why = F.udf(lambda i: reasons.get(i, "")[:2000], "string")
                refused_rows = (
                    spark.table(t.silver)
                    .where(F.col("image_id").isin(bad_ids))
                    .withColumn("reason", F.lit("quality_gate"))
                    .withColumn("error", why("image_id"))
                )
                counts["quarantined"] = gate.quarantine(spark, refused_rows, t.quarantine, EXAMPLES_STAGE)
            good = new.where(~F.col("image_id").isin(bad_ids))
            counts["training_examples"] = merge_changed(
                spark, good, t.training_examples, ["image_id", "caption"], compare=["image_id", "caption"], update=False
            )
        counts["ingest_daily"] = merge_changed(
            spark, ingest_daily(spark.table(t.events)), t.ingest_daily, ["day", "source"]
        )
        snapshot = current_snapshot(spark, t.training_examples)
        rec.outputs = {"training_examples_snapshot": snapshot}
        if counts["training_examples"] and snapshot is not None:
            per_split = {
                r.split: r["count"] for r in spark.table(t.training_examples).groupBy("split").count().collect()
            }
            rec.outputs["dataset"] = cat.record_dataset(
                "training_examples", t.training_examples, snapshot, per_split, rec.run_id
            )
        if with_views:
            rec.outputs["views"] = create_views(t)
    log.info("gold build done", **counts)
    return counts


def main() -> dict[str, int]:
    from lake.spark import spark_session, stop_session

    spark = spark_session("gold-build")
    try:
        return run(spark)
    finally:
        stop_session(spark)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--idle-exit-code",
        type=int,
        default=0,
        help="exit code when gold did not change (Airflow's lake_ingest: 99 = skipped)",
    )
    a = ap.parse_args()
    from lake.logging import fails_in_one_line

    with fails_in_one_line("gold build"):
        done = main()
    print(done)
    if not any(done.values()):
        raise SystemExit(a.idle_exit_code)
