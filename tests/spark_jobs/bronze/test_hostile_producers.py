"""Hostile producers against the real Kafka, MinIO, Spark and Trino (integration, slow): every case an
outside producer can send with kafka-python (clocks, text, forged claim-checks, reused event ids,
transactions, headers, compression, framing), sent between good uploads. One stream run and one
silver run over a lane of the test's own (topic, Iceberg namespace, catalog database); then each
case has its expected outcome, no job exited non-zero, and every good neighbour is in bronze and
silver exactly once, first seen at the lake's time.

    .lake/venvs/core/bin/python -m pytest -q tests/spark_jobs/bronze/test_hostile_producers.py
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer

from lake.events import ImageUploaded, Reason
from lake.tables import bronze_key
from tests.spark_jobs.bronze.lane import Lane, inline, jpeg
from tests.spark_jobs.bronze.strategies import events, unique_event_ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LANDED = "landed"
UNSEEN = "unseen"  # never reaches bronze, nor the rejected table (an aborted transaction)


@dataclass
class Case:
    name: str
    value: bytes | None
    expect: str  # LANDED, UNSEEN or a reason code
    event_id: str | None = None
    key: bytes | None = None
    headers: list | None = None


def _claim(data: bytes, key: str | None, **over) -> ImageUploaded:
    import hashlib

    image_id = hashlib.sha256(data).hexdigest()
    fields = {"content_type": "image/jpeg", "captions": ["what the API was told"], "source": "api", **over}
    ev = ImageUploaded(image_id=image_id, size_bytes=len(data), bronze_key=bronze_key(image_id), **fields)
    return ev.signed(key) if key else ev


def _raw(ev: dict) -> bytes:
    return json.dumps(ev).encode()


def cases(lane: Lane, claim_key: str) -> list[Case]:
    """The hostile cases, each with its outcome. ``lane.uploaded`` is an image already in bronze (its owner's)."""
    victim = lane.uploaded

    def case(name, ev: dict, expect, **kw) -> Case:
        return Case(name, _raw(ev), expect, event_id=ev.get("event_id"), **kw)

    def good(i: int, **over) -> dict:
        return inline(jpeg(i), **over)

    reused_id = str(uuid.uuid4())
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    replayed = good(900)
    signed_then_changed = _claim(victim, claim_key).model_dump(mode="json", exclude_none=True)
    signed_then_changed["captions"] = ["forged after signing"]
    out = [
        # --- clocks
        case("clock_year_9999", good(101, uploaded_at="9999-12-31T23:59:59Z"), "bad_timestamp"),
        case("clock_year_1", good(102, uploaded_at="0001-01-01T00:00:00Z"), "bad_timestamp"),
        case("clock_2099", good(103, uploaded_at="2099-01-01T00:00:00Z"), "bad_timestamp"),
        case("clock_offset_past_9999", good(104, uploaded_at="9999-12-31T23:59:59-23:59"), "bad_timestamp"),
        case("clock_offset_before_year_1", good(105, uploaded_at="0001-01-01T00:00:00+23:59"), "bad_timestamp"),
        case("clock_an_integer", good(106, uploaded_at=1_700_000_000_000_000), "bad_timestamp"),
        case("clock_an_hour_ahead", good(107, uploaded_at=soon), LANDED),
        # --- text
        Case("caption_lone_surrogate", _raw(good(111, captions=["X"])).replace(b'"X"', b'"\\ud800"'), "bad_text"),
        Case("user_id_lone_surrogate", _raw(good(112, user_id="X")).replace(b'"X"', b'"\\udfff"'), "bad_text"),
        case("caption_with_nul", good(113, captions=["a red\u0000 circle"]), LANDED),
        Case("value_utf8_bom", b"\xef\xbb\xbf" + _raw(good(114)), LANDED),  # json reads bytes with a BOM
        Case("value_utf16", json.dumps(good(115)).encode("utf-16"), LANDED),  # RFC 8259 says UTF-8; Python reads it
        Case("value_a_json_array", b"[1, 2, 3]", "bad_json"),
        Case("value_a_json_string", b'"an event"', "bad_json"),
        Case("value_nested_deep", b"[" * 100_000 + b"]" * 100_000, "bad_json"),
        case("tags_nested", good(116, tags={"k": {"nested": ["x"]}}), "invalid_event"),
        case("image_id_upper_case", good(117, image_id="A" * 64), "invalid_event"),
        # --- claim-checks naming somebody else's bytes
        Case(
            "claim_unsigned",
            _claim(victim, None).to_kafka()[1],
            "untrusted_claim_check",
            event_id=None,
        ),
        Case("claim_wrong_key", _claim(victim, "a-guessed-key").to_kafka()[1], "untrusted_claim_check"),
        Case("claim_changed_after_signing", _raw(signed_then_changed), "untrusted_claim_check"),
        Case(
            "claim_lying_content_type",
            _claim(victim, "a-guessed-key", content_type="image/x-evil").to_kafka()[1],
            "untrusted_claim_check",
        ),
        Case("claim_signed_by_the_api", _claim(victim, claim_key, user_id="owner").to_kafka()[1], LANDED),
        # --- identities
        case("event_id_first_use", good(121, event_id=reused_id), LANDED),
        case("event_id_reused_other_image", good(122, event_id=reused_id), "event_id_reused"),
        case("event_id_reused_other_captions", good(121, event_id=reused_id, captions=["other"]), "event_id_reused"),
        case("event_sent_once", replayed, LANDED),
        case("event_sent_again", replayed, LANDED),  # the same event twice lands once
        case("user_id_a_number", good(123, user_id=42), "invalid_event"),
        case("schema_version_true", good(124, schema_version=True), "unknown_schema_version"),
        # --- framing: keys, headers, tombstones
        Case("tombstone", None, "bad_json", key=b"a-key"),
        case("key_binary_garbage", good(131), LANDED, key=bytes(range(256))),
        case("headers_binary", good(132), LANDED, headers=[("x", b"\xff\xfe\x00"), ("", b""), ("x", b"dup")]),
    ]
    for c in out:
        if c.event_id is None and c.value:
            try:
                c.event_id = json.loads(c.value).get("event_id")
            except (ValueError, AttributeError, RecursionError):
                pass
    return out


def test_hostile_producers_cannot_stop_forge_or_lose(lane: Lane, stack_up):
    claim_key = stack_up.claim_check_keys[0].get_secret_value()
    hostile = cases(lane, claim_key)
    neighbours = [inline(jpeg(i)) for i in range(len(hostile) + 5)]
    producer = KafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, acks="all", max_request_size=8 * 2**20)
    for good, c in zip(neighbours, hostile, strict=False):  # every hostile case right after a good upload
        producer.send(lane.topic, value=_raw(good))
        producer.send(lane.topic, value=c.value, key=c.key, headers=c.headers)
    producer.flush()

    # Compressed batches, and transactions: aborted events never land, committed ones do.
    for n, codec in enumerate(("gzip", "lz4", "zstd")):
        p = KafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, compression_type=codec, linger_ms=50)
        ev = inline(jpeg(200 + n), source=codec)
        hostile.append(Case(f"compressed_{codec}", _raw(ev), LANDED, event_id=ev["event_id"]))
        p.send(lane.topic, value=_raw(ev))
        p.flush()
        p.close()
    tx = KafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, transactional_id=f"{lane.topic}-tx")
    tx.init_transactions()
    for outcome, n in (("abort", 301), ("commit", 302), ("abort", 303)):
        tx.begin_transaction()
        ev = inline(jpeg(n), source=f"tx-{outcome}")
        tx.send(lane.topic, value=_raw(ev))
        tx.flush()
        tx.abort_transaction() if outcome == "abort" else tx.commit_transaction()
        expect = LANDED if outcome == "commit" else UNSEEN
        hostile.append(Case(f"transaction_{outcome}_{n}", _raw(ev), expect, event_id=ev["event_id"]))
    tx.close()
    for good in neighbours[len(hostile) - 6 :]:  # the rest after the transaction markers
        producer.send(lane.topic, value=_raw(good))
    producer.flush()

    lane.stream()  # exits 0, whatever it read
    counts = lane.silver()
    assert counts["quarantined"] == 0, counts

    landed, refused = lane.landed(), lane.refused()
    outcome, want = {}, {}
    for c in (c for c in hostile if c.event_id):
        want[c.name] = c.expect
        if c.expect in (LANDED, UNSEEN):
            n = landed.get(c.event_id, 0)
            outcome[c.name] = {0: UNSEEN, 1: LANDED}.get(n, f"landed {n} times")
        else:
            got = refused.get(c.event_id, [])
            outcome[c.name] = c.expect if c.expect in got else f"refused {got}, landed {landed.get(c.event_id, 0)}"
    assert outcome == want
    # Events whose event_id did not parse: refused with the reason all the same.
    assert lane.anonymous_refusals() == Counter(c.expect for c in hostile if not c.event_id)

    # The DLQ letters carry the reason and the identity that parsed.
    consumer = KafkaConsumer(
        lane.dlq,
        bootstrap_servers=stack_up.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        isolation_level="read_committed",
    )
    letters = {x.get("event_id"): x for x in (json.loads(m.value) for m in consumer)}
    consumer.close()
    named = {c.name: c for c in hostile}
    pill = letters[named["clock_year_9999"].event_id]
    assert pill["reason"] == "bad_timestamp" and pill["image_id"] and pill["source"] == "producer"
    assert letters[named["event_id_reused_other_image"].event_id]["reason"] == "event_id_reused"

    # Every good neighbour once in bronze and silver, first seen at the lake's clock (not the client's).
    sent = neighbours[: len(hostile) - 6] + neighbours[len(hostile) - 6 :]
    assert all(landed.get(ev["event_id"]) == 1 for ev in sent)
    silver = lane.silver_rows()
    assert {ev["image_id"] for ev in sent} <= set(silver) and all(r["n"] == 1 for r in silver.values())
    now = datetime.now(UTC)
    seen = [r["first_seen_at"].replace(tzinfo=r["first_seen_at"].tzinfo or UTC) for r in silver.values()]
    assert all(now - timedelta(hours=1) < at <= now for at in seen)


