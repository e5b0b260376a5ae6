"""Kafka -> bronze, against the real Kafka, MinIO, Spark and Trino (integration, slow).

Each test publishes to its own topic and runs the real job as a subprocess, then checks
`lake.bronze.upload_events` rows of that topic. The stream SIGKILLed mid-backlog (after a
MERGE, and at an arbitrary point) is tests/reliability/test_faults.py's.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from lake.clients import kafka_admin, minio_client, trino_query
from lake.config import REPO_ROOT, Settings
from lake.datasets.shapes import generate
from lake.events import ImageUploaded

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def topic(stack_up, unique):
    with kafka_admin(stack_up) as admin:
        admin.create_topics([NewTopic(unique, 3, 1), NewTopic(f"{unique}.dlq", 1, 1)])
    return unique


def _env(topic: str) -> dict[str, str]:
    return {**os.environ, "LAKE_TOPIC_UPLOADS": topic, "LAKE_TOPIC_UPLOADS_DLQ": f"{topic}.dlq"}


def _job(topic: str, checkpoint: str, *extra: str, wait: bool = True) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-m", "spark_jobs.bronze.ingest_uploads", "--checkpoint", checkpoint, *extra],
        env=_env(topic),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if wait:
        try:
            out, _ = p.communicate(timeout=480)  # under pytest's own timeout, so we can clean up
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
        assert p.returncode == 0, out[-4000:]
    return p


def _landed(topic: str) -> tuple[int, int, int]:
    """(rows, distinct event ids, distinct image ids) landed from ``topic``."""
    from trino.exceptions import TrinoUserError

    try:
        (row,) = trino_query(
            "SELECT count(*), count(DISTINCT event_id), count(DISTINCT image_id) "
            "FROM lake.bronze.upload_events WHERE kafka_topic = ?",
            [topic],
        )
    except TrinoUserError as e:  # the job creates the table on its first run
        if "does not exist" in str(e):
            return (0, 0, 0)
        raise
    return tuple(row)


def _inline_event(data: bytes, **extra) -> dict:
    image_id = hashlib.sha256(data).hexdigest()
    return {
        "schema_version": 1,
        "event_id": extra.pop("event_id", None) or str(__import__("uuid").uuid4()),
        "image_id": image_id,
        "source": "mobile",
        "content_type": "image/png",
        "size_bytes": len(data),
        "captions": ["from a phone"],
        "image_b64": base64.b64encode(data).decode(),
        **extra,
    }


def _producer(s: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", max_request_size=4 * 2**20)


def test_three_paths_land_exactly_once_and_replay_adds_nothing(topic, stack_up, tmp_path):
    from fastapi.testclient import TestClient

    from lake.config import get_settings
    from lake.ingest import ingest_paths
    from services.api.main import app

    s = Settings(_env_file=None, topic_uploads=topic, topic_uploads_dlq=f"{topic}.dlq")
    n = 300
    api_imgs = [x.data for x in generate(n, seed=101)]
    kafka_imgs = [x.data for x in generate(n, seed=102)]
    bulk_dir = tmp_path / "bulk"
    bulk_dir.mkdir()
    for x in generate(n, seed=103):
        (bulk_dir / x.filename).write_bytes(x.data)

    # 1. HTTP API (in-process app, same code as the server), n uploads + 10 repeats.
    app.dependency_overrides[get_settings] = lambda: s
    try:
        with TestClient(app) as client, ThreadPoolExecutor(8) as pool:

            def post(data):
                return client.post(
                    "/v1/images",
                    headers={"X-API-Key": "lake-local-key"},
                    files={"file": ("x.png", data)},
                    data={"captions": ["a caption"]},
                ).status_code

            codes = list(pool.map(post, api_imgs + api_imgs[:10]))
    finally:
        app.dependency_overrides.clear()
    assert codes.count(201) + codes.count(200) == n + 10 and codes[-10:] == [200] * 10, set(codes)

    # 2. a plain Kafka producer with inline bytes (what a mobile app does)
    producer = _producer(s)
    for data in kafka_imgs:
        producer.send(topic, value=json.dumps(_inline_event(data)).encode())
    producer.flush()

    # 3. bulk ingest of a folder
    journal = s.model_copy(update={"state_dir": tmp_path / "state"})  # never the lake's own .lake/ingest journal
    report = ingest_paths([bulk_dir], {}, source="bulk", s=journal, show_progress=False)
    assert report.uploaded == n and not report.failed

    _job(topic, f"s3a://warehouse/_checkpoints/tests/{topic}/a")
    rows, events, images = _landed(topic)
    assert (rows, events) == (3 * n + 10, 3 * n + 10)  # every event once, repeats are sightings
    assert images == 3 * n

    # bronze objects match the event rows one to one
    mc = minio_client(stack_up)
    ids = {
        r[0]
        for r in trino_query("SELECT DISTINCT image_id FROM lake.bronze.upload_events WHERE kafka_topic = ?", [topic])
    }
    want = {hashlib.sha256(d).hexdigest() for d in api_imgs + kafka_imgs}
    want |= {hashlib.sha256(p.read_bytes()).hexdigest() for p in bulk_dir.iterdir()}
    assert ids == want
    sizes = {o.object_name.removeprefix("images/"): o.size for o in mc.list_objects("bronze", prefix="images/")}
    assert all(sizes.get(h) for h in want)

    # replaying the whole topic from offset 0 (fresh checkpoint) adds zero rows
    _job(topic, f"s3a://warehouse/_checkpoints/tests/{topic}/replay")
    assert _landed(topic) == (rows, events, images)
    (rejected,) = trino_query("SELECT count(*) FROM lake.bronze.rejected_events WHERE kafka_topic = ?", [topic])
    assert rejected == [0]


def _jpeg(colour, width: int = 40) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", (width, 30), colour).save(b, "JPEG")
    return b.getvalue()


def test_bad_events_go_to_the_dlq_with_reasons_and_good_ones_land(topic, stack_up):
    from PIL import Image

    bomb = io.BytesIO()
    Image.new("L", (10000, 5000)).save(bomb, "PNG", optimize=True)
    big = _jpeg((1, 2, 3)) + os.urandom(2 * 2**20)
    good = [_jpeg((10 * i, 100, 200), width=40 + i) for i in range(20)]
    missing = hashlib.sha256(b"never uploaded").hexdigest()
    bad = {
        "bad_json": b"{not json",
        "unknown_schema_version": json.dumps({**_inline_event(good[0]), "schema_version": 7}).encode(),
        "invalid_event": json.dumps({"schema_version": 1, "image_id": "../../etc/passwd"}).encode(),
        "bad_base64": json.dumps({**_inline_event(good[1]), "image_b64": "@@not base64@@"}).encode(),
        "missing_object": ImageUploaded(
            event_id="0c6e2a3b-9a8f-4c1d-8e7f-1a2b3c4d5e6f",
            image_id=missing,
            content_type="image/jpeg",
            size_bytes=10,
            bronze_key=f"images/{missing}",
        )
        .signed(stack_up.claim_check_keys[0].get_secret_value())
        .to_kafka()[1],
        "checksum_mismatch": json.dumps({**_inline_event(good[2]), "image_id": missing}).encode(),
        "not_an_image": json.dumps(_inline_event(b"<html><body>hi</body></html>")).encode(),
        "corrupt_image": json.dumps(_inline_event(good[3][: len(good[3]) // 2])).encode(),
        "too_many_pixels": json.dumps(_inline_event(bomb.getvalue())).encode(),
        "too_large": json.dumps(_inline_event(big)).encode(),
    }
    producer = _producer(stack_up)
    for i, data in enumerate(good[4:]):  # good events interleaved with the bad ones
        producer.send(topic, value=json.dumps(_inline_event(data)).encode())
        if i < len(bad):
            producer.send(topic, value=list(bad.values())[i])
    producer.flush()

    _job(topic, f"s3a://warehouse/_checkpoints/tests/{topic}/dlq")
    assert _landed(topic) == (16, 16, 16)
    reasons = sorted(
        r[0] for r in trino_query("SELECT reason FROM lake.bronze.rejected_events WHERE kafka_topic = ?", [topic])
    )
    assert reasons == sorted(bad)
    consumer = KafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=stack_up.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    letters = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert sorted(x["reason"] for x in letters) == sorted(bad)
    assert all(x["topic"] == topic and x["error"] for x in letters)
