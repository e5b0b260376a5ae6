"""Bronze -> silver: one normalized JPEG and one `lake.silver.images` row per new image.

Incremental by Iceberg snapshot: a run reads only the bronze events appended since the
bronze snapshot the last successful run reached (its watermark, kept in the catalog's
`runs`), groups them per image (sightings, sources, first/last seen, event ids, every
event's cleaned captions), and then
- images silver already has get their sightings, sources and captions merged in (no
  re-decoding; set unions on event ids, so a repeated run changes nothing);
- new images have their bytes fetched from s3://bronze/images/<image_id> on the executors
  and normalized (lake.normalize: decode, EXIF-orient, RGB, longest side <= 384, JPEG,
  phash, split), pass the `silver_images` quality gate (lake.quality, Great
  Expectations), and land as s3://silver/images/<image_id>.jpg (deterministic bytes) plus
  a row MERGEd on image_id. Images that fail decoding or the gate go to
  `lake.bronze.quarantine` with the reason; the catalog (MongoDB `images`, `runs`,
  `quality`) records every image and the run.
A run with nothing new writes nothing: no Iceberg snapshot, no object.

    python -m spark_jobs.silver.normalize_images                 # process what is new, stop
    python -m spark_jobs.silver.normalize_images --max-side 512
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import pandas as pd
import structlog
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lake.tables import Tables, silver_key

log = structlog.get_logger("lake.silver")

STAGE = "silver.normalize_images"

Fetch = Callable[[str], "bytes | None"]  # image_id -> the bronze bytes, None when the object is missing
FetchFactory = Callable[[], Fetch]  # called once per partition on the executor (clients are not picklable)
Put = Callable[[str, bytes, str, str], None]  # (silver_key, jpeg, image_id, sha256_out) -> stored
PutFactory = Callable[[], Put]

RESULT_COLUMNS = [
    ("image_id", "string"),
    ("ok", "boolean"),
    ("reason", "string"),
    ("error", "string"),
    ("width", "int"),
    ("height", "int"),
    ("src_format", "string"),
    ("src_width", "int"),
    ("src_height", "int"),
    ("bytes_out", "long"),
    ("phash", "string"),
    ("sha256_out", "string"),
    ("split", "string"),
    ("captions", "array<string>"),
    ("first_seen_at", "timestamp"),
    ("last_seen_at", "timestamp"),
    ("sightings", "long"),
    ("sources", "array<string>"),
    ("event_ids", "array<string>"),
    ("silver_key", "string"),
    ("jpeg", "binary"),
]
RESULT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS)
ROW_COLUMNS = [c for c in RESULT_COLUMNS if c[0] != "jpeg"]  # what the tables keep
ROW_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in ROW_COLUMNS)


def group_events(events: DataFrame) -> DataFrame:
    """Bronze upload events -> one row per image_id: sightings, sources, first/last seen and
    every event's captions, oldest event first (ordered, so the result is deterministic)."""
    captions = F.coalesce(F.col("captions"), F.array().cast("array<string>"))  # one null would null flatten()
    ordered = F.array_sort(F.collect_list(F.struct(F.col("ingested_at"), F.col("event_id"), captions.alias("c"))))
    return events.groupBy("image_id").agg(
        F.count_distinct("event_id").alias("sightings"),
        F.min("ingested_at").alias("first_seen_at"),
        F.max("ingested_at").alias("last_seen_at"),
        F.array_sort(F.collect_set("source")).alias("sources"),
        F.array_sort(F.collect_set("event_id")).alias("event_ids"),
        F.flatten(F.transform(ordered, lambda e: e["c"])).alias("raw_captions"),
    )


def merge_captions(raw) -> list[str]:
    """Clean every caption; drop empty ones and repeats, keeping first-seen order."""
    from lake.normalize import clean_caption

    seen: dict[str, None] = {}
    for text in [] if raw is None else raw:
        c = clean_caption(text)
        if c is not None:
            seen.setdefault(c)
    return list(seen)


