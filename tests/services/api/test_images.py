"""POST /v1/images and GET /v1/images/{id} against the real API (uvicorn on :8000, started
by `lake up`), with httpx over the socket, not TestClient: the bad-input corpus of
tests/utils/images.py, a good upload after every entry, dedup, and the events on Kafka.

    .lake/venvs/core/bin/python -m pytest -q tests/services/api/test_images.py
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.utils.images import ACCEPTED, API_KEY, CORPUS, RUN, Post, Refused, jpeg, jpeg_fat_header, png

pytestmark = pytest.mark.integration

BRONZE = "bronze"
IMAGE_REASONS = {"empty", "not_an_image", "corrupt_image", "too_many_pixels", "too_large"}
PIL_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sent_bytes(payload) -> bytes | None:
    """The image bytes an entry uploads, when it uploads one."""
    return payload if isinstance(payload, bytes) else getattr(payload, "data", None)


def send(client: httpx.Client, payload) -> httpx.Response:
    return Post(payload)(client) if isinstance(payload, bytes) else payload(client)


def api_processes(stack_up) -> list:
    """The API's processes: uvicorn, and its workers when it runs several."""
    import psutil

    from infra import stack

    (row,) = stack.status(stack_up, ["api"])
    assert row.state == "healthy", row
    proc = psutil.Process(row.pid)
    return [proc, *proc.children(recursive=True)]


@pytest.fixture(scope="module")
def api_pids(stack_up):
    return sorted(p.pid for p in api_processes(stack_up))


