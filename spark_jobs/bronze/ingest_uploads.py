"""Kafka `images.uploaded` -> bronze: Spark Structured Streaming, exactly once.

Reads committed messages only (a transactional producer's aborted events never land). Each
micro-batch is validated row by row (schema, plausible client clock, base64, size, real image,
object present, a claim-check signed by the API), inline bytes are written to
s3://bronze/images/<sha256> (content-addressed, so a retried batch rewrites identical bytes),
good events whose event_id the table does not hold yet are appended to `lake.bronze.upload_events`
(a replayed batch or topic adds nothing; an event_id sent again with other content is refused as
`event_id_reused`), and
refused ones go to `lake.bronze.rejected_events` and the `images.uploaded.dlq` topic with their
reason and whatever identity parsed. No event can stop the stream: only a fault of the system
(MinIO, the catalog, the broker) does, named in one line. The checkpoint lives on MinIO.

    python -m spark_jobs.bronze.ingest_uploads                  # drain what is there, stop (Airflow)
    python -m spark_jobs.bronze.ingest_uploads --continuous     # keep running (`lake stream`)
    python -m spark_jobs.bronze.ingest_uploads --namespace lake.t1 --checkpoint ...   # tests: tables of their own

`transform` is pure but for the object store, which arrives as a ``StoreFactory`` (tests pass
one over a dict); `write_batch` is the foreachBatch sink, `run` the stream, `main` the edge.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol

import pandas as pd
import structlog
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lake.tables import Tables

log = structlog.get_logger("lake.bronze")


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


class Store(Protocol):
    """The bronze bucket as the check needs it (one per executor partition)."""

    def put(self, image_id: str, data: bytes, content_type: str) -> object: ...  # content-addressed
    def size(self, image_id: str) -> int | None: ...  # None: no such object


StoreFactory = Callable[[], Store]  # called once per partition on the executor (clients are not picklable)


RESULT_COLUMNS = [
    ("ok", "boolean"),
    ("reason", "string"),
    ("error", "string"),
    ("event_id", "string"),
    ("image_id", "string"),
    ("source", "string"),
    ("content_type", "string"),
    ("size_bytes", "long"),
    ("client_uploaded_at", "timestamp"),
    ("user_id", "string"),
    ("captions", "array<string>"),
    ("tags", "map<string,string>"),
    ("bronze_key", "string"),
    ("delivery", "string"),
    ("kafka_topic", "string"),
    ("kafka_partition", "int"),
    ("kafka_offset", "long"),
    ("kafka_timestamp", "timestamp"),
    ("kafka_key", "string"),
    ("raw_prefix", "string"),
    ("fingerprint", "string"),
]
RESULT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS)


def check_event(
    value: bytes | None, store: Store, *, max_inline_bytes: int, max_pixels: int, claim_keys: list[str]
) -> dict:
    """Validate one Kafka value (and land its inline bytes in ``store``); a row of RESULT_SCHEMA.

    Whatever the event holds, the answer is a row: ``ok``, or the reason with the identity that
    parsed. Only the store's own errors (MinIO down) propagate, failing the batch for Spark to retry.
    A claim-check is honoured only when signed by one of ``claim_keys`` (the API's)."""
    from lake.events import Reason, Rejected, parse_upload
    from lake.images import inspect_image
    from lake.tables import BRONZE_BUCKET, bronze_key, s3_uri

    raw = (value or b"")[:512].decode("utf-8", "replace")
    ident: dict[str, str] = {}
    try:
        try:
            ev = parse_upload(value or b"")
            ident = {"event_id": str(ev.event_id), "image_id": ev.image_id, "source": ev.source}
            ident.update({"user_id": ev.user_id} if ev.user_id else {})
            if not ev.trusted(claim_keys):
                raise Rejected(
                    Reason.UNTRUSTED_CLAIM_CHECK,
                    "a claim-check must carry the API's signature; a plain producer sends the bytes inline (image_b64)",
                )
            data = ev.image_bytes(max_inline_bytes) if ev.image_b64 is not None else None
            # The stored type is the sniffed one: inline bytes are sniffed here, a claim-check's type
            # was sniffed by the API and is covered by its signature.
            content_type = (
                ev.content_type
                if data is None
                else inspect_image(data, max_bytes=max_inline_bytes, max_pixels=max_pixels).content_type
            )
            row = {
                "ok": True,
                **ident,
                "user_id": ev.user_id,
                "content_type": content_type,
                "size_bytes": ev.size_bytes,
                "client_uploaded_at": pd.Timestamp(ev.uploaded_at).tz_convert("UTC").tz_localize(None),
                "captions": list(ev.captions),
                "tags": dict(ev.tags),
                "bronze_key": bronze_key(ev.image_id),
                "delivery": ev.delivery,
                "raw_prefix": raw,
                "fingerprint": ev.fingerprint(),
            }
        except Rejected:
            raise
        except Exception as e:  # a case no check foresaw: this event is refused, the stream goes on
            raise Rejected(Reason.UNPROCESSABLE, f"{type(e).__name__}: {e}"[:500]) from e
        # The system's edges: their errors are not the event's fault and fail the batch.
        if data is not None:
            store.put(ev.image_id, data, content_type)
        else:
            size = store.size(ev.image_id)
            if size is None:
                raise Rejected(Reason.MISSING_OBJECT, f"{s3_uri(BRONZE_BUCKET, ev.bronze_key)} does not exist")
            if size != ev.size_bytes:
                raise Rejected(Reason.CHECKSUM_MISMATCH, f"object has {size} bytes, event says {ev.size_bytes}")
        return row
    except Rejected as e:
        return {"ok": False, **e.ident, **ident, "reason": e.reason.value, "error": e.message[:2000], "raw_prefix": raw}


def check_partition(
    batches: Iterator[pd.DataFrame],
    store: Store,
    *,
    max_inline_bytes: int,
    max_pixels: int,
    claim_keys: list[str],
    threads: int = 8,
) -> Iterator[pd.DataFrame]:
    """Kafka rows (key, value, topic, partition, offset, timestamp) -> RESULT_COLUMNS frames."""
    from concurrent.futures import ThreadPoolExecutor

    names = [name for name, _ in RESULT_COLUMNS]

    def one(r) -> dict:
        # Every key present: a missing one would become NaN, which Arrow refuses in map/array columns.
        row = dict.fromkeys(names)
        row.update(
            check_event(r.value, store, max_inline_bytes=max_inline_bytes, max_pixels=max_pixels, claim_keys=claim_keys)
        )
        row.update(
            kafka_topic=r.topic,
            kafka_partition=r.partition,
            kafka_offset=r.offset,
            kafka_timestamp=r.timestamp,
            kafka_key=(r.key or b"").decode("utf-8", "replace"),
        )
        return row

    # Rows wait on MinIO round trips, not on the CPU: overlap them.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for pdf in batches:
            yield pd.DataFrame(list(pool.map(one, pdf.itertuples(index=False))), columns=names)


def transform(
    kafka_rows: DataFrame,
    store_factory: StoreFactory,
    *,
    claim_keys: list[str],
    max_inline_bytes: int = 2**20,
    max_pixels: int = 40_000_000,
) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) -> one checked row each
    (RESULT_COLUMNS: ``ok``, the event's fields or the reason). ``store_factory()`` runs once per
    partition on the executor; inline bytes are put there, claim-checks looked up there, and
    honoured only when signed by one of ``claim_keys``."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from check_partition(
            batches,
            store_factory(),
            max_inline_bytes=max_inline_bytes,
            max_pixels=max_pixels,
            claim_keys=claim_keys,
        )

    return kafka_rows.select("key", "value", "topic", "partition", "offset", "timestamp").mapInPandas(
        run, RESULT_SCHEMA
    )