def normalize_row(r, fetch: Fetch, *, max_side: int, max_pixels: int, quality: int) -> dict:
    """One grouped row -> one RESULT_COLUMNS row: metadata always, image fields when ``ok``."""
    import hashlib

    from lake.events import Reason, Rejected
    from lake.normalize import normalize_image, split_of

    row = dict.fromkeys(name for name, _ in RESULT_COLUMNS)  # every key: Arrow refuses NaN in array columns
    row.update(
        image_id=r.image_id,
        split=split_of(r.image_id),
        captions=merge_captions(r.raw_captions),
        first_seen_at=r.first_seen_at,
        last_seen_at=r.last_seen_at,
        sightings=r.sightings,
        sources=list(r.sources),
        event_ids=list(r.event_ids),
        silver_key=silver_key(r.image_id),
    )
    try:
        data = fetch(r.image_id)  # the store's errors (MinIO down) are the system's: they fail the task
        if data is None:
            raise Rejected(Reason.MISSING_OBJECT, f"no bronze object for {r.image_id}")
        if hashlib.sha256(data).hexdigest() != r.image_id:  # bit rot or a bad write since the front door
            raise Rejected(Reason.CHECKSUM_MISMATCH, "bronze bytes do not hash to image_id")
        try:
            n = normalize_image(data, max_side=max_side, max_pixels=max_pixels, quality=quality)
        except Rejected:
            raise
        except Exception as e:  # a decoder case no check foresaw: quarantined, the job goes on
            raise Rejected(Reason.UNPROCESSABLE, f"{type(e).__name__}: {e}"[:500]) from e
    except Rejected as e:
        row.update(ok=False, reason=e.reason.value, error=e.message[:2000])
        return row
    row.update(
        ok=True,
        width=n.width,
        height=n.height,
        src_format=n.src_format,
        src_width=n.src_width,
        src_height=n.src_height,
        bytes_out=len(n.jpeg),
        phash=n.phash,
        sha256_out=n.sha256_out,
        jpeg=n.jpeg,
    )
    return row


def normalize_partition(
    batches: Iterator[pd.DataFrame],
    fetch: Fetch,
    *,
    max_side: int = 384,
    max_pixels: int = 40_000_000,
    quality: int = 90,
    threads: int = 4,
) -> Iterator[pd.DataFrame]:
    """Grouped rows (image_id, sightings, first_seen_at, last_seen_at, sources, raw_captions)
    -> RESULT_COLUMNS frames. What an image does (Rejected, or any error decoding it) becomes a
    failed row; the store's errors (MinIO down) fail the task, which Spark retries."""
    from concurrent.futures import ThreadPoolExecutor

    names = [name for name, _ in RESULT_COLUMNS]

    def one(r) -> dict:
        return normalize_row(r, fetch, max_side=max_side, max_pixels=max_pixels, quality=quality)

    # Fetching waits on the network and Pillow drops the GIL while decoding, resizing and encoding.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for pdf in batches:
            yield pd.DataFrame(list(pool.map(one, pdf.itertuples(index=False))), columns=names)


def transform(
    grouped: DataFrame,
    fetch_factory: FetchFactory,
    *,
    max_side: int = 384,
    max_pixels: int = 40_000_000,
    quality: int = 90,
    partitions: int | None = None,
) -> DataFrame:
    """Grouped rows (group_events) -> one RESULT_COLUMNS row per image_id (with the JPEG in `jpeg`).

    ``fetch_factory()`` runs once per partition on the executor and returns fetch(image_id).
    ``partitions`` spreads the images over that many tasks (a small grouped frame would
    otherwise be coalesced into one task by adaptive execution).
    """
    if partitions:
        grouped = grouped.repartition(partitions, "image_id")

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from normalize_partition(
            batches, fetch_factory(), max_side=max_side, max_pixels=max_pixels, quality=quality
        )

    return grouped.mapInPandas(run, RESULT_SCHEMA)


def store(rows: DataFrame, put_factory: PutFactory) -> DataFrame:
    """Put each good row's JPEG at its silver_key (``put_factory()`` runs once per partition on
    the executor); the rows go on without the `jpeg` column."""
    names = [name for name, _ in ROW_COLUMNS]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        put = put_factory()
        for pdf in batches:
            for r in pdf.itertuples(index=False):
                if r.ok:
                    put(r.silver_key, r.jpeg, r.image_id, r.sha256_out)
            yield pdf[names]

    return rows.mapInPandas(run, ROW_SCHEMA)


# ---- edges: MinIO and Iceberg ------------------------------------------------------------------------------------


def minio_fetch() -> Fetch:
    """A FetchFactory over s3://bronze/images/<image_id> (one pooled client per executor process)."""
    from lake.clients import minio_client
    from lake.storage import read_object
    from lake.tables import BRONZE_BUCKET, bronze_key

    mc = minio_client()

    def fetch(image_id: str) -> bytes | None:
        return read_object(mc, BRONZE_BUCKET, bronze_key(image_id))

    return fetch


def minio_put() -> Put:
    """A PutFactory writing to s3://silver/<key>."""
    import io

    from lake.clients import minio_client
    from lake.tables import SILVER_BUCKET

    mc = minio_client()

    def put(key: str, jpeg: bytes, image_id: str, sha256: str) -> None:
        mc.put_object(
            SILVER_BUCKET,
            key,
            io.BytesIO(jpeg),
            len(jpeg),
            content_type="image/jpeg",
            metadata={"x-amz-meta-lake-image-id": image_id, "x-amz-meta-lake-sha256": sha256},
        )

    return put