@pytest.fixture(scope="module")
def client(stack_up, api_pids):
    with httpx.Client(base_url=f"http://127.0.0.1:{stack_up.api_port}", timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def mc(stack_up):
    from lake.clients import minio_client

    return minio_client(stack_up)


@pytest.fixture(scope="module", autouse=True)
def uploads_from(stack_up):
    """Read the `images.uploaded` events published since this module started (autouse:
    it notes where the topic ends before the first test)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=stack_up.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=15000,
        isolation_level="read_committed",  # what the stream reads: an aborted event is not an upload
    )
    topic = stack_up.topic_uploads
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)
    start = consumer.end_offsets(parts)

    def read() -> list[dict]:
        end = consumer.end_offsets(parts)  # the API answers after the broker acked: all are there
        for tp in parts:
            consumer.seek(tp, start[tp])
        events: list[dict] = []
        deadline = time.monotonic() + 20
        while any(consumer.position(tp) < end[tp] for tp in parts):
            assert time.monotonic() < deadline, "could not read images.uploaded back"
            for tp, records in consumer.poll(timeout_ms=1000).items():
                events += [json.loads(r.value) for r in records if r.offset < end[tp]]
        return events

    yield read
    consumer.close()


class Ledger:
    """What the run sent: accepted uploads (to check they landed) and refused bytes."""

    def __init__(self):
        self.accepted: dict[str, tuple[bytes, dict]] = {}  # name -> (bytes, POST body)
        self.refused_ids: dict[str, str] = {}  # name -> sha256 of bytes refused for what they are


@pytest.fixture(scope="module")
def ledger():
    return Ledger()


def assert_landed(client: httpx.Client, mc, data: bytes, body: dict) -> None:
    """The POST answer, the bronze object and GET /v1/images/{id} agree with the bytes."""
    img = Image.open(io.BytesIO(data))
    assert body["image_id"] == sha(data)
    assert body["bronze_uri"] == f"s3://{BRONZE}/images/{sha(data)}"
    assert body["size_bytes"] == len(data)
    assert body["content_type"] == PIL_TYPES[img.format]
    assert (body["width"], body["height"]) == img.size
    assert mc.stat_object(BRONZE, f"images/{sha(data)}").size == len(data)
    got = client.get(f"/v1/images/{sha(data)}")
    assert got.status_code == 200, got.text
    g = got.json()
    assert (g["image_id"], g["size_bytes"], g["content_type"]) == (sha(data), len(data), body["content_type"])
    assert (g["width"], g["height"]) == (body["width"], body["height"])


def assert_refused(r: httpx.Response, expect: Refused) -> None:
    assert r.status_code == expect.status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json"), r.headers
    detail = r.json()["detail"]
    if expect.reason is not None:
        assert set(detail) == {"reason", "message"}, detail
        assert detail["reason"] == expect.reason, detail
        assert isinstance(detail["message"], str) and detail["message"], detail
    elif expect.status == 422:  # FastAPI's validation format
        assert isinstance(detail, list) and {"loc", "msg", "type"} <= set(detail[0]), detail
    else:  # no route matched
        assert detail == "Not Found", detail


@pytest.mark.parametrize("name,payload,expect", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_entry_then_a_good_upload(name, payload, expect, client, mc, ledger):
    r = send(client, payload)
    assert r.status_code < 500, f"{name}: {r.status_code} {r.text[:500]}"
    data = sent_bytes(payload)
    if expect == ACCEPTED:
        assert r.status_code in (200, 201), r.text[:500]
        assert_landed(client, mc, data, r.json())
        ledger.accepted[name] = (data, r.json())
    else:
        assert_refused(r, expect)
        if data and expect.reason in IMAGE_REASONS:  # bad bytes never reach bronze
            ledger.refused_ids[name] = sha(data)
            assert not list(mc.list_objects(BRONZE, prefix=f"images/{sha(data)}")), name

    # The server still takes a good upload right after whatever this entry sent.
    good = png(3, 2, (len(name), 0, 0), note=f"{RUN}-after-{name}")
    r = Post(good, filename="after.png")(client)
    assert r.status_code == 201, f"after {name}: {r.status_code} {r.text[:300]}"
    assert_landed(client, mc, good, r.json())
    ledger.accepted[f"after-{name}"] = (good, r.json())


def test_same_bytes_twice_is_one_object(client, mc):
    data = png(7, 3, "navy", note=f"{RUN}-twice")
    first = Post(data)(client)
    second = Post(data, filename="other-name.png", fields=[("captions", "seen again")])(client)
    assert (first.status_code, first.json()["new"]) == (201, True), first.text
    assert (second.status_code, second.json()["new"]) == (200, False), second.text
    assert first.json()["image_id"] == second.json()["image_id"] == sha(data)
    assert first.json()["event_id"] != second.json()["event_id"]  # two sightings, two events
    objects = list(mc.list_objects(BRONZE, prefix=f"images/{sha(data)}"))
    assert [(o.object_name, o.size) for o in objects] == [(f"images/{sha(data)}", len(data))]


def test_concurrent_mixed_burst_has_no_5xx(client, mc):
    """Good and bad uploads at once, over separate connections."""
    goods = [png(5, 5, (i, 9, 9), note=f"{RUN}-burst-{i}") for i in range(16)]
    bads = [p for _, p, e in CORPUS if e != ACCEPTED and isinstance(p, bytes) and len(p) < 2**20]

    def one(payload):
        with httpx.Client(base_url=client.base_url, timeout=30) as c:
            return payload, send(c, payload)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, [x for pair in zip(goods, bads * 2) for x in pair]))
    assert all(r.status_code < 500 for _, r in results), [(r.status_code, r.text[:200]) for _, r in results]
    for payload, r in results:
        if payload in goods:
            assert r.status_code == 201, r.text
            assert mc.stat_object(BRONZE, f"images/{sha(payload)}").size == len(payload)
        else:
            assert 400 <= r.status_code < 500


def test_16_clients_posting_the_same_bytes_at_once_get_one_201(client, mc, ledger):
    """One `new: true`, fifteen `new: false`, and every caller's sighting is an event of its own. Three rounds:
    a stat-then-put store lost one most times, not every time."""
    for n in range(3):
        data = jpeg_fat_header(40, note=f"{RUN}-same-at-once-{n}")  # 2.6 MB that decode at once: the store races
        start = threading.Barrier(16)

        def one(_, data=data, start=start):
            with httpx.Client(base_url=client.base_url, timeout=30) as c:
                start.wait()
                return Post(data)(c)

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(16)))
        assert sorted(r.status_code for r in results) == [200] * 15 + [201], [r.text[:200] for r in results]
        assert [r.json()["new"] for r in results].count(True) == 1
        assert len({r.json()["event_id"] for r in results}) == 16
        for i, r in enumerate(results):
            ledger.accepted[f"same-at-once-{n}-{i}"] = (data, r.json())  # their events are checked below
        assert [(o.object_name, o.size) for o in mc.list_objects(BRONZE, prefix=f"images/{sha(data)}")] == [
            (f"images/{sha(data)}", len(data))
        ]


def test_bronze_bytes_are_never_served_to_a_write_key_or_anonymously(client, mc):
    """Bronze keeps the raw bytes (EXIF, GPS and all): no route hands them, or a signed URL of them, to a
    caller without an admin key. Every GET route of the spec is tried on an image that is in bronze."""
    data = jpeg(9, 9, note=f"{RUN}-private", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    r = Post(data, filename="private.jpg")(client)
    assert r.status_code == 201, r.text
    image_id = sha(data)
    paths = client.get("/openapi.json").json()["paths"]
    tried = 0
    for path, ops in paths.items():
        if "get" not in ops or path.startswith("/v1/admin"):
            continue
        url = path.replace("{image_id}", image_id).replace("{event_id}", str(r.json()["event_id"]))
        for headers in ({"X-API-Key": API_KEY}, {}):
            got = client.get(url, headers=headers, params={"q": "a"} if path == "/v1/search" else None)
            tried += 1
            assert got.status_code < 500 or got.status_code == 503, (url, got.status_code, got.text[:300])
            assert data not in got.content and data[:64] not in got.content, url
            assert b"X-Amz-Signature" not in got.content or b"/bronze/" not in got.content, (url, got.text[:300])
            assert "/bronze/" not in got.headers.get("location", ""), url
    assert tried >= 10, sorted(paths)
    for url in (f"/v1/images/{image_id}/raw", f"/v1/images/{image_id}/bytes", f"/v1/bronze/images/{image_id}"):
        assert client.get(url, headers={"X-API-Key": API_KEY}).status_code in (404, 405, 422), url


def test_endless_chunked_upload_is_cut_off(client, stack_up):
    """A chunked multipart body has no Content-Length: the server must stop at the limit,
    not spool the whole stream to a temporary file first (it did: 1 GiB in, 1 GiB on disk)."""
    procs = api_processes(stack_up)

    def written() -> int:  # bytes the API's processes have written (temp files, sockets, logs)
        return sum(p.io_counters().write_chars for p in procs)

    def body():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n\r\n\xff\xd8\xff\xe0'
        chunk = b"\0" * 2**20
        for _ in range(256):
            yield chunk

    before = written()
    r = client.post(
        "/v1/images", content=body(), headers={"X-API-Key": API_KEY, "Content-Type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 413 and r.json()["detail"]["reason"] == "too_large", r.text
    assert written() - before < 64 * 2**20


def test_events_carry_what_was_accepted_and_nothing_refused(uploads_from, ledger):
    events = uploads_from()
    by_id: dict[str, list[dict]] = {}
    for e in events:
        by_id.setdefault(e["image_id"], []).append(e)
    for name, (data, body) in ledger.accepted.items():
        assert str(body["event_id"]) in {e["event_id"] for e in by_id.get(sha(data), [])}, name
    assert not {n for n, i in ledger.refused_ids.items() if i in by_id}, "refused bytes were published"

    if "unicode_captions" in ledger.accepted:
        data, body = ledger.accepted["unicode_captions"]
        (ev,) = [e for e in by_id[sha(data)] if e["event_id"] == body["event_id"]]
        assert ev["captions"] == ["café au lait, naïve façade", "一只猫坐在垫子上 🐈", "Ωμέγα — ünïcödé"]
        assert ev["tags"] == {"lieu": "Genève", "emoji": "📷"}
        assert ev["user_id"] == "zoë"
    if "path_like_filename" in ledger.accepted:
        data, body = ledger.accepted["path_like_filename"]
        (ev,) = [e for e in by_id[sha(data)] if e["event_id"] == body["event_id"]]
        assert ev["bronze_key"] == f"images/{sha(data)}"
        assert "x.png" not in json.dumps(ev) and ".." not in json.dumps(ev)
    if "caption_utf16_declared" in ledger.accepted:  # decoded by the part's own charset
        data, body = ledger.accepted["caption_utf16_declared"]
        (ev,) = [e for e in by_id[sha(data)] if e["event_id"] == body["event_id"]]
        assert ev["captions"] == ["un chat ☕"]
    if "filename_header_injection" in ledger.accepted:
        data, body = ledger.accepted["filename_header_injection"]
        (ev,) = [e for e in by_id[sha(data)] if e["event_id"] == body["event_id"]]
        assert "Injected" not in json.dumps(ev)
    if "raw_body_with_query_caption" in ledger.accepted:
        data, body = ledger.accepted["raw_body_with_query_caption"]
        (ev,) = [e for e in by_id[sha(data)] if e["event_id"] == body["event_id"]]
        assert ev["captions"] == ["a raw upload"]


def test_api_survived(client, api_pids, stack_up):
    now = sorted(p.pid for p in api_processes(stack_up))
    assert now == api_pids, "an API process died or was restarted"
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