# ---- edges: MinIO, Iceberg, Kafka --------------------------------------------------------------------------------


class MinioStore:
    """The bronze bucket on MinIO (one pooled client per executor partition)."""

    def __init__(self) -> None:
        from lake.clients import minio_client

        self.mc = minio_client()

    def put(self, image_id: str, data: bytes, content_type: str) -> bool:
        from lake.storage import put_bronze

        return put_bronze(self.mc, image_id, data, content_type)

    def size(self, image_id: str) -> int | None:
        from lake.storage import object_size
        from lake.tables import BRONZE_BUCKET, bronze_key

        return object_size(self.mc, BRONZE_BUCKET, bronze_key(image_id))


EVENT_COLUMNS = [
    "event_id",
    "image_id",
    "source",
    "content_type",
    "size_bytes",
    "client_uploaded_at",
    "user_id",
    "captions",
    "tags",
    "bronze_key",
    "delivery",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "ingested_at",
    "batch_id",
    "fingerprint",
]
REJECTED_COLUMNS = [
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_key",
    "kafka_timestamp",
    "event_id",
    "reason",
    "error",
    "raw_prefix",
    "rejected_at",
    "batch_id",
    "image_id",
    "user_id",
    "source",
]
OFFSET = ["kafka_topic", "kafka_partition", "kafka_offset"]  # where a message was: a rejected event's identity


