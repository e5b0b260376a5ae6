"""POST /v1/captions against the real stores (FerretDB, MinIO, Kafka), with tiny models in a registry of
the test's own (a scratch catalog database, a unique model name), served by an in-process uvicorn on a
free port (the stack's API on :8000 runs the code it was started with): the captions equal a direct
`load(dir).caption`, concurrent requests share batches, a full queue answers 503 + Retry-After, bad
input a clear 4xx, and a promotion swaps the model while a stream of requests sees no error.

An image the Spark batch job captioned (its row in gold.captions) is answered from there with `cached: true`
and shown by `GET /v1/images/{id}` with its human captions.

    .lake/venvs/core/bin/python -m pytest tests/services/api/test_captions.py -q -p no:cacheprovider
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from PIL import Image

from tests.services.api.helpers import png, post_file, rgb, serve, service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(lake):
    svc = service(lake)
    with serve(svc) as c:
        yield c, svc


def test_captions_by_upload_and_by_image_id_are_the_models(api, lake, direct, settings):
    import hashlib

    from lake.clients import minio_client
    from lake.tables import SILVER_BUCKET, silver_key

    c, _ = api
    data = png(1)
    [want] = direct(lake["v1"], [rgb(data)])
    r = post_file(c, data)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "caption": want,
        "model_version": lake["v1"],
        "image_id": hashlib.sha256(data).hexdigest(),
        "cached": False,
        "filtered": None,
    }
    again = post_file(c, data).json()
    assert again["cached"] is True and again["caption"] == want
    raw = c.post("/v1/captions", content=data, headers={"content-type": "application/octet-stream"})
    assert raw.json()["caption"] == want, raw.text

    # an image in silver, named by id: JSON, multipart field or urlencoded form
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(2, 96))).save(buf, "JPEG", quality=90)
    jpeg, image_id = buf.getvalue(), hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    mc = minio_client(settings)
    mc.put_object(SILVER_BUCKET, silver_key(image_id), io.BytesIO(jpeg), len(jpeg), content_type="image/jpeg")
    try:
        [want] = direct(lake["v1"], [rgb(jpeg)])
        r = c.post("/v1/captions", json={"image_id": image_id})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "caption": want,
            "model_version": lake["v1"],
            "image_id": image_id,
            "cached": False,
            "filtered": None,
        }
        assert c.post("/v1/captions", files={"image_id": (None, image_id)}).json()["cached"] is True
        assert c.post("/v1/captions", data={"image_id": image_id}).json()["caption"] == want
    finally:
        mc.remove_object(SILVER_BUCKET, silver_key(image_id))
    unknown = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    r = c.post("/v1/captions", json={"image_id": unknown})
    assert r.status_code == 404 and r.json()["detail"]["reason"] == "not_found"
    assert unknown in r.json()["detail"]["message"]
    ready = c.get("/readyz").json()
    assert ready["captioner"]["model_version"] == lake["v1"] and ready["captioner"]["state"] == "ready"


def test_bad_input_is_refused_with_a_reason(api):
    c, _ = api
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(3, 200))).save(buf, "JPEG")
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    cases = [
        (post_file(c, b"hello, not an image"), 415, "not_an_image"),
        (post_file(c, truncated), 422, "corrupt_image"),
        (post_file(c, b""), 400, "empty"),
        (post_file(c, png(4), headers={"X-API-Key": "wrong"}), 401, "unauthorized"),
        (httpx.post(str(c.base_url.join("/v1/captions")), files={"file": ("x.png", png(4))}), 401, "unauthorized"),
        (c.post("/v1/captions", json={"image_id": "../etc/passwd"}), 400, "bad_image_id"),
        (c.post("/v1/captions", json=["no"]), 400, "bad_json"),
        (c.post("/v1/captions", content=b"{not json", headers={"content-type": "application/json"}), 400, "bad_json"),
        (c.post("/v1/captions", files={"file": ("x.png", png(4)), "image_id": (None, "a" * 64)}), 400, "missing_file"),
        (c.post("/v1/captions", files={"other": (None, "x")}), 400, "missing_file"),
    ]
    for r, status, reason in cases:
        assert (r.status_code, r.json()["detail"]["reason"]) == (status, reason), r.text
        assert r.json()["detail"]["message"]


@pytest.mark.parametrize("charset", ["rot13", "punycode", "base64", "no-such-charset", "undefined", "utf-7"])
def test_a_charset_that_is_not_a_text_encoding_is_bad_text(api, charset):
    """Of the body (the multipart Content-Type) or of the text part: 400 bad_text, never a 500."""
    from tests.utils.images import multipart

    c, _ = api
    for part_type, extra in ((f"text/plain; charset={charset}", ""), (None, f"; charset={charset}")):
        body, ctype = multipart([("image_id", "a" * 64, None, part_type)])
        r = c.post("/v1/captions", content=body, headers={"content-type": ctype + extra})
        assert r.status_code == 400, r.text
        assert r.json()["detail"]["reason"] == "bad_text", r.text


def test_concurrent_requests_share_batches(api, lake, direct):
    c, svc = api
    real = svc.caption_batch
    svc.caption_batch = lambda loaded, images: (time.sleep(0.05), real(loaded, images))[1]  # let a queue form
    before = svc.stats["batches"]
    try:
        blobs = [png(100 + i) for i in range(32)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda d: post_file(c, d), blobs))
    finally:
        svc.caption_batch = real
    assert [r.status_code for r in answers] == [200] * 32
    assert [r.json()["caption"] for r in answers] == direct(lake["v1"], [rgb(d) for d in blobs])
    assert svc.stats["batches"] - before < 32 and svc.stats["max_batch"] > 1, svc.stats
    assert svc.stats["max_batch"] <= svc.settings.caption_max_batch


def test_a_full_queue_answers_503_and_a_slow_model_504(lake):
    gate, entered = threading.Event(), threading.Event()
    svc = service(lake, caption_queue_size=2, caption_max_batch=1, caption_timeout_s=20)
    real = svc.caption_batch
    svc.caption_batch = lambda loaded, images: (entered.set(), gate.wait(30), real(loaded, images))[2]
    with serve(svc) as c, ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(post_file, c, png(200))]
        assert entered.wait(10), svc.stats  # the first one is in the model: the queue is empty again
        futures += [pool.submit(post_file, c, png(201 + i)) for i in range(5)]
        deadline = time.monotonic() + 10
        while svc.stats["rejected_full"] < 3:  # one in the model, two queued, three turned away
            assert time.monotonic() < deadline, svc.stats
            time.sleep(0.05)
        gate.set()
        answers = [f.result() for f in futures]
    assert sorted(r.status_code for r in answers) == [200] * 3 + [503] * 3
    for r in answers:
        if r.status_code == 503:
            assert r.headers["Retry-After"] == "1" and r.json()["detail"]["reason"] == "overloaded"

    stuck = threading.Event()
    svc = service(lake, caption_timeout_s=0.5)
    real = svc.caption_batch
    svc.caption_batch = lambda loaded, images: (stuck.wait(30), real(loaded, images))[1]
    with serve(svc) as c:
        r = post_file(c, png(300))
        stuck.set()
    assert r.status_code == 504 and r.json()["detail"]["reason"] == "timeout", r.text


def test_no_production_model_still_serves_the_rest(lake):
    svc = service(lake, model=f"{lake['name']}x:production", caption_poll_s=0.5)
    with serve(svc, wait_model=False) as c:
        deadline = time.monotonic() + 20
        while svc.state != "no production model":
            assert time.monotonic() < deadline, svc.state
            time.sleep(0.05)
        r = post_file(c, png(5))
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.json()["detail"] == {"reason": "no_model", "message": "no production model yet"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["captioner"]["model_version"] is None
        assert c.get(f"/v1/images/{'0' * 64}").status_code == 404  # the image routes answer as ever


@contextmanager
def request_stream(c: httpx.Client, threads: int = 4):
    """Requests in a loop from ``threads`` threads; yields the list of (status, model_version) seen."""
    seen, stop = [], threading.Event()

    def loop(i: int) -> None:
        n = 0
        while not stop.is_set():
            r = post_file(c, png(1000 * (i + 1) + n % 8))
            seen.append((r.status_code, r.json().get("model_version") if r.status_code == 200 else r.text))
            n += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    try:
        yield seen
    finally:
        stop.set()
        for w in workers:
            w.join(30)


def wait_for_version(seen: list, version: str, within: float) -> float:
    start = time.monotonic()
    while not any(v == version for _, v in seen[-8:]):
        assert time.monotonic() - start < within, f"still {seen[-3:]} after {within} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_promotion_event_swaps_the_model_without_failing_requests(lake, direct):
    from lake.retrain import publish_promoted

    reg, v1, v2 = lake["reg"], lake["v1"], lake["v2"]
    svc = service(lake, caption_poll_s=300, caption_cache_size=0)  # only the event can make it swap in time
    with serve(svc) as c:
        assert svc.kafka_ready.wait(30), "the models.promoted consumer did not start"
        with request_stream(c) as seen:
            wait_for_version(seen, v1, 10)
            doc = reg.set_stage(v2, "production", by="test", reason="hot swap")
            publish_promoted(doc, v1)
            took = wait_for_version(seen, v2, 15)
            time.sleep(0.5)
        data = png(7)
        after = post_file(c, data).json()
    assert took < 15 and svc.stats["swaps"] == 2
    assert {s for s, _ in seen} == {200}, [x for x in seen if x[0] != 200][:3]
    assert after["model_version"] == v2 and after["caption"] == direct(v2, [rgb(data)])[0]


def test_polling_swaps_the_model_when_no_event_comes(lake):
    reg, v1, v2 = lake["reg"], lake["v1"], lake["v2"]
    current = reg.get(f"{lake['name']}:production")["_id"]
    target = v1 if current == v2 else v2
    svc = service(lake, caption_poll_s=0.5, caption_cache_size=0)
    with serve(svc) as c, request_stream(c, threads=2) as seen:
        wait_for_version(seen, current, 10)
        reg.set_stage(target, "production", by="test", reason="no event")  # a registry change, nothing sent
        wait_for_version(seen, target, 10)
    assert {s for s, _ in seen} == {200}, [x for x in seen if x[0] != 200][:3]


def test_a_caption_is_computed_once_and_a_filtered_one_is_withheld(lake, direct):
    """A second process (another replica, or after a restart) answers from the lake's copy; a blocklisted
    word withholds the caption, and that is what is stored, returned and counted."""
    import hashlib

    from lake.catalog import Catalog

    data = png(500)
    image_id = hashlib.sha256(data).hexdigest()
    [want] = direct(lake["v1"], [rgb(data)])
    with serve(service(lake, caption_cache_size=0)) as c:
        assert post_file(c, data).json()["cached"] is False
    doc = Catalog(lake["reg"].db).stored_caption(image_id, lake["v1"])
    assert (doc["caption"], doc["source"], doc.get("filtered")) == (want, "api", None)
    other = service(lake, caption_cache_size=0)
    with serve(other) as c:
        again = post_file(c, data).json()
    assert again == {
        "caption": want,
        "model_version": lake["v1"],
        "image_id": image_id,
        "cached": True,
        "filtered": None,
    }
    assert other.stats["batches"] == 0 and other.stats["stored_hits"] == 1

    strict = service(lake, caption_blocklist=["knife"])
    strict.caption_batch = lambda loaded, images: ["a small knife on the left"] * len(images)  # what it said
    with serve(strict) as c:
        r = post_file(c, png(501)).json()
        text = c.get("/metrics").text
    assert r["caption"] == "" and r["filtered"] == "blocklist" and r["cached"] is False
    assert Catalog(lake["reg"].db).stored_caption(r["image_id"], lake["v1"])["filtered"] == "blocklist"
    assert 'lake_captions_filtered_total{reason="blocklist"} 1.0' in text


def test_metrics_show_latency_batches_and_the_model(api, lake):
    c, svc = api
    assert post_file(c, png(400)).status_code == 200
    text = c.get("/metrics").text
    assert 'lake_api_request_seconds_count{method="POST",route="/v1/captions",status="200"}' in text
    assert "lake_caption_queue_depth 0.0" in text and "lake_caption_batch_size_bucket" in text
    assert f'lake_caption_model_loaded{{model_version="{svc.current.version}"}} 1.0' in text
    batches = float(
        next(line.split()[-1] for line in text.splitlines() if line.startswith("lake_caption_batches_total"))
    )
    assert batches == svc.stats["batches"] >= 1


@pytest.fixture
def batch_captions(lake, spark):
    """``gold.captions`` in a scratch namespace (the one DDL, lake.tables), as the batch job leaves it; its
    Tables, and ``write(image_id, version, caption)`` that appends a row as the job's MERGE would."""
    from datetime import UTC, datetime

    from lake.tables import DDL, ModelCaption

    t = lake["settings"].tables.under(f"{lake['settings'].iceberg_catalog}.{lake['name']}")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {t.gold}")
    spark.sql(DDL["captions"].format(table=t.captions))
    schema = spark.table(t.captions).schema

    def write(image_id: str, version: str, caption: str) -> None:
        row = ModelCaption(
            image_id=image_id,
            model_version=version,
            caption=caption,
            generated_at=datetime.now(UTC),
            run_id="gold.caption_images-test",
        )
        spark.createDataFrame([row.model_dump()], schema).writeTo(t.captions).append()

    try:
        yield t, write
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {t.captions} PURGE")
        spark.sql(f"DROP NAMESPACE IF EXISTS {t.gold}")


