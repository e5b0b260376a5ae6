"""GET /v1/data/examples on a lake of the test's own (real Spark, MinIO, FerretDB, Trino): pages through a
frozen data set by cursor, filters by split and watermark, signs URLs that fetch the silver JPEG, and stays
on its snapshot while the lake moves on.

    .lake/venvs/core/bin/python -m pytest tests/services/api/test_data.py -q -p no:cacheprovider
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.utils.images import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def lake(spark):
    from lake.datasets.shapes import generate
    from tests.lake.test_training import land
    from tests.utils.bronze import scratch_lake
    from tests.utils.images import RUN

    name = f"t{uuid.uuid4().hex[:10]}"
    with scratch_lake(spark, name) as lake:
        land(spark, lake, list(generate(12, seed=int(RUN[6:12], 16) + 3)), 0)
        yield lake, spark


@pytest.fixture(scope="module")
def client(lake):
    from services.api.deps import get_catalog
    from services.api.main import create_app

    app = create_app()
    app.dependency_overrides[get_catalog] = lambda: lake[0].catalog
    return TestClient(app, headers={"X-API-Key": API_KEY})  # no lifespan: the captioner is not needed


def test_pages_cover_the_data_set_once_with_working_urls(client, lake):
    from lake.training import read_examples, resolve_dataset

    ds = resolve_dataset(lake[0].catalog)
    want = [(e.image_id, e.caption_index) for e in read_examples(ds, ["train", "val", "test"])]
    got, after, pages = [], None, 0
    while True:
        r = client.get("/v1/data/examples", params={"limit": 10, **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["dataset"] == ds["_id"] and len(body["rows"]) <= 10
        got += [(row["image_id"], row["caption_index"]) for row in body["rows"]]
        pages, after = pages + 1, body["next"]
        if after is None:
            break
    assert got == want and pages == -(-len(want) // 10) + (len(want) % 10 == 0)
    row = body["rows"][0] if body["rows"] else client.get("/v1/data/examples").json()["rows"][0]
    image = httpx.get(row["url"])
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"  # the silver JPEG


def land_later(spark, scratch, samples, first: int) -> None:
    """`land`, with upload events a day after the first batch's (their `first_seen_at`)."""
    from datetime import timedelta

    from lake.clients import minio_client
    from lake.storage import put_bronze
    from spark_jobs.gold import build_gold
    from spark_jobs.silver import normalize_images
    from tests.utils.bronze import T0, event_row, sha

    for s in samples:
        put_bronze(minio_client(), sha(s.data), s.data, "image/png")
    scratch.append(
        [event_row(first + i, sha(s.data), list(s.captions), at=T0 + timedelta(days=1)) for i, s in enumerate(samples)]
    )
    normalize_images.run(spark, tables=scratch.silver, catalog=scratch.catalog)
    build_gold.run(spark, tables=scratch.gold, catalog=scratch.catalog, with_views=False)


def test_split_watermark_and_snapshot(client, lake, spark):
    from lake.datasets.shapes import generate
    from lake.training import resolve_dataset
    from tests.utils.images import RUN

    scratch = lake[0]
    first = resolve_dataset(scratch.catalog)
    train = client.get("/v1/data/examples", params={"split": "train", "limit": 1000}).json()["rows"]
    assert train and {r["split"] for r in train} == {"train"}
    latest = max(r["first_seen_at"] for r in client.get("/v1/data/examples", params={"limit": 1000}).json()["rows"])
    assert client.get("/v1/data/examples", params={"since": latest}).json()["rows"] == []
    land_later(spark, scratch, list(generate(4, seed=int(RUN[6:12], 16) + 4)), 100)
    newer = client.get("/v1/data/examples", params={"since": latest, "limit": 1000}).json()
    assert newer["dataset"] != first["_id"] and len({r["image_id"] for r in newer["rows"]}) == 4
    old = client.get("/v1/data/examples", params={"dataset": first["_id"], "since": latest}).json()
    assert old["dataset"] == first["_id"] and old["rows"] == []  # the frozen data set did not move


def test_bad_input_is_refused_clearly(client):
    assert client.get("/v1/data/examples", headers={"X-API-Key": "nope"}).status_code == 401
    assert client.get("/v1/data/examples", params={"after": "x' OR 1=1"}).json()["detail"]["reason"] == "bad_cursor"
    assert client.get("/v1/data/examples", params={"dataset": "training_examples@1'; DROP TABLE x"}).status_code == 422
    r = client.get("/v1/data/examples", params={"dataset": "training_examples@12345"})
    assert r.status_code == 404 and r.json()["detail"]["reason"] == "not_found"
    r = client.get("/v1/data/examples", params={"since": "0339-02-18T13:47:13"})  # found by schemathesis
    assert r.status_code == 400 and r.json()["detail"]["reason"] == "bad_since"
    assert client.get("/v1/data/examples", params={"split": "everything"}).status_code == 422
    assert client.get("/v1/data/examples", params={"limit": 5000}).status_code == 422


def test_cors_is_off_by_default(client):
    """No cross-origin grants: a browser page elsewhere cannot read the API with a user's key."""
    r = client.options(
        "/v1/data/examples", headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/v1/data/examples", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "since",
    [
        "9999-12-31T23:59:59-23:59",  # past 9999 in UTC
        "0001-01-01T00:00:00+23:59",  # before year 1 in UTC
        "9999-12-31T23:59:59.999999-00:01",
        "1970-01-01T00:00:00+00:01",  # 1969 in UTC
    ],
)
def test_a_since_that_leaves_the_calendar_in_utc_is_bad_since(since):
    """No lake needed: refused before any look-up (it answered 500: the offset overflowed Python's datetime)."""
    from services.api.main import create_app

    client = TestClient(create_app(), headers={"X-API-Key": API_KEY}, raise_server_exceptions=False)
    r = client.get("/v1/data/examples", params={"since": since})
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["reason"] == "bad_since"
