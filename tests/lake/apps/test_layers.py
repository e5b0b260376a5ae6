"""How far silver is behind the front door (`lake.apps.layers.oldest_waiting`, the last line of `lake status`),
against the test stack's Kafka: records past what bronze read, and the broker time of the oldest."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.integration


def test_unread_counts_records_past_what_bronze_read_and_dates_the_oldest(stack_up, unique):
    from kafka import KafkaProducer
    from kafka.admin import NewTopic

    from lake.apps.layers import _unread
    from lake.clients import kafka_admin

    with kafka_admin(stack_up) as admin:  # a topic of the test's own: the lake's own uploads stay unread
        admin.create_topics([NewTopic(unique, 1, 1)])
    s = stack_up.model_copy(update={"topic_uploads": unique})
    topic = unique
    producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap)
    stamps = [int(time.time() * 1000) - 60_000 + 1000 * i for i in range(3)]  # a minute ago, one second apart
    for ts in stamps:
        producer.send(topic, b"{}", partition=0, timestamp_ms=ts).get(timeout=15)
    producer.close()
    assert _unread(s, {}) == (3, datetime.fromtimestamp(stamps[0] / 1000, UTC))  # bronze read none of it
    assert _unread(s, {0: 0}) == (2, datetime.fromtimestamp(stamps[1] / 1000, UTC))  # it read offset 0
    assert _unread(s, {0: 2}) == (0, None)  # all of it


def test_status_of_a_brand_new_lake_says_what_to_run(monkeypatch):
    """Before Spark's first write Trino's Iceberg JDBC catalog has no tables of its own: a problem line, not
    a crash (pure: Trino and the catalog stood in for)."""
    from types import SimpleNamespace

    from trino.exceptions import TrinoExternalError

    import lake.apps.layers as layers
    import lake.catalog
    import lake.clients
    from lake.config import Settings

    def fresh(*a, **k):
        raise TrinoExternalError({"message": "Cannot check and eventually update SQL schema", "errorName": "X"})

    monkeypatch.setattr(lake.clients, "trino_query", fresh)
    monkeypatch.setattr(lake.catalog.Catalog, "connect", lambda s=None: SimpleNamespace(last_run=lambda *a, **k: None))
    out = layers.status(Settings())
    assert out["counts"] == {} and out["runs"] == []
    assert out["problems"] == ["tables missing (Cannot check and eventually update SQL schema); run `lake layers run`"]

    def broken(*a, **k):
        raise ConnectionRefusedError("trino is down")

    monkeypatch.setattr(lake.clients, "trino_query", broken)
    with pytest.raises(ConnectionRefusedError):
        layers.status(Settings())