def test_an_image_the_batch_job_captioned_is_answered_from_gold_and_shown(lake, batch_captions, settings):
    """One caption path: the Spark job's caption (gold.captions) answers `POST /v1/captions` by id with
    `cached: true` without running the model or copying it into the catalog, and `GET /v1/images/{id}` shows
    it after the image's human captions."""
    import hashlib

    from lake.catalog import Catalog
    from lake.clients import minio_client
    from lake.tables import BRONZE_BUCKET, bronze_key, silver_key

    tables, write = batch_captions
    data = png(600)
    image_id = hashlib.sha256(data).hexdigest()
    batch = "a caption the batch job wrote"  # no tiny model says this: it can only come from gold
    write(image_id, lake["v1"], batch)
    cat = Catalog(lake["reg"].db)
    cat.upsert_images(
        [
            {
                "_id": image_id,
                "split": "train",
                "captions.human": ["a human caption"],
                "layers.silver": silver_key(image_id),
            }
        ],
        run_id="test",
    )
    mc = minio_client(settings)
    mc.put_object(BRONZE_BUCKET, bronze_key(image_id), io.BytesIO(data), len(data), content_type="image/png")
    svc = service(lake, tables=tables, caption_cache_size=0)
    try:
        with serve(svc) as c:
            r = c.post("/v1/captions", json={"image_id": image_id})
            assert r.status_code == 200, r.text
            assert r.json() == {
                "caption": batch,
                "model_version": lake["v1"],
                "image_id": image_id,
                "cached": True,
                "filtered": None,
            }
            got = c.get(f"/v1/images/{image_id}")
            assert got.status_code == 200, got.text
            body = got.json()
    finally:
        mc.remove_object(BRONZE_BUCKET, bronze_key(image_id))
    assert svc.stats["batches"] == 0 and svc.stats["stored_hits"] == 1 and svc.stats["store_errors"] == 0
    assert cat.stored_caption(image_id, lake["v1"]) is None  # answered from gold, not copied into a second store
    assert (body["image_id"], body["size_bytes"], body["content_type"]) == (image_id, len(data), "image/png")
    assert body["captions"] == [
        {"caption": "a human caption", "origin": "human", "model_version": None, "filtered": None},
        {"caption": batch, "origin": "model", "model_version": lake["v1"], "filtered": None},
    ]
