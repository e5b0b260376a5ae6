"""The one caption path without servers: the real app and CaptionService on stand-ins for the catalog, the
registry, Trino and MinIO. A caption is answered from this process's cache, then the catalog (what the API
computed), then gold.captions (what the batch job computed, for an image named by id), and only then
computed; `GET /v1/images/{id}` shows the human captions and the served model's. The same against the real
stores: test_captions.py::test_an_image_the_batch_job_captioned_is_answered_from_gold_and_shown.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/services/api/test_caption_path.py
"""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from minio.error import S3Error
from trino.exceptions import TrinoUserError

from lake.captions import BATCH_FILTERED, batch_caption, find_caption, human_captions
from lake.config import Settings
from lake.tables import BRONZE_BUCKET, SILVER_BUCKET, bronze_key, silver_key
from services.api.caption_service import CaptionService
from services.api.deps import get_minio
from services.api.main import create_app
from services.api.model_watcher import Loaded
from tests.services.api.helpers import png
from tests.utils.images import API_KEY

VERSION = "tiny-v1"
GOLD = "a caption the batch job wrote"
TABLE = Settings(_env_file=None).tables.captions  # gold.captions


class Catalog:
    """What the API asks of lake.catalog.Catalog: stored captions and image documents."""

    def __init__(self):
        self.captions: dict[str, dict] = {}
        self.images: dict[str, dict] = {}

    def stored_caption(self, image_id, model_version):
        return self.captions.get(f"{image_id}:{model_version}")

    def store_caption(self, image_id, model_version, caption, filtered, source="api"):
        self.captions.setdefault(
            f"{image_id}:{model_version}", {"caption": caption, "filtered": filtered, "source": source}
        )

    def image(self, image_id):
        return self.images.get(image_id)


class Registry:
    def get(self, spec):
        return {"_id": VERSION}


class Captioner:
    def __init__(self):
        self.calls = 0

    def caption(self, images, batch_size=1):
        self.calls += 1
        return ["a computed caption"] * len(images)


class Trino:
    """gold.captions as rows; records every statement."""

    def __init__(self, rows=None):
        self.rows, self.sql = dict(rows or {}), []

    def __call__(self, sql, params):
        self.sql.append((sql, list(params)))
        hit = self.rows.get(tuple(params))
        return [[hit]] if hit is not None else []


class Minio:
    def __init__(self, objects):
        self.objects = objects

    def _missing(self, bucket, key):
        return S3Error(None, "NoSuchKey", "missing", f"/{bucket}/{key}", "r", "h", bucket, key)

    def stat_object(self, bucket, key):
        if (bucket, key) not in self.objects:
            raise self._missing(bucket, key)
        return type("Stat", (), {"size": len(self.objects[bucket, key]), "content_type": "image/png"})()

    def get_object(self, bucket, key, offset=0, length=0):
        if (bucket, key) not in self.objects:
            raise self._missing(bucket, key)
        data = self.objects[bucket, key]
        return type(
            "Resp",
            (),
            {
                "read": lambda self: data[:length] if length else data,
                "close": lambda self: None,
                "release_conn": lambda self: None,
            },
        )()


class Service(CaptionService):
    def _consume(self) -> None:  # no Kafka here
        pass


@pytest.fixture
def lake():
    """(client, service, catalog, trino, captioner, minio objects, image id of a PNG in bronze and silver)."""
    data = png(7)
    image_id = hashlib.sha256(data).hexdigest()
    catalog, trino, captioner = Catalog(), Trino(), Captioner()
    objects = {(BRONZE_BUCKET, bronze_key(image_id)): data, (SILVER_BUCKET, silver_key(image_id)): data}
    s = Settings(
        _env_file=None,
        caption_model=VERSION,
        caption_poll_s=3600,
        kafka_bootstrap="127.0.0.1:9",
        mongo_uri="mongodb://127.0.0.1:9/",
        s3_endpoint="http://127.0.0.1:9",
    )
    svc = Service(s, registry=Registry, catalog=lambda: catalog)
    svc._trino = trino
    svc.watcher.current = Loaded(VERSION, captioner)  # loaded: the watcher finds the same version, no load
    app = create_app(svc)
    app.dependency_overrides[get_minio] = lambda: Minio(objects)
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        yield c, svc, catalog, trino, captioner, objects, image_id


def test_a_caption_the_batch_job_wrote_is_answered_without_the_model(lake):
    c, svc, catalog, trino, captioner, _, image_id = lake
    trino.rows[(image_id, VERSION)] = GOLD
    r = c.post("/v1/captions", json={"image_id": image_id})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "caption": GOLD,
        "model_version": VERSION,
        "image_id": image_id,
        "cached": True,
        "filtered": None,
    }
    assert captioner.calls == 0 and svc.stats["batches"] == 0
    assert svc.stats["stored_hits"] == 1 and catalog.captions == {}  # not copied into the catalog
    [(sql, params)] = trino.sql
    assert f"FROM {svc.settings.tables.captions} " in sql and params == [image_id, VERSION]


