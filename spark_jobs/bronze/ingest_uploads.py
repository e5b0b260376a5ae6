"""Kafka `images.uploaded` -> bronze: Spark Structured Streaming, exactly once.

Each micro-batch is validated row by row (schema, base64, size, real image, object
present), inline bytes are written to s3://bronze/images/<sha256> (content-addressed,
so a retried batch rewrites identical bytes), good events are MERGEd into
`lake.bronze.upload_events` on event_id (a replayed batch or topic adds nothing), and
refused ones go to `lake.bronze.rejected_events` and the `images.uploaded.dlq` topic
with their reason. The checkpoint lives on MinIO.

    python -m spark_jobs.bronze.ingest_uploads                  # drain what is there, stop (Airflow)
    python -m spark_jobs.bronze.ingest_uploads --continuous     # keep running (`lake stream`)
    python -m spark_jobs.bronze.ingest_uploads --namespace lake.t1 --checkpoint ...   # tests: tables of their own
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pandas as pd
import structlog
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = structlog.get_logger("lake.bronze")

EVENTS = "lake.bronze.upload_events"
REJECTED = "lake.bronze.rejected_events"


class StreamFailed(RuntimeError):
    """The stream stopped on an error; the message names its cause in one line."""


# Spark and py4j wrap the cause of a failed batch in layers of their own (and pages of plan).
_WRAPPERS = ("Py4JJavaError", "Py4JException", "ForeachBatchUserFuncException", "StreamingQueryException")
_EXCEPTION = re.compile(r"((?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error)): ([^\n]+)")
_SQLSTATE = re.compile(r" SQLSTATE: \w+$")
_STREAM_FAILED = re.compile(r"^\[STREAM_FAILED\] Query \[.*?\] terminated with exception: ")


def failure_cause(e: Exception) -> str:
    """The first exception in a failed stream's message that is not a wrapper, as `Class: message`."""
    text = str(e).split("=== Streaming Query ===")[0]
    for m in _EXCEPTION.finditer(text):
        if not m.group(1).endswith(_WRAPPERS):
            message = _SQLSTATE.sub("", m.group(2)).strip()
            return f"{m.group(1).rsplit('.', 1)[-1]}: {message}"[:500]
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return _SQLSTATE.sub("", _STREAM_FAILED.sub("", first))[:500]


NAMESPACE = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")


@dataclass(frozen=True)
class Tables:
    """The tables one run writes (tests point these at a namespace of their own)."""

    events: str = EVENTS
    rejected: str = REJECTED

    @classmethod
    def under(cls, namespace: str) -> Tables:
        """``catalog.namespace``: plain identifiers only (it is written into SQL)."""
        if not NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace {namespace!r}: catalog.schema, lower-case letters, digits and _")
        return cls(f"{namespace}.upload_events", f"{namespace}.rejected_events")


RESULT_COLUMNS = [
    ("ok", "boolean"), ("reason", "string"), ("error", "string"), ("event_id", "string"), ("image_id", "string"),
    ("source", "string"), ("content_type", "string"), ("size_bytes", "long"), ("uploaded_at", "timestamp"),
    ("user_id", "string"), ("captions", "array<string>"), ("tags", "map<string,string>"), ("bronze_key", "string"),
    ("delivery", "string"), ("kafka_topic", "string"), ("kafka_partition", "int"), ("kafka_offset", "long"),
    ("kafka_timestamp", "timestamp"), ("kafka_key", "string"), ("raw_prefix", "string"),
]
RESULT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS)

EVENTS_DDL = f"""CREATE TABLE IF NOT EXISTS {EVENTS} (
  event_id string NOT NULL, image_id string NOT NULL, source string, content_type string, size_bytes long,
  uploaded_at timestamp, user_id string, captions array<string>, tags map<string,string>, bronze_key string,
  delivery string, kafka_topic string, kafka_partition int, kafka_offset long, kafka_timestamp timestamp,
  ingested_at timestamp, batch_id long)
USING iceberg PARTITIONED BY (days(uploaded_at))
TBLPROPERTIES ('format-version'='2', 'write.merge.mode'='merge-on-read')"""

REJECTED_DDL = f"""CREATE TABLE IF NOT EXISTS {REJECTED} (
  kafka_topic string NOT NULL, kafka_partition int NOT NULL, kafka_offset long NOT NULL, kafka_key string,
  kafka_timestamp timestamp, event_id string, reason string, error string, raw_prefix string,
  rejected_at timestamp, batch_id long)
USING iceberg TBLPROPERTIES ('format-version'='2')"""


