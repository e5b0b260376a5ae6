"""Scratch lanes of the bronze path for tests and benchmarks: a Kafka topic (+ its DLQ), an Iceberg namespace
for `upload_events` / `rejected_events` (the bronze job's ``--namespace``) and a checkpoint prefix, so that
nothing they send lands in the users' tables. `drop_lane` removes all three.

    ns = scratch_namespace("bench")            # lake.bench_3f2a9c1d
    ... python -m spark_jobs.bronze.ingest_uploads --namespace <ns> --checkpoint <prefix>/main ...
    drop_lane(s, topic, ns, "s3a://warehouse/_checkpoints/bench/<id>/", image_ids=sent)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from lake.config import Settings


def scratch_namespace(kind: str, s: Settings | None = None) -> str:
    """A fresh ``<catalog>.<kind>_<8 hex>`` namespace name (``kind``: lower-case letters)."""
    from lake.config import get_settings

    return f"{(s or get_settings()).iceberg_catalog}.{kind}_{uuid.uuid4().hex[:8]}"


def drop_lane(s: Settings, topic: str, namespace: str, checkpoint_prefix: str, image_ids: Iterable[str] = ()) -> None:
    """Drop the namespace's bronze tables and the namespace, delete the topic and its DLQ, remove every object
    under the checkpoint prefix (``s3a://bucket/prefix/``) and the bronze objects of ``image_ids`` (images the
    caller made for the lane: no one else has their bytes)."""
    from lake.clients import kafka_admin, minio_client, trino_query
    from lake.tables import BRONZE_BUCKET, bronze_key

    tables = s.tables.under(namespace)  # checks the namespace: it is written into SQL
    for table in (tables.events, tables.rejected):
        trino_query(f"DROP TABLE IF EXISTS {table}", s=s)
    trino_query(f"DROP SCHEMA IF EXISTS {namespace}", s=s)
    with kafka_admin(s) as admin:
        admin.delete_topics([topic, f"{topic}.dlq"])
    mc = minio_client(s)
    bucket, prefix = checkpoint_prefix.removeprefix("s3a://").split("/", 1)
    for o in mc.list_objects(bucket, prefix=prefix, recursive=True):
        mc.remove_object(bucket, o.object_name)
    for image_id in image_ids:
        mc.remove_object(BRONZE_BUCKET, bronze_key(image_id))
