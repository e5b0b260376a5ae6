"""Kafka edges: one idempotent producer per process, and the publishing helpers.

from lake.bus import get_producer, publish_upload
publish_upload(get_producer(), event)    # blocks until the broker acknowledged it
"""

from __future__ import annotations

from kafka import KafkaProducer

from lake.clients import per_process
from lake.config import Settings, get_settings
from lake.events import DeadLetter, ImageUploaded


def get_producer(s: Settings | None = None) -> KafkaProducer:
    """The process's producer for the settings' brokers (thread-safe, created once)."""
    s = s or get_settings()
    return per_process(("kafka", s.kafka_bootstrap), lambda: _new_producer(s))


def _new_producer(s: Settings) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=s.kafka_bootstrap,
        client_id="lake",
        acks="all",
        enable_idempotence=True,  # broker-side dedup of retried sends
        linger_ms=1,  # an upload waits for its ack: keep the batching delay small
        max_request_size=4 * 2**20,
        retries=10,
        request_timeout_ms=15000,
    )


def publish_upload(
    producer: KafkaProducer, event: ImageUploaded, topic: str | None = None, timeout: float = 15.0
) -> None:
    key, value = event.to_kafka()
    producer.send(topic or get_settings().topic_uploads, key=key, value=value).get(timeout=timeout)


def publish_dead_letter(producer: KafkaProducer, letter: DeadLetter, topic: str | None = None):
    """Send one dead letter; returns the future (the caller waits on all of them)."""
    return producer.send(
        topic or get_settings().topic_uploads_dlq,
        key=(letter.key or "").encode() or None,
        value=letter.model_dump_json().encode(),
    )