def check_event(value: bytes | None, *, s, mc) -> dict:
    """Validate one Kafka value (and land its inline bytes); a row of RESULT_SCHEMA."""
    from lake.events import BRONZE_BUCKET, Reason, Rejected, parse_upload
    from lake.images import inspect_image
    from lake.storage import object_size, put_bronze

    try:
        ev = parse_upload(value or b"")
        content_type = ev.content_type
        if ev.image_b64 is not None:
            data = ev.image_bytes(s.max_inline_bytes)
            content_type = inspect_image(data, max_bytes=s.max_inline_bytes,
                                         max_pixels=s.max_image_pixels).content_type
            put_bronze(mc, ev.image_id, data, content_type)
        else:
            size = object_size(mc, BRONZE_BUCKET, ev.bronze_key)
            if size is None:
                raise Rejected(Reason.MISSING_OBJECT, f"s3://{BRONZE_BUCKET}/{ev.bronze_key} does not exist")
            if size != ev.size_bytes:
                raise Rejected(Reason.CHECKSUM_MISMATCH, f"object has {size} bytes, event says {ev.size_bytes}")
        return {"ok": True, "event_id": str(ev.event_id), "image_id": ev.image_id, "source": ev.source,
                "content_type": content_type, "size_bytes": ev.size_bytes,
                "uploaded_at": pd.Timestamp(ev.uploaded_at).tz_convert("UTC").tz_localize(None),
                "user_id": ev.user_id, "captions": list(ev.captions), "tags": dict(ev.tags),
                "bronze_key": f"images/{ev.image_id}", "delivery": ev.delivery}
    except Rejected as e:
        return {"ok": False, "reason": e.reason.value, "error": e.message[:2000],
                "raw_prefix": (value or b"")[:512].decode("utf-8", "replace")}


def _check_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    from concurrent.futures import ThreadPoolExecutor

    from lake.clients import minio_client
    from lake.config import get_settings

    s = get_settings()
    mc = minio_client(s)  # one client per partition, not per row
    names = [name for name, _ in RESULT_COLUMNS]

    def one(r) -> dict:
        # Every key present: a missing one would become NaN, which Arrow refuses in map/array columns.
        row = dict.fromkeys(names)
        row.update(check_event(r.value, s=s, mc=mc))
        row.update(kafka_topic=r.topic, kafka_partition=r.partition, kafka_offset=r.offset,
                   kafka_timestamp=r.timestamp, kafka_key=(r.key or b"").decode("utf-8", "replace"))
        return row

    # Rows wait on MinIO round trips, not on the CPU: overlap them.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for pdf in batches:
            yield pd.DataFrame(list(pool.map(one, pdf.itertuples(index=False))), columns=names)