def reused_event_ids(ok: DataFrame, landed: DataFrame) -> DataFrame:
    """The good rows of a batch, with ``reused``: true where the event_id already stands for other
    content, landed before (``landed``: the events table) or sent earlier in this batch. The same
    event sent again (a retry, a replayed batch) is not reused: its fingerprint is the same.
    ``seen``: the event_id has landed before (so the row adds nothing to the events table)."""
    from pyspark.sql import Window

    first = Window.partitionBy("event_id").orderBy("kafka_partition", "kafka_offset")
    ids = ok.select("event_id").distinct()
    before = (
        landed.join(F.broadcast(ids), "event_id", "left_semi")
        .groupBy("event_id")
        .agg(F.first("fingerprint", ignorenulls=True).alias("_fp"), F.first("image_id").alias("_image"))
    )
    marked = ok.withColumn("_batch_fp", F.first("fingerprint").over(first)).join(before, "event_id", "left")
    # Rows landed before fingerprints were kept have none: there the image alone decides.
    same = F.when(F.col("_image").isNull(), F.col("fingerprint") == F.col("_batch_fp")).otherwise(
        F.when(F.col("_fp").isNotNull(), F.col("fingerprint") == F.col("_fp")).otherwise(
            F.col("image_id") == F.col("_image")
        )
    )
    return (
        marked.withColumn("reused", ~same)
        .withColumn("seen", F.col("_image").isNotNull())
        .drop("_batch_fp", "_fp", "_image")
    )


def write_batch(
    batch: DataFrame,
    batch_id: int,
    t: Tables,
    store_factory: StoreFactory = MinioStore,
    *,
    claim_keys: list[str],
    max_inline_bytes: int = 2**20,
    max_pixels: int = 40_000_000,
) -> dict[str, int]:
    """foreachBatch sink: the batch's new events appended (one look-up of their event_ids in the
    table decides both what is new and what is reused; one writer per table, see main's lock),
    refused ones MERGEd on their offset, then the dead letters (at least once). Idempotent: a
    replayed batch finds its events landed and its refusals recorded. Returns how many rows each
    table gained."""
    from lake.events import Reason
    from lake.iceberg import merge_changed

    spark = batch.sparkSession
    checked = (
        transform(batch, store_factory, claim_keys=claim_keys, max_inline_bytes=max_inline_bytes, max_pixels=max_pixels)
        .withColumn("batch_id", F.lit(batch_id))
        .withColumn("ingested_at", F.current_timestamp())  # the lake's clock: first_seen_at, watermarks, since=
        .localCheckpoint(eager=True)  # the store's puts happen here, once
    )
    marked = reused_event_ids(checked.filter("ok"), spark.table(t.events)).localCheckpoint(eager=True)
    # Reads only the checkpoint above, not the table the append below changes.
    new = marked.filter("NOT reused AND NOT seen").dropDuplicates(["event_id"]).select(*EVENT_COLUMNS)
    added = new.count()
    if added:
        new.writeTo(t.events).append()
    reused = (
        marked.filter("reused")
        .withColumn("ok", F.lit(False))
        .withColumn("reason", F.lit(Reason.EVENT_ID_REUSED.value))
        .withColumn(
            "error",
            F.concat(
                F.lit("event_id "),
                F.col("event_id"),
                F.lit(" already stands for another upload; pick a new event_id for every upload"),
            ),
        )
        .select(*checked.columns)
    )
    bad = (
        checked.filter("NOT ok")
        .unionByName(reused)
        .withColumn("rejected_at", F.current_timestamp())
        .select(*REJECTED_COLUMNS)
        .localCheckpoint(eager=True)
    )
    letters = bad.collect()
    refused = merge_changed(spark, bad, t.rejected, OFFSET, compare=OFFSET, update=False) if letters else 0
    _publish_dead_letters(letters)
    return {"events": added, "rejected": refused}


def _publish_dead_letters(rows) -> None:
    if not rows:
        return
    from lake.bus import get_producer, publish_dead_letter
    from lake.events import DeadLetter

    producer = get_producer()
    sent = [
        publish_dead_letter(
            producer,
            DeadLetter(
                reason=r.reason,
                error=r.error,
                topic=r.kafka_topic,
                partition=r.kafka_partition,
                offset=r.kafka_offset,
                key=r.kafka_key or None,
                event_id=r.event_id,
                image_id=r.image_id,
                user_id=r.user_id,
                source=r.source,
                raw_prefix=r.raw_prefix or "",
            ),
        )
        for r in rows
    ]
    for future in sent:  # a failed send fails the batch, which is then retried: no letter is lost
        future.get(timeout=30)