def resighted(grouped: DataFrame, silver: DataFrame) -> DataFrame:
    """Silver rows of already-normalized images updated with newly seen events (set unions on
    event ids, so merging the same events twice gives the same row); unchanged rows are dropped."""
    clean = F.udf(lambda raw: merge_captions(raw), "array<string>")
    g, s = grouped.alias("g"), silver.alias("s")
    joined = g.join(s, F.col("g.image_id") == F.col("s.image_id"))
    fresh = F.array_except(F.col("g.event_ids"), F.coalesce(F.col("s.event_ids"), F.array().cast("array<string>")))
    event_ids = F.array_sort(
        F.array_union(F.coalesce(F.col("s.event_ids"), F.array().cast("array<string>")), F.col("g.event_ids"))
    )
    updates = {
        "event_ids": event_ids,
        "sightings": F.greatest(F.col("s.sightings"), F.size(event_ids).cast("long")),
        "first_seen_at": F.least(F.col("s.first_seen_at"), F.col("g.first_seen_at")),
        "last_seen_at": F.greatest(F.col("s.last_seen_at"), F.col("g.last_seen_at")),
        "sources": F.array_sort(F.array_union(F.col("s.sources"), F.col("g.sources"))),
        "captions": F.array_distinct(
            F.concat(F.coalesce(F.col("s.captions"), F.array().cast("array<string>")), clean(F.col("g.raw_captions")))
        ),
    }
    cols = [updates[c].alias(c) if c in updates else F.col(f"s.{c}") for c in silver.columns]
    return joined.where(F.size(fresh) > 0).select(*cols)


def catalog_doc(r: dict) -> dict:
    """A silver row -> the fields of its `images` document (dotted keys leave other layers' fields alone)."""
    from lake.catalog import as_datetime
    from lake.tables import BRONZE_BUCKET, SILVER_BUCKET, bronze_key, s3_uri

    return {
        "_id": r["image_id"],
        "split": r["split"],
        "width": r["width"],
        "height": r["height"],
        "src_format": r["src_format"],
        "src_width": r["src_width"],
        "src_height": r["src_height"],
        "bytes_out": r["bytes_out"],
        "phash": r["phash"],
        "sources": list(r["sources"] or []),
        "sightings": r["sightings"],
        "first_seen_at": as_datetime(r["first_seen_at"]),
        "last_seen_at": as_datetime(r["last_seen_at"]),
        "captions.human": list(r["captions"] or []),
        "layers.bronze": s3_uri(BRONZE_BUCKET, bronze_key(r["image_id"])),
        "layers.silver": s3_uri(SILVER_BUCKET, r["silver_key"]),
        "event_ids": list(r["event_ids"] or []),
    }


def _to_catalog(df: DataFrame, run_id: str, db_name: str, new: bool) -> None:
    """Write one `images` document per row, from the executors (bulk writes per partition)."""

    def write(rows) -> None:
        from lake.catalog import Catalog
        from lake.clients import mongo_client

        with mongo_client() as client:
            Catalog(client[db_name]).upsert_images((catalog_doc(r.asDict()) for r in rows), run_id, new=new)

    df.foreachPartition(write)


def run(
    spark: SparkSession,
    fetch_factory: FetchFactory = minio_fetch,
    put_factory: PutFactory = minio_put,
    *,
    tables: Tables | None = None,
    catalog=None,
    max_side: int = 384,
    max_pixels: int = 40_000_000,
    quality: int = 90,
) -> dict[str, int]:
    """Carry what bronze gained since the last run into silver; returns the counts. One run
    per silver table at a time (lake.locks): a second is refused with AlreadyRunning."""
    from lake.config import get_settings
    from lake.locks import single_writer

    tables = tables or get_settings().tables
    with single_writer(f"silver:{tables.silver}"):
        return _run(
            spark,
            fetch_factory,
            put_factory,
            tables=tables,
            catalog=catalog,
            max_side=max_side,
            max_pixels=max_pixels,
            quality=quality,
        )