def test_an_upload_of_an_image_silver_has_is_answered_from_gold(lake):
    c, _, catalog, trino, captioner, _, _ = lake
    data = png(9)
    image_id = hashlib.sha256(data).hexdigest()
    catalog.images[image_id] = {"_id": image_id, "captions": {"human": ["a red circle"]}}
    trino.rows[(image_id, VERSION)] = GOLD
    body = c.post("/v1/captions", files={"file": ("again.png", data)}).json()
    assert body["caption"] == GOLD and body["cached"] is True and captioner.calls == 0
    assert [p for _, p in trino.sql] == [[image_id, VERSION]]


def test_the_catalog_is_asked_before_gold_and_the_model_last(lake):
    c, _, catalog, trino, _, _, image_id = lake
    catalog.store_caption(image_id, VERSION, "what a replica computed", None)
    trino.rows[(image_id, VERSION)] = GOLD
    assert c.post("/v1/captions", json={"image_id": image_id}).json()["caption"] == "what a replica computed"
    assert trino.sql == []

    other = hashlib.sha256(b"other").hexdigest()
    assert c.post("/v1/captions", files={"file": ("x.png", png(8))}).json()["cached"] is False
    assert trino.sql == []  # an upload silver does not have: no Trino round trip for it
    upload = hashlib.sha256(png(8)).hexdigest()
    assert catalog.stored_caption(upload, VERSION)["caption"] == "a computed caption"  # stored for the next one
    assert c.post("/v1/captions", files={"file": ("x.png", png(8))}).json()["cached"] is True  # this process's cache
    r = c.post("/v1/captions", json={"image_id": other})
    assert r.status_code == 404 and r.json()["detail"]["reason"] == "not_found"  # gold asked, silver has none
    assert [p for _, p in trino.sql] == [[other, VERSION]]


def test_get_image_shows_human_and_model_captions(lake):
    c, _, catalog, trino, _, _, image_id = lake
    catalog.images[image_id] = {"_id": image_id, "captions": {"human": ["a red circle", "a round red thing"]}}
    r = c.get(f"/v1/images/{image_id}")
    assert r.status_code == 200, r.text
    assert r.json()["captions"] == [
        {"caption": "a red circle", "origin": "human", "model_version": None, "filtered": None},
        {"caption": "a round red thing", "origin": "human", "model_version": None, "filtered": None},
    ]
    trino.rows[(image_id, VERSION)] = GOLD
    body = c.get(f"/v1/images/{image_id}").json()
    assert body["captions"][-1] == {"caption": GOLD, "origin": "model", "model_version": VERSION, "filtered": None}
    assert (body["width"], body["height"], body["size_bytes"]) == (48, 48, len(png(7)))
    assert c.get(f"/v1/images/{'0' * 64}").status_code == 404


def test_an_unreachable_store_is_a_miss_not_an_error(lake):
    c, svc, *_, image_id = lake

    def down(sql, params):
        raise ConnectionError("Trino is down")

    svc._trino = down
    r = c.post("/v1/captions", json={"image_id": image_id})
    assert r.status_code == 200 and r.json()["cached"] is False and svc.stats["store_errors"] == 1
    assert c.get(f"/v1/images/{image_id}").status_code == 200


def test_lake_captions_functions():
    catalog, trino = Catalog(), Trino({("a" * 64, VERSION): ""})
    assert (
        find_caption(catalog=catalog, table=TABLE, image_id="a" * 64, model_version=VERSION, query=trino).filtered
        == BATCH_FILTERED
    )  # the job keeps a withheld caption as ""
    catalog.store_caption("a" * 64, VERSION, "", "blocklist")
    hit = find_caption(catalog=catalog, table=TABLE, image_id="a" * 64, model_version=VERSION, query=trino)
    assert (hit.caption, hit.filtered, hit.source) == ("", "blocklist", "api")
    assert human_captions(catalog=catalog, image_id="b" * 64) == []

    def missing(sql, params):
        raise TrinoUserError({"errorName": "TABLE_NOT_FOUND", "message": "no table"})

    assert batch_caption(table=TABLE, image_id="a" * 64, model_version=VERSION, query=missing) is None

    def broken(sql, params):
        raise TrinoUserError({"errorName": "SYNTAX_ERROR", "message": "bad"})

    with pytest.raises(TrinoUserError):
        batch_caption(table=TABLE, image_id="a" * 64, model_version=VERSION, query=broken)


def test_shutdown_closes_the_clients_it_built(monkeypatch):
    """The app's stores close the MongoDB client they made; a catalog a test handed in stays open."""
    from services.api.stores import Stores

    closed = []

    class Client:
        def close(self):
            closed.append("mongo")

    class Db:
        client = Client()

    import lake.catalog

    monkeypatch.setattr(lake.catalog.Catalog, "connect", classmethod(lambda cls, s=None: cls(Db())))
    s = Settings(_env_file=None)
    built = Stores(lambda: s)
    assert built.catalog() is built.catalog()  # one per process
    built.close()
    given = Stores(lambda: s, catalog=lambda: lake.catalog.Catalog(Db()))
    given.catalog()
    given.close()
    assert closed == ["mongo"]