def run(
    spark: SparkSession,
    *,
    tables: Tables,
    checkpoint: str,
    continuous: bool = False,
    trigger_seconds: int = 5,
    max_offsets: int = 1000,
    store_factory: StoreFactory = MinioStore,
) -> int:
    """Read ``images.uploaded`` from the checkpoint on (or the earliest offset) into ``tables``:
    drain what is there and stop, or keep running with ``continuous``. The events read (0: nothing new)."""
    from lake.config import get_settings
    from lake.tables import ensure_tables

    s = get_settings()
    ensure_tables(spark, tables, "bronze")
    stream = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", s.kafka_bootstrap)
        .option("subscribe", s.topic_uploads)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max_offsets)
        .option("failOnDataLoss", "true")  # a gap in the topic is an error, never skipped
        .option("kafka.isolation.level", "read_committed")  # an aborted transaction's events never land
        .load()
    )
    sink = partial(
        write_batch,
        t=tables,
        store_factory=store_factory,
        claim_keys=[k.get_secret_value() for k in s.claim_check_keys],
        max_inline_bytes=s.max_inline_bytes,
        max_pixels=s.max_image_pixels,
    )
    read = 0
    for attempt in range(1, 4):
        writer = (
            stream.writeStream.foreachBatch(sink)
            .option("checkpointLocation", checkpoint)
            .queryName("bronze_ingest_uploads")
        )
        writer = (
            writer.trigger(processingTime=f"{trigger_seconds} seconds")
            if continuous
            else writer.trigger(availableNow=True)
        )
        query = writer.start()
        try:
            query.awaitTermination()
            return read + _events_read(query)
        except StreamingQueryException as e:
            read += _events_read(query)
            # Spark 4.1.1 (SPARK-55271): the first batch after a restart from an uncommitted
            # offset log entry can fail in KafkaMicroBatchStream.metrics() with an NPE, *after*
            # the batch ran. Starting again from the same checkpoint proceeds; MERGEs are idempotent.
            if attempt == 3 or "Option.get()" not in str(e):
                # Spark logged the whole trace above; end with the cause, which it buries under the plan.
                raise StreamFailed(
                    f"bronze stream failed: {failure_cause(e)}. Fix that and run it again: it "
                    f"resumes from its checkpoint ({checkpoint}), and no event lands twice"
                ) from e
            log.warning("restarting the stream after Spark's Kafka metrics NPE (SPARK-55271)", attempt=attempt)


def _events_read(query) -> int:
    """Kafka records a query's micro-batches read (its recent progress: enough to tell none from some)."""
    return sum(p.numInputRows for p in query.recentProgress)


def main(
    continuous: bool = False,
    trigger_seconds: int = 5,
    checkpoint: str | None = None,
    max_offsets: int = 1000,
    tables: Tables | None = None,
) -> int:
    from lake.config import get_settings
    from lake.locks import AlreadyRunning, acquire_for_tree
    from lake.spark import spark_session, stop_session

    s = get_settings()
    checkpoint = checkpoint or s.checkpoint_uri("bronze_ingest_uploads")
    try:
        # Two streams on one checkpoint could both append an event. A killed driver's JVM writes on
        # for a few seconds: the lock is held until the driver and every process it started are gone.
        lock = acquire_for_tree(checkpoint, s)
    except AlreadyRunning as e:
        raise SystemExit(f"another bronze stream is running on {checkpoint}; one writer at a time") from e
    # Inline events carry up to ~1.4 MB of base64 each: keep Arrow batches small.
    spark = spark_session("bronze-ingest-uploads", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "64"})
    lock.watch(spark.sparkContext._gateway.proc.pid)  # a JVM started earlier in this process (the demo) too
    try:
        return run(
            spark,
            tables=tables or s.tables,
            checkpoint=checkpoint,
            continuous=continuous,
            trigger_seconds=trigger_seconds,
            max_offsets=max_offsets,
        )
    finally:
        stop_session(spark)
        lock.close()


if __name__ == "__main__":
    from lake.config import get_settings
    from lake.tables import check_namespace

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--continuous", action="store_true", help="keep running (default: drain and stop)")
    ap.add_argument("--trigger-seconds", type=int, default=5)
    ap.add_argument("--checkpoint", help="override the checkpoint URI (tests, replays)")
    ap.add_argument("--max-offsets", type=int, default=1000, help="events per micro-batch at most")
    ap.add_argument(
        "--namespace",
        type=check_namespace,
        default=None,
        help="Iceberg namespace of upload_events and rejected_events (tests, replays; default the lake's)",
    )
    ap.add_argument(
        "--idle-exit-code",
        type=int,
        default=0,
        help="exit code when the topic had no new event (Airflow's lake_ingest: 99 = skipped, no asset event)",
    )
    a = ap.parse_args()
    lake = get_settings().tables
    try:
        read = main(
            a.continuous,
            a.trigger_seconds,
            a.checkpoint,
            a.max_offsets,
            lake.under(a.namespace) if a.namespace else lake,
        )
    except StreamFailed as e:
        raise SystemExit(f"error: {e}") from None
    print(f"bronze stream: {read} events read")
    if not read:
        raise SystemExit(a.idle_exit_code)
