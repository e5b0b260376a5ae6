"""Each server of the local stack is real and wired (integration: needs `lake up`)."""

from __future__ import annotations

import io
import json

import pytest

pytestmark = pytest.mark.integration


def test_kafka_produce_consume(stack_up, unique):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    from lake.clients import kafka_admin

    with kafka_admin(stack_up) as admin:
        admin.create_topics([NewTopic(unique, 2, 1)])
        assert {stack_up.topic_uploads, stack_up.topic_uploads_dlq, stack_up.topic_models_promoted} <= set(
            admin.list_topics()
        )
    producer = KafkaProducer(
        bootstrap_servers=stack_up.kafka_bootstrap, acks="all", value_serializer=lambda v: json.dumps(v).encode()
    )
    for i in range(50):
        producer.send(unique, key=str(i % 5).encode(), value={"i": i})
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        unique,
        bootstrap_servers=stack_up.kafka_bootstrap,
        group_id=unique,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        value_deserializer=lambda b: json.loads(b),
    )
    got = sorted(m.value["i"] for m in consumer)
    consumer.close()
    assert got == list(range(50))


def test_minio_put_get_stat(stack_up, unique):
    from lake.clients import minio_client
    from lake.tables import BRONZE_BUCKET, BUCKETS

    mc = minio_client(stack_up)
    assert all(mc.bucket_exists(b) for b in BUCKETS)
    data = b"\x89PNG not really" * 100
    mc.put_object(BRONZE_BUCKET, f"tests/{unique}", io.BytesIO(data), len(data), content_type="image/png")
    st = mc.stat_object(BRONZE_BUCKET, f"tests/{unique}")
    assert st.size == len(data) and st.content_type == "image/png"
    resp = mc.get_object(BRONZE_BUCKET, f"tests/{unique}")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()
    mc.remove_object(BRONZE_BUCKET, f"tests/{unique}")


def test_mongo_insert_find(stack_up, unique):
    from lake.clients import mongo_client

    with mongo_client(stack_up) as c:
        coll = c.lake_tests[unique]
        coll.insert_many([{"_id": f"img{i}", "size": i, "captions": {"human": [f"caption {i}"]}} for i in range(10)])
        coll.create_index("size")
        assert coll.count_documents({"size": {"$gte": 5}}) == 5
        assert coll.find_one({"_id": "img3"})["captions"]["human"] == ["caption 3"]
        coll.drop()


def test_mongo_document_visible_through_trino(stack_up, unique):
    from lake.clients import mongo_client, trino_query

    with mongo_client(stack_up) as c:
        c.lake_tests[unique].insert_one({"_id": "a1", "n": 7, "tags": {"source": "test"}})
    mongo = stack_up.trino_mongo_catalog
    rows = trino_query(f'SELECT _id, n, tags.source FROM {mongo}.lake_tests."{unique}" WHERE n = ?', [7])
    assert rows == [["a1", 7, "test"]]
    with mongo_client(stack_up) as c:
        c.lake_tests[unique].drop()


def test_spark_iceberg_table_read_by_trino(spark, settings, unique):
    from lake.clients import trino_query
    from lake.tables import WAREHOUSE_BUCKET, s3_uri
    from spark_jobs.demo.hello_lake import transform

    namespace = f"{settings.iceberg_catalog}.tests"
    table = f"{namespace}.{unique}"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    df = transform(spark, 500)
    df.writeTo(table).using("iceberg").create()
    expected = sorted(tuple(r) for r in df.collect())
    got = sorted(tuple(r) for r in trino_query(f"SELECT id, shape, colour, square FROM {table}"))
    assert got == expected
    # and the table's files really are on MinIO
    (path,) = trino_query(f"SELECT DISTINCT regexp_extract(\"$path\", '^s3://[^/]+') FROM {table}")[0:1]
    assert path == [s3_uri(WAREHOUSE_BUCKET).rstrip("/")]
    spark.sql(f"DROP TABLE {table} PURGE")