def _run(
    spark: SparkSession,
    fetch_factory: FetchFactory,
    put_factory: PutFactory,
    *,
    tables: Tables,
    catalog,
    max_side: int,
    max_pixels: int,
    quality: int,
) -> dict[str, int]:
    from lake import quality as gate
    from lake.catalog import Catalog
    from lake.iceberg import current_snapshot, merge_changed, read_appended
    from lake.tables import ensure_tables

    t, cat = tables, catalog or Catalog.connect()
    ensure_tables(spark, t, "silver")
    cat.ensure_indexes()
    last = cat.last_run(STAGE, **{"inputs.events_table": t.events})
    since = last["inputs"]["bronze_snapshot"] if last else None
    until = current_snapshot(spark, t.events)
    counts = {"events": 0, "normalized": 0, "updated": 0, "quarantined": 0}
    with cat.run(STAGE, {"events_table": t.events, "bronze_snapshot_from": since, "bronze_snapshot": until}) as rec:
        rec.counts = counts
        if until is None or until == since:
            log.info("silver: nothing new in bronze", snapshot=until)
            return counts
        events = read_appended(spark, t.events, since, until).persist()
        counts["events"] = events.count()
        grouped = group_events(events)
        silver = spark.table(t.silver)
        done = silver.select("image_id").unionByName(
            spark.table(t.quarantine).where(F.col("stage") == STAGE).select("image_id")
        )

        # Checkpoints (not persist): a MERGE into silver invalidates every cached plan that
        # reads silver, and a recomputed anti-join would then find nothing new.
        updated = resighted(grouped, silver).localCheckpoint(eager=True)
        _to_catalog(updated, rec.run_id, cat.db.name, new=False)  # catalog first, as below
        counts["updated"] = merge_changed(spark, updated, t.silver, ["image_id"], compare=["image_id", "event_ids"])
        new = grouped.join(done, "image_id", "left_anti")
        out = transform(
            new,
            fetch_factory,
            max_side=max_side,
            max_pixels=max_pixels,
            quality=quality,
            partitions=2 * spark.sparkContext.defaultParallelism,
        ).localCheckpoint(eager=True)
        try:
            ok_rows = out.filter("ok").drop("jpeg")
            failures: dict[str, list[str]] = {}
            if ok_rows.count():  # the gate needs rows; re-sightings alone have none
                verdict = gate.validate(ok_rows, "silver_images")
                gate.record(verdict, rec.run_id, catalog=cat)
                failures = verdict.failed
            failed = list(failures)
            why = F.udf(lambda i: "; ".join(failures.get(i, []))[:2000], "string")
            flagged = (
                out.withColumn("gate", F.col("ok") & F.col("image_id").isin(failed))
                .withColumn("reason", F.when(F.col("gate"), F.lit("quality_gate")).otherwise(F.col("reason")))
                .withColumn("error", F.when(F.col("gate"), why("image_id")).otherwise(F.col("error")))
                .withColumn("ok", F.col("ok") & ~F.col("gate"))
                .drop("gate")
            )
            rows = store(flagged, put_factory).localCheckpoint(eager=True)  # the puts happen here, once
            cols = [n for n, _ in ROW_COLUMNS if n not in ("ok", "reason", "error")]
            good = rows.filter("ok").withColumn("normalized_at", F.current_timestamp()).select(*cols, "normalized_at")
            # The catalog first: should the job die before the MERGE below, the next run
            # (same watermark) normalizes these images again and rewrites the same documents.
            _to_catalog(good.drop("normalized_at"), rec.run_id, cat.db.name, new=True)
            counts["normalized"] = merge_changed(
                spark, good, t.silver, ["image_id"], compare=["image_id"], update=False
            )
            counts["quarantined"] = gate.quarantine(spark, rows.filter("NOT ok"), t.quarantine, STAGE)
        finally:
            events.unpersist()
        rec.outputs = {
            "silver_table": t.silver,
            "silver_snapshot": current_snapshot(spark, t.silver),
            "quarantine_table": t.quarantine,
        }
    log.info("silver normalize done", **counts)
    return counts


def main(max_side: int = 384, quality: int = 90) -> dict[str, int]:
    from lake.config import get_settings
    from lake.spark import spark_session, stop_session

    s = get_settings()
    # Bronze objects are up to 16 MiB each: keep Arrow batches small.
    spark = spark_session("silver-normalize-images", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "32"})
    try:
        return run(spark, max_side=max_side, max_pixels=s.max_image_pixels, quality=quality)
    finally:
        stop_session(spark)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-side", type=int, default=384, help="longest side of the silver JPEG, in pixels")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of the silver image")
    ap.add_argument(
        "--idle-exit-code",
        type=int,
        default=0,
        help="exit code when bronze had no new events (Airflow's lake_ingest: 99 = skipped)",
    )
    a = ap.parse_args()
    from lake.logging import fails_in_one_line

    with fails_in_one_line("silver normalize"):  # no image stops silver: what ends it is the system's
        done = main(a.max_side, a.quality)
    print(done)
    if not done["events"]:
        raise SystemExit(a.idle_exit_code)
