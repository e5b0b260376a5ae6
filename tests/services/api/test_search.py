"""GET /v1/search and /v1/images/{id}/similar without servers: the router on a bare app, its SearchService fed
an in-memory index and a bag-of-words embedder. 503 + Retry-After until loaded, 4xx on bad input, 404 for an
image not indexed, and a new index version swapped in by the poller."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lake import search as s
from lake.search_index import CaptionIndex, update
from services.api import deps
from services.api import search_service as api
from services.api.routes import search as routes

TEXTS = [
    f"a {size} {colour} {shape}"
    for size in ("small", "large")
    for colour in ("red", "green", "blue")
    for shape in ("circle", "square", "star", "triangle")
]


def embed(texts) -> np.ndarray:
    out = np.zeros((len(texts), 32), np.float32)
    for row, text in enumerate(texts):
        for word in text.split():
            out[row, zlib.crc32(word.encode()) % 32] += 1
    return s.normalize(out)


def image(i: int) -> str:
    return f"{i:064x}"


def index(n: int, version: int) -> CaptionIndex:
    ci, _ = update(None, [(image(i), TEXTS[i % len(TEXTS)]) for i in range(n)], embed, s.IndexConfig(pca_dims=8))
    return CaptionIndex(ci.index, ci.image_ids, ci.captions, version)


def wait_for(svc: api.SearchService, state: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while svc.state != state:
        assert time.monotonic() < end, f"state {svc.state!r}, waiting for {state!r}"
        time.sleep(0.01)


@pytest.fixture
def served():
    """(client, service, versions): ``versions`` is what the store publishes; append to it to publish."""
    versions: list[CaptionIndex] = []

    def check(held):
        if not versions or (held is not None and held.version == versions[-1].version):
            return None
        return versions[-1]

    svc = api.SearchService(check=check, make_embedder=lambda: embed, poll_s=0.02)
    app = FastAPI()
    app.include_router(routes.router)
    app.state.search = svc
    svc.start()
    with TestClient(app) as client:
        yield client, svc, versions
    svc.stop()


def test_503_with_retry_after_until_an_index_is_published(served):
    client, svc, versions = served
    wait_for(svc, "no index yet (run `lake search index`)")
    for url in ("/v1/search?q=a+red+star", f"/v1/images/{image(1)}/similar"):
        r = client.get(url)
        assert r.status_code == 503 and r.headers["retry-after"] == routes.RETRY_AFTER
        assert r.json()["detail"]["reason"] == "not_ready" and "lake search index" in r.json()["detail"]["message"]
    versions.append(index(200, 1))
    wait_for(svc, "ready")
    assert client.get("/v1/search?q=a+red+star").status_code == 200


def test_search_ranks_by_cosine(served):
    client, svc, versions = served
    versions.append(index(200, 1))
    wait_for(svc, "ready")
    r = client.get("/v1/search", params={"q": "a small red star", "k": 5})
    assert r.status_code == 200 and r.headers["x-search-index-version"] == "1"
    hits = r.json()
    assert len(hits) == 5 and set(hits[0]) == {"image_id", "caption", "score"}
    assert all(h["caption"] == "a small red star" for h in hits)  # 200 images, 24 captions: >= 8 exact matches
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert len(client.get("/v1/search", params={"q": "star", "k": 100}).json()) == 100


@pytest.mark.parametrize(
    "params, status",
    [
        ({"q": "star", "k": 0}, 422),
        ({"q": "star", "k": routes.MAX_K + 1}, 422),
        ({"q": "star", "k": "many"}, 422),
        ({}, 422),
        ({"q": ""}, 422),
        ({"q": "x" * (routes.MAX_QUERY + 1)}, 422),
        ({"q": "   "}, 400),
        ({"q": "a\x00b"}, 400),
    ],
)
def test_bad_queries_are_4xx(served, params, status):
    client, svc, versions = served
    versions.append(index(50, 1))
    wait_for(svc, "ready")
    r = client.get("/v1/search", params=params)
    assert r.status_code == status, r.text


def test_similar_images(served):
    client, svc, versions = served
    versions.append(index(200, 1))
    wait_for(svc, "ready")
    r = client.get(f"/v1/images/{image(3)}/similar", params={"k": 4})
    hits = r.json()
    assert r.status_code == 200 and len(hits) == 4 and image(3) not in {h["image_id"] for h in hits}
    assert all(h["caption"] == TEXTS[3] for h in hits)  # images 27, 51, ... share its caption
    r = client.get(f"/v1/images/{image(999)}/similar")
    assert r.status_code == 404 and r.json()["detail"]["reason"] == "not_found"
    assert client.get("/v1/images/not-a-sha256/similar").status_code == 422
    assert client.get(f"/v1/images/{image(3)}/similar", params={"k": 0}).status_code == 422


def test_a_new_version_is_swapped_in(served):
    client, svc, versions = served
    versions.append(index(100, 1))
    wait_for(svc, "ready")
    assert client.get(f"/v1/images/{image(150)}/similar").status_code == 404
    versions.append(index(200, 2))
    end = time.monotonic() + 10
    while svc.current.version != 2:
        assert time.monotonic() < end
        time.sleep(0.01)
    r = client.get(f"/v1/images/{image(150)}/similar")
    assert r.status_code == 200 and r.headers["x-search-index-version"] == "2"
    assert svc.describe() == {"state": "ready", "version": 2, "size": 200, "swaps": 2}


def test_a_failing_store_keeps_serving_what_is_loaded():
    calls = []

    def check(held):
        calls.append(1)
        if len(calls) == 1:
            return index(60, 1)
        raise ConnectionError("MinIO is down")

    svc = api.SearchService(check=check, make_embedder=lambda: embed, poll_s=0.02).start()
    try:
        wait_for(svc, "error: ConnectionError: MinIO is down")
        assert svc.search("a red star", 3)[0] == 1 and len(svc.search("a red star", 3)[1]) == 3
    finally:
        svc.stop()


def test_the_service_starts_on_first_use(monkeypatch):
    started = []

    class Fake(api.SearchService):
        def start(self):
            started.append(self)
            return self

    monkeypatch.setattr(deps, "SearchService", Fake)
    app = FastAPI()
    app.include_router(routes.router)
    with TestClient(app) as client:
        for _ in range(2):
            assert client.get("/v1/search?q=star").status_code == 503
    assert len(started) == 1 and app.state.search is started[0]
