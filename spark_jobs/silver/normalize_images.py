"""Bronze -> silver: one normalized JPEG and one `lake.silver.images` row per new image.

Incremental by image id: the bronze events of images that are neither in
`lake.silver.images` nor quarantined by this job (a left anti-join on image_id) are
grouped per image (sightings, sources, first/last seen, every event's captions), their
bytes are fetched from s3://bronze/images/<image_id> on the executors and normalized
(lake.normalize: decode, EXIF-orient, RGB, longest side <= 384, JPEG, phash, split).
The JPEGs go to s3://silver/images/<image_id>.jpg (deterministic bytes: a retried task
rewrites identical objects), then rows are MERGEd on image_id, so a re-run adds nothing;
images that fail go to `lake.bronze.quarantine` with their reason.

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

log = structlog.get_logger("lake.silver")

EVENTS = "lake.bronze.upload_events"
SILVER = "lake.silver.images"
QUARANTINE = "lake.bronze.quarantine"
SILVER_BUCKET = "silver"
STAGE = "silver.normalize_images"

Fetch = Callable[[str], "bytes | None"]  # image_id -> the bronze bytes, None when the object is missing
FetchFactory = Callable[[], Fetch]       # called once per partition on the executor (clients are not picklable)
Put = Callable[[str, bytes, str, str], None]  # (silver_key, jpeg, image_id, sha256_out) -> stored
PutFactory = Callable[[], Put]

RESULT_COLUMNS = [
    ("image_id", "string"), ("ok", "boolean"), ("reason", "string"), ("error", "string"),
    ("width", "int"), ("height", "int"), ("src_format", "string"), ("src_width", "int"), ("src_height", "int"),
    ("bytes_out", "long"), ("phash", "string"), ("sha256_out", "string"), ("split", "string"),
    ("captions", "array<string>"), ("first_seen_at", "timestamp"), ("last_seen_at", "timestamp"),
    ("sightings", "long"), ("sources", "array<string>"), ("silver_key", "string"), ("jpeg", "binary"),
]
RESULT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS)
ROW_COLUMNS = [c for c in RESULT_COLUMNS if c[0] != "jpeg"]  # what the tables keep
ROW_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in ROW_COLUMNS)

SILVER_DDL = f"""CREATE TABLE IF NOT EXISTS {SILVER} (
  image_id string NOT NULL, width int, height int, src_format string, src_width int, src_height int,
  bytes_out long, phash string, sha256_out string, split string, captions array<string>,
  first_seen_at timestamp, last_seen_at timestamp, sightings long, sources array<string>, silver_key string,
  normalized_at timestamp)
USING iceberg PARTITIONED BY (split)
TBLPROPERTIES ('format-version'='2', 'write.merge.mode'='merge-on-read')"""

QUARANTINE_DDL = f"""CREATE TABLE IF NOT EXISTS {QUARANTINE} (
  image_id string NOT NULL, stage string NOT NULL, reason string, error string, first_seen_at timestamp,
  last_seen_at timestamp, sightings long, quarantined_at timestamp)
USING iceberg TBLPROPERTIES ('format-version'='2')"""


def silver_key(image_id: str) -> str:
    from lake.events import bronze_key

    return bronze_key(image_id) + ".jpg"  # bronze_key checks the id: 64 lower-case hex digits


def group_events(events: DataFrame) -> DataFrame:
    """Bronze upload events -> one row per image_id: sightings, sources, first/last seen and
    every event's captions, oldest event first (ordered, so the result is deterministic)."""
    captions = F.coalesce(F.col("captions"), F.array().cast("array<string>"))  # one null would null flatten()
    ordered = F.array_sort(F.collect_list(F.struct(F.col("uploaded_at"), F.col("event_id"), captions.alias("c"))))
    return events.groupBy("image_id").agg(
        F.count_distinct("event_id").alias("sightings"),
        F.min("uploaded_at").alias("first_seen_at"),
        F.max("uploaded_at").alias("last_seen_at"),
        F.array_sort(F.collect_set("source")).alias("sources"),
        F.flatten(F.transform(ordered, lambda e: e["c"])).alias("raw_captions"),
    )


def merge_captions(raw) -> list[str]:
    """Clean every caption; drop empty ones and repeats, keeping first-seen order."""
    from lake.normalize import clean_caption

    seen: dict[str, None] = {}
    for text in ([] if raw is None else raw):
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
    row.update(image_id=r.image_id, split=split_of(r.image_id), captions=merge_captions(r.raw_captions),
               first_seen_at=r.first_seen_at, last_seen_at=r.last_seen_at, sightings=r.sightings,
               sources=list(r.sources), silver_key=silver_key(r.image_id))
    try:
        data = fetch(r.image_id)
        if data is None:
            raise Rejected(Reason.MISSING_OBJECT, f"no bronze object for {r.image_id}")
        if hashlib.sha256(data).hexdigest() != r.image_id:  # bit rot or a bad write since the front door
            raise Rejected(Reason.CHECKSUM_MISMATCH, "bronze bytes do not hash to image_id")
        n = normalize_image(data, max_side=max_side, max_pixels=max_pixels, quality=quality)
    except Rejected as e:
        row.update(ok=False, reason=e.reason.value, error=e.message[:2000])
        return row
    row.update(ok=True, width=n.width, height=n.height, src_format=n.src_format, src_width=n.src_width,
               src_height=n.src_height, bytes_out=len(n.jpeg), phash=n.phash, sha256_out=n.sha256_out, jpeg=n.jpeg)
    return row