IMAGES = [jpeg(500 + i) for i in range(8)]


@settings(
    max_examples=1,  # one drawn batch through the real stream and silver (minutes); the pure properties
    deadline=None,  # run hundreds of draws in test_properties.py
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(drawn=st.lists(st.one_of(*(events(image) for image in IMAGES)), min_size=60, max_size=60))
def test_any_batch_lands_once_or_is_refused_with_a_reason(lane: Lane, stack_up, drawn: list[bytes]):
    values = unique_event_ids(drawn)
    neighbours = [inline(jpeg(700 + i)) for i in range(len(values))]
    producer = KafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, acks="all", max_request_size=8 * 2**20)
    sent = []  # (offset, value), all on partition 0
    for good, value in zip(neighbours, values, strict=True):
        producer.send(lane.topic, value=_raw(good), partition=0)
        sent.append(producer.send(lane.topic, value=value, partition=0))
    producer.flush()
    offsets = [f.get(timeout=30).offset for f in sent]

    lane.stream()  # exits 0
    lane.silver()
    from lake.clients import trino_query

    landed = Counter(o for (o,) in trino_query(f"SELECT kafka_offset FROM {lane.tables.events}"))
    refused = Counter(o for (o,) in trino_query(f"SELECT kafka_offset FROM {lane.tables.rejected}"))
    reasons = {r for (r,) in trino_query(f"SELECT DISTINCT reason FROM {lane.tables.rejected}")}
    assert all(landed[o] + refused[o] == 1 for o in offsets), {o: (landed[o], refused[o]) for o in offsets}
    assert reasons <= {r.value for r in Reason} and None not in reasons
    assert lane.landed().keys() >= {ev["event_id"] for ev in neighbours}
    silver = lane.silver_rows()
    assert {ev["image_id"] for ev in neighbours} <= set(silver) and all(r["n"] == 1 for r in silver.values())
