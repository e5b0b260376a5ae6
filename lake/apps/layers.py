"""The medallion layers at a glance, and one call that carries bronze through silver to gold.

from lake.apps.layers import status, carry, oldest_waiting
status()        # {"counts": {...}, "lag": {...}, "runs": [...]}
oldest_waiting()  # the oldest upload not yet in silver: in Kafka (not in bronze) or in bronze; None if none
carry()         # silver then gold in one Spark session: {"silver": {...}, "gold": {...}}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lake.config import Settings, get_settings
from lake.tables import Tables

JOBS = ("silver.normalize_images", "gold.build")


ORDER = (
    "bronze events",
    "bronze images",
    "rejected events",
    "silver images",
    "quarantined images",
    "gold training examples",
    "gold model captions",
)


def lag_sql(t: Tables, oldest: bool = False) -> str:
    """Images bronze has that silver has neither normalized nor quarantined (with ``oldest``, and the broker time
    of the oldest such event)."""
    return f"""
        SELECT count(DISTINCT e.image_id){", min(e.kafka_timestamp)" if oldest else ""} FROM {t.events} e
        WHERE NOT EXISTS (SELECT 1 FROM {t.silver} s WHERE s.image_id = e.image_id)
          AND NOT EXISTS (SELECT 1 FROM {t.quarantine} q WHERE q.image_id = e.image_id)"""


def _unread(s: Settings, read: dict[int, int]) -> tuple[int, datetime | None]:
    """Records of the uploads topic past the last offset bronze holds per partition (``read``): how many,
    and the broker time of the oldest."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=30000, enable_auto_commit=False)
    try:
        parts = [TopicPartition(s.topic_uploads, p) for p in consumer.partitions_for_topic(s.topic_uploads) or ()]
        ends, starts = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
        waiting = {tp: max(read.get(tp.partition, -1) + 1, starts[tp]) for tp in parts}
        waiting = {tp: o for tp, o in waiting.items() if o < ends[tp]}
        oldest = None
        for tp, offset in waiting.items():
            consumer.assign([tp])
            consumer.seek(tp, offset)
            records = consumer.poll(timeout_ms=5000, max_records=1).get(tp, [])
            if records:
                at = datetime.fromtimestamp(records[0].timestamp / 1000, UTC)
                oldest = at if oldest is None else min(oldest, at)
        return sum(ends[tp] - o for tp, o in waiting.items()), oldest
    finally:
        consumer.close()


def oldest_waiting(s: Settings | None = None) -> dict[str, Any] | None:
    """The oldest upload event not yet in silver (neither normalized nor quarantined): still in Kafka (past what
    bronze read) or in bronze; {"since", "in_kafka", "in_bronze"}, or None when silver is up to date."""
    from lake.clients import trino_query

    s = s or get_settings()
    t = s.tables
    rows = trino_query(
        f"SELECT kafka_partition, max(kafka_offset) FROM (SELECT kafka_topic, kafka_partition, kafka_offset "
        f"FROM {t.events} UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM {t.rejected}) "
        "WHERE kafka_topic = ? GROUP BY 1",
        [s.topic_uploads],
        s=s,
    )
    in_kafka, kafka_oldest = _unread(s, {p: o for p, o in rows})
    ((in_bronze, bronze_oldest),) = trino_query(lag_sql(t, oldest=True), s=s)
    stamps = [x if x.tzinfo else x.replace(tzinfo=UTC) for x in (kafka_oldest, bronze_oldest) if x is not None]
    if not stamps:
        return None
    return {"since": min(stamps), "in_kafka": in_kafka, "in_bronze": in_bronze}


def status(s: Settings | None = None) -> dict[str, Any]:
    from lake.catalog import Catalog
    from lake.clients import no_tables_yet, trino_query
    from spark_jobs.gold.build_gold import views

    s = s or get_settings()
    out: dict[str, Any] = {"counts": {}, "lag": {}, "runs": [], "problems": []}
    try:
        # the layer_counts view's own SELECT, so it works before gold has created the view
        got = dict(trino_query(views(s.tables)["layer_counts"], s=s))
        out["counts"] = {name: got[name] for name in ORDER}
        ((lag,),) = trino_query(lag_sql(s.tables), s=s)
        out["lag"] = {"images_waiting_for_silver": lag}
    except Exception as e:  # a fresh lake: the jobs create their tables on first run
        if not no_tables_yet(e):
            raise
        out["problems"].append(f"tables missing ({getattr(e, 'message', e)}); run `lake layers run`")
    cat = Catalog.connect(s)
    for job in JOBS:
        last = cat.last_run(job, status=None)
        if last:
            out["runs"].append(
                {k: last.get(k) for k in ("job", "status", "started_at", "duration_s", "counts", "error", "_id")}
            )
    return out


def carry(silver: bool = True, gold: bool = True, max_side: int = 384) -> dict[str, dict[str, int]]:
    """Bronze -> silver -> gold in one Spark session (what `lake layers run` and the DAG do)."""
    from lake.spark import spark_session, stop_session
    from spark_jobs.gold import build_gold
    from spark_jobs.silver import normalize_images

    s = get_settings()
    spark = spark_session("lake-layers", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "32"})
    result: dict[str, dict[str, int]] = {}
    try:
        if silver:
            result["silver"] = normalize_images.run(spark, max_side=max_side, max_pixels=s.max_image_pixels)
        if gold:
            result["gold"] = build_gold.run(spark)
    finally:
        stop_session(spark)
    return result