def normalize_partition(batches: Iterator[pd.DataFrame], fetch: Fetch, *, max_side: int = 384,
                        max_pixels: int = 40_000_000, quality: int = 90, threads: int = 4) -> Iterator[pd.DataFrame]:
    """Grouped rows (image_id, sightings, first_seen_at, last_seen_at, sources, raw_captions)
    -> RESULT_COLUMNS frames. Only Rejected becomes a failed row; anything else (MinIO down)
    fails the task, which Spark retries."""
    from concurrent.futures import ThreadPoolExecutor

    names = [name for name, _ in RESULT_COLUMNS]

    def one(r) -> dict:
        return normalize_row(r, fetch, max_side=max_side, max_pixels=max_pixels, quality=quality)

    # Fetching waits on the network and Pillow drops the GIL while decoding, resizing and encoding.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for pdf in batches:
            yield pd.DataFrame(list(pool.map(one, pdf.itertuples(index=False))), columns=names)


def transform(events: DataFrame, fetch_factory: FetchFactory, *, max_side: int = 384,
              max_pixels: int = 40_000_000, quality: int = 90, partitions: int | None = None) -> DataFrame:
    """Bronze upload events -> one RESULT_COLUMNS row per image_id (with the JPEG in `jpeg`).

    ``fetch_factory()`` runs once per partition on the executor and returns fetch(image_id).
    ``partitions`` spreads the images over that many tasks (a small grouped frame would
    otherwise be coalesced into one task by adaptive execution).
    """
    grouped = group_events(events)
    if partitions:
        grouped = grouped.repartition(partitions, "image_id")

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from normalize_partition(batches, fetch_factory(), max_side=max_side, max_pixels=max_pixels,
                                       quality=quality)

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
    from lake.events import BRONZE_BUCKET, bronze_key
    from lake.storage import read_object

    mc = minio_client()

    def fetch(image_id: str) -> bytes | None:
        return read_object(mc, BRONZE_BUCKET, bronze_key(image_id))

    return fetch


def minio_put() -> Put:
    """A PutFactory writing to s3://silver/<key>."""
    import io

    from lake.clients import minio_client

    mc = minio_client()

    def put(key: str, jpeg: bytes, image_id: str, sha256: str) -> None:
        mc.put_object(SILVER_BUCKET, key, io.BytesIO(jpeg), len(jpeg), content_type="image/jpeg",
                      metadata={"x-amz-meta-lake-image-id": image_id, "x-amz-meta-lake-sha256": sha256})

    return put


def ensure_tables(spark: SparkSession) -> None:
    from spark_jobs.bronze.ingest_uploads import EVENTS_DDL

    spark.sql("CREATE NAMESPACE IF NOT EXISTS lake.bronze")
    spark.sql(EVENTS_DDL)  # an empty lake: nothing to do, rather than an error
    spark.sql("CREATE NAMESPACE IF NOT EXISTS lake.silver")
    spark.sql(SILVER_DDL)
    spark.sql(QUARANTINE_DDL)


def run(spark: SparkSession, fetch_factory: FetchFactory = minio_fetch, put_factory: PutFactory = minio_put, *,
        max_side: int = 384, max_pixels: int = 40_000_000, quality: int = 90) -> dict[str, int]:
    """Normalize the images bronze has and silver lacks; {"normalized": n, "quarantined": m}."""
    ensure_tables(spark)
    done = spark.table(SILVER).select("image_id").unionByName(
        spark.table(QUARANTINE).where(F.col("stage") == STAGE).select("image_id"))
    new = spark.table(EVENTS).join(done, "image_id", "left_anti")
    out = transform(new, fetch_factory, max_side=max_side, max_pixels=max_pixels, quality=quality,
                    partitions=2 * spark.sparkContext.defaultParallelism)
    # Materialize once: fetch, normalize and put run in this one pass; both MERGEs read the cache.
    rows = store(out, put_factory).persist()
    try:
        counts = dict(rows.groupBy("ok").count().collect())
        good, bad = counts.get(True, 0), counts.get(False, 0)
        if good:
            cols = [n for n, _ in ROW_COLUMNS if n not in ("ok", "reason", "error")] + ["normalized_at"]
            rows.filter("ok").withColumn("normalized_at", F.current_timestamp()).select(*cols) \
                .createOrReplaceTempView("silver_new")
            spark.sql(f"""MERGE INTO {SILVER} t USING silver_new s ON t.image_id = s.image_id
                          WHEN NOT MATCHED THEN INSERT ({", ".join(cols)})
                          VALUES ({", ".join("s." + c for c in cols)})""")
        if bad:
            rows.filter("NOT ok").select("image_id", F.lit(STAGE).alias("stage"), "reason", "error",
                                         "first_seen_at", "last_seen_at", "sightings",
                                         F.current_timestamp().alias("quarantined_at")) \
                .createOrReplaceTempView("silver_bad")
            spark.sql(f"""MERGE INTO {QUARANTINE} t USING silver_bad s
                          ON t.image_id = s.image_id AND t.stage = s.stage
                          WHEN NOT MATCHED THEN INSERT *""")
    finally:
        rows.unpersist()
    log.info("silver normalize done", normalized=good, quarantined=bad)
    return {"normalized": good, "quarantined": bad}


def main(max_side: int = 384, quality: int = 90) -> None:
    from lake.config import get_settings
    from lake.spark import spark_session

    s = get_settings()
    # Bronze objects are up to 16 MiB each: keep Arrow batches small.
    spark = spark_session("silver-normalize-images", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "32"})
    try:
        run(spark, max_side=max_side, max_pixels=s.max_image_pixels, quality=quality)
    finally:
        spark.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-side", type=int, default=384, help="longest side of the silver JPEG, in pixels")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of the silver image")
    a = ap.parse_args()
    main(a.max_side, a.quality)