def transform(kafka_rows: DataFrame) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) -> checked rows."""
    return kafka_rows.select("key", "value", "topic", "partition", "offset", "timestamp").mapInPandas(
        _check_partition, RESULT_SCHEMA)


def write_batch(batch: DataFrame, batch_id: int, t: Tables = Tables()) -> None:
    """foreachBatch sink: idempotent MERGEs, then the dead letters (at least once)."""
    spark = batch.sparkSession
    checked = transform(batch).withColumn("batch_id", F.lit(batch_id)).persist()
    try:
        good = (checked.filter("ok").dropDuplicates(["event_id"])
                .withColumn("ingested_at", F.current_timestamp()))
        good.createOrReplaceTempView("good_events")
        spark.sql(f"""MERGE INTO {t.events} t USING good_events s ON t.event_id = s.event_id
                      WHEN NOT MATCHED THEN INSERT (event_id, image_id, source, content_type, size_bytes,
                        uploaded_at, user_id, captions, tags, bronze_key, delivery, kafka_topic, kafka_partition,
                        kafka_offset, kafka_timestamp, ingested_at, batch_id)
                      VALUES (s.event_id, s.image_id, s.source, s.content_type, s.size_bytes, s.uploaded_at,
                        s.user_id, s.captions, s.tags, s.bronze_key, s.delivery, s.kafka_topic,
                        s.kafka_partition, s.kafka_offset, s.kafka_timestamp, s.ingested_at, s.batch_id)""")
        bad = checked.filter("NOT ok").withColumn("rejected_at", F.current_timestamp())
        bad.createOrReplaceTempView("bad_events")
        spark.sql(f"""MERGE INTO {t.rejected} t USING bad_events s
                      ON t.kafka_topic = s.kafka_topic AND t.kafka_partition = s.kafka_partition
                         AND t.kafka_offset = s.kafka_offset
                      WHEN NOT MATCHED THEN INSERT (kafka_topic, kafka_partition, kafka_offset, kafka_key,
                        kafka_timestamp, event_id, reason, error, raw_prefix, rejected_at, batch_id)
                      VALUES (s.kafka_topic, s.kafka_partition, s.kafka_offset, s.kafka_key, s.kafka_timestamp,
                        s.event_id, s.reason, s.error, s.raw_prefix, s.rejected_at, s.batch_id)""")
        _publish_dead_letters(bad.select("reason", "error", "kafka_topic", "kafka_partition", "kafka_offset",
                                         "kafka_key", "raw_prefix").collect())
    finally:
        checked.unpersist()


def _publish_dead_letters(rows) -> None:
    if not rows:
        return
    from lake.bus import get_producer, publish_dead_letter
    from lake.events import DeadLetter

    producer = get_producer()
    sent = [publish_dead_letter(producer, DeadLetter(reason=r.reason, error=r.error, topic=r.kafka_topic,
                                                     partition=r.kafka_partition, offset=r.kafka_offset,
                                                     key=r.kafka_key or None, raw_prefix=r.raw_prefix or ""))
            for r in rows]
    for future in sent:  # a failed send fails the batch, which is then retried: no letter is lost
        future.get(timeout=30)


def ensure_tables(spark: SparkSession, t: Tables = Tables()) -> None:
    for table in (t.events, t.rejected):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
    spark.sql(EVENTS_DDL.replace(EVENTS, t.events))
    spark.sql(REJECTED_DDL.replace(REJECTED, t.rejected))


def main(continuous: bool = False, trigger_seconds: int = 5, checkpoint: str | None = None,
         max_offsets: int = 1000, tables: Tables = Tables()) -> None:
    from lake.config import get_settings
    from lake.spark import spark_session

    s = get_settings()
    checkpoint = checkpoint or s.checkpoint_uri("bronze_ingest_uploads")
    from lake.locks import AlreadyRunning, acquire

    try:
        lock = acquire(checkpoint, s)  # two streams on one checkpoint could both append an event
    except AlreadyRunning as e:
        raise SystemExit(f"another bronze stream is running on {checkpoint}; one writer at a time") from e
    # Inline events carry up to ~1.4 MB of base64 each: keep Arrow batches small.
    spark = spark_session("bronze-ingest-uploads", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "64"})
    ensure_tables(spark, tables)
    stream = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", s.kafka_bootstrap)
              .option("subscribe", s.topic_uploads)
              .option("startingOffsets", "earliest")
              .option("maxOffsetsPerTrigger", max_offsets)
              .option("failOnDataLoss", "true")  # a gap in the topic is an error, never skipped
              .load())
    for attempt in range(1, 4):
        writer = (stream.writeStream.foreachBatch(partial(write_batch, t=tables))
                  .option("checkpointLocation", checkpoint)
                  .queryName("bronze_ingest_uploads"))
        writer = writer.trigger(processingTime=f"{trigger_seconds} seconds") if continuous \
            else writer.trigger(availableNow=True)
        try:
            writer.start().awaitTermination()
            break
        except StreamingQueryException as e:
            # Spark 4.1.1 (SPARK-55271): the first batch after a restart from an uncommitted
            # offset log entry can fail in KafkaMicroBatchStream.metrics() with an NPE, *after*
            # the batch ran. Starting again from the same checkpoint proceeds; MERGEs are idempotent.
            if attempt == 3 or "Option.get()" not in str(e):
                # Spark logged the whole trace above; end with the cause, which it buries under the plan.
                raise StreamFailed(f"bronze stream failed: {failure_cause(e)}. Fix that and run it again: it "
                                   f"resumes from its checkpoint ({checkpoint}), and no event lands twice") from e
            log.warning("restarting the stream after Spark's Kafka metrics NPE (SPARK-55271)", attempt=attempt)
    spark.stop()
    lock.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--continuous", action="store_true", help="keep running (default: drain and stop)")
    ap.add_argument("--trigger-seconds", type=int, default=5)
    ap.add_argument("--checkpoint", help="override the checkpoint URI (tests, replays)")
    ap.add_argument("--max-offsets", type=int, default=1000, help="events per micro-batch at most")
    ap.add_argument("--namespace", type=lambda v: Tables.under(v) and v, default=EVENTS.rsplit(".", 1)[0],
                    help="Iceberg namespace of upload_events and rejected_events (tests, replays)")
    a = ap.parse_args()
    try:
        main(a.continuous, a.trigger_seconds, a.checkpoint, a.max_offsets, Tables.under(a.namespace))
    except StreamFailed as e:
        raise SystemExit(f"error: {e}") from None
