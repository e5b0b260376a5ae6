"""`lake datasets coco import` and `lake ingest --captions` against the real MinIO and Kafka
(integration): the events each command publishes, read back from a topic of the test's own.

.lake/venvs/core/bin/pytest -m integration tests/lake/test_ingest_stack.py

Each test has its own topic and state dir (so its own ingest journal), never the user's: its
events reach no lake table. The bronze objects are the user's bucket's (there is one), made
of bytes unique to this run, and removed again afterwards.
"""

from __future__ import annotations

import hashlib
import json
import types
import uuid

import pytest
from kafka import KafkaConsumer
from kafka.admin import NewTopic
from typer.testing import CliRunner

from lake.cli import app
from lake.clients import kafka_admin, minio_client
from lake.config import get_settings
from lake.tables import BRONZE_BUCKET, bronze_key
from tests.utils.images import RUN, png

pytestmark = pytest.mark.integration


@pytest.fixture
def lake_env(stack_up, unique, tmp_path, monkeypatch):
    """The CLI's settings pointed at a topic and a state dir of this test's own."""
    with kafka_admin(stack_up) as admin:
        admin.create_topics([NewTopic(unique, 1, 1)])
    monkeypatch.setenv("LAKE_TOPIC_UPLOADS", unique)
    monkeypatch.setenv("LAKE_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    made: list[bytes] = []
    yield unique, made
    get_settings.cache_clear()
    mc = minio_client(stack_up)
    for data in made:
        mc.remove_object(BRONZE_BUCKET, bronze_key(hashlib.sha256(data).hexdigest()))
    with kafka_admin(stack_up) as admin:
        admin.delete_topics([unique])


def _image(made: list[bytes], name: str) -> bytes:
    data = png(note=f"{RUN}-{uuid.uuid4().hex}-{name}")
    made.append(data)
    return data


def _events(topic: str) -> list[dict]:
    s = get_settings()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        isolation_level="read_committed",
    )
    try:
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def coco(lake_env, tmp_path):
    """A COCO captions file naming ``val/x.png``, ``y.png`` and ``val/gone.png`` (not on disk)."""
    topic, made = lake_env
    imgs = tmp_path / "coco"
    (imgs / "val").mkdir(parents=True)
    x, y = _image(made, "x"), _image(made, "y")
    (imgs / "val" / "x.png").write_bytes(x)
    (imgs / "y.png").write_bytes(y)
    doc = {
        "images": [
            {"id": 1, "file_name": "val/x.png"},
            {"id": 2, "file_name": "y.png"},
            {"id": 3, "file_name": "val/gone.png"},
        ],
        "annotations": [
            {"image_id": 1, "caption": "a red sqare"},
            {"image_id": 2, "caption": "a red square too"},
            {"image_id": 3, "caption": "never seen"},
        ],
    }
    ann = tmp_path / "captions.json"
    ann.write_text(json.dumps(doc))
    ids = {"x": hashlib.sha256(x).hexdigest(), "y": hashlib.sha256(y).hexdigest()}
    return types.SimpleNamespace(topic=topic, imgs=imgs, doc=doc, ann=ann, ids=ids)


def _import(c):
    return _cli("datasets", "coco", "import", str(c.ann), str(c.imgs), "--source", "coco")


def test_coco_import_keeps_the_captions_of_file_names_with_folders(coco):
    result = _import(coco)
    assert result.exit_code == 0, result.output
    sent = {e["image_id"]: e for e in _events(coco.topic)}
    assert set(sent) == set(coco.ids.values())
    assert sent[coco.ids["x"]]["captions"] == ["a red sqare"]
    assert sent[coco.ids["y"]]["captions"] == ["a red square too"]
    assert all(e["bronze_key"] == bronze_key(e["image_id"]) and e["signature"] for e in sent.values())


def test_coco_import_names_each_missing_file(coco):
    result = _import(coco)
    assert result.exit_code == 0, result.output
    assert f"missing val/gone.png: no such file in {coco.imgs}" in result.output
    assert "1 of 3 images are missing" in result.output


def test_coco_reimport_sends_only_images_whose_captions_changed(coco):
    assert _import(coco).exit_code == 0
    first = {e["event_id"] for e in _events(coco.topic)}
    again = _import(coco)  # the same file again: nothing new is sent
    assert again.exit_code == 0 and len(_events(coco.topic)) == 2, again.output

    # a corrected caption and an added one: only x goes again, with both, under a new event id
    coco.doc["annotations"][0]["caption"] = "a red square"
    coco.doc["annotations"].append({"image_id": 1, "caption": "a square, red"})
    coco.ann.write_text(json.dumps(coco.doc))
    fixed = _import(coco)
    assert fixed.exit_code == 0, fixed.output
    events = _events(coco.topic)
    (new,) = [e for e in events if e["event_id"] not in first]
    assert len(events) == 3 and new["image_id"] == coco.ids["x"]
    assert new["captions"] == ["a red square", "a square, red"]


def test_lake_ingest_sends_a_file_again_when_its_sidecar_captions_change(lake_env, tmp_path):
    topic, made = lake_env
    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    a, b = _image(made, "a"), _image(made, "b")
    (photos / "2024" / "a.png").write_bytes(a)
    (photos / "b.png").write_bytes(b)
    side = tmp_path / "captions.json"
    side.write_text(json.dumps({"2024/a.png": ["a dot"], "b.png": ["a bee"]}))

    first = _cli("ingest", str(photos), "--captions", str(side), "--workers", "2")
    assert first.exit_code == 0, first.output
    assert {e["image_id"]: e["captions"] for e in _events(topic)} == {
        hashlib.sha256(a).hexdigest(): ["a dot"],
        hashlib.sha256(b).hexdigest(): ["a bee"],
    }
    assert "skipped 2" in _cli("ingest", str(photos), "--captions", str(side)).output
    assert len(_events(topic)) == 2

    side.write_text(json.dumps({"2024/a.png": ["a dot"], "b.png": ["a bee", "a honey bee"]}))
    third = _cli("ingest", str(photos), "--captions", str(side))
    assert third.exit_code == 0 and "ingested 1 files" in third.output and "skipped 1" in third.output
    events = _events(topic)
    assert len(events) == 3 and events[-1]["captions"] == ["a bee", "a honey bee"]
    assert len({e["event_id"] for e in events}) == 3


def test_a_rerun_that_lost_its_journal_resends_the_same_event_ids(lake_env, tmp_path, monkeypatch):
    """A crash between the broker's ack and the journal: the re-sent events keep their ids, so the
    stream lands each once (bronze MERGEs on event_id)."""
    topic, made = lake_env
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("p", "q"):
        (photos / f"{name}.png").write_bytes(_image(made, name))
    side = tmp_path / "captions.json"
    side.write_text(json.dumps({"p.png": ["a p"], "q.png": []}))
    assert _cli("ingest", str(photos), "--captions", str(side)).exit_code == 0
    monkeypatch.setenv("LAKE_STATE_DIR", str(tmp_path / "fresh-state"))  # the journal is gone
    get_settings.cache_clear()
    assert _cli("ingest", str(photos), "--captions", str(side)).exit_code == 0
    events = _events(topic)
    assert len(events) == 4 and len({e["event_id"] for e in events}) == 2
