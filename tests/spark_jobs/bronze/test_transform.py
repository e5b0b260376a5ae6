"""spark_jobs/bronze/ingest_uploads.transform on a local SparkSession, the bronze bucket a dict (no servers):
inline bytes land in the store under their sha256, claim-checks are looked up there, and every
refused event keeps its Kafka position and the reason.

    .lake/venvs/core/bin/python -m pytest -q tests/spark_jobs/bronze/test_transform.py
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import uuid
from datetime import datetime

import pytest

from lake.datasets.shapes import generate
from lake.events import Reason
from lake.tables import bronze_key
from spark_jobs.bronze.ingest_uploads import RESULT_COLUMNS, check_event, transform

T0 = datetime(2026, 1, 2, 3, 4, 5)
_SEQ = itertools.count()


class DictStore:
    def __init__(self, objects: dict[str, tuple[bytes, str]]) -> None:
        self.objects = objects

    def put(self, image_id: str, data: bytes, content_type: str) -> bool:
        new = image_id not in self.objects
        self.objects[image_id] = (data, content_type)
        return new

    def size(self, image_id: str) -> int | None:
        got = self.objects.get(image_id)
        return None if got is None else len(got[0])


def _event(data: bytes, **over) -> bytes:
    image_id = hashlib.sha256(data).hexdigest()
    ev = {
        "schema_version": 1,
        "event_id": str(uuid.UUID(int=next(_SEQ), version=4)),
        "image_id": image_id,
        "source": "test",
        "content_type": "image/png",
        "size_bytes": len(data),
        "uploaded_at": T0.isoformat() + "Z",
        "captions": ["a red circle"],
        "image_b64": base64.b64encode(data).decode(),
    }
    ev.update(over)
    return json.dumps({k: v for k, v in ev.items() if v is not None}).encode()


@pytest.fixture(scope="module")
def images():
    return [s.data for s in generate(3, seed=11, fmt="png")]


def test_check_event_lands_inline_bytes_and_refuses_with_a_reason(images):
    store = DictStore({})
    ok = check_event(_event(images[0]), store, max_inline_bytes=2**20, max_pixels=10**7)
    image_id = hashlib.sha256(images[0]).hexdigest()
    assert ok["ok"] and ok["image_id"] == image_id and ok["bronze_key"] == bronze_key(image_id)
    assert store.objects[image_id] == (images[0], "image/png") and ok["delivery"] == "inline"
    bad = check_event(b"{not json", store, max_inline_bytes=2**20, max_pixels=10**7)
    assert not bad["ok"] and bad["reason"] == Reason.BAD_JSON and bad["raw_prefix"] == "{not json"
    big = check_event(_event(images[1]), store, max_inline_bytes=100, max_pixels=10**7)
    assert not big["ok"] and hashlib.sha256(images[1]).hexdigest() not in store.objects


def test_transform_checks_every_row_and_keeps_its_offset(local_spark, images):
    objects: dict[str, tuple[bytes, str]] = {}
    present, missing = images[1], images[2]
    objects[hashlib.sha256(present).hexdigest()] = (present, "image/png")
    claim = {"image_b64": None}
    values = [
        _event(images[0]),  # inline: lands
        _event(present, bronze_key=bronze_key(hashlib.sha256(present).hexdigest()), **claim),  # claim-check, there
        _event(missing, bronze_key=bronze_key(hashlib.sha256(missing).hexdigest()), **claim),  # claim-check, absent
        _event(
            present, size_bytes=len(present) + 1, bronze_key=bronze_key(hashlib.sha256(present).hexdigest()), **claim
        ),  # claim-check, wrong size
        b"\xff\xfe not json",
    ]
    rows = [(b"k", v, "uploads", 0, i, T0) for i, v in enumerate(values)]
    kafka = local_spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    out = {r.kafka_offset: r for r in transform(kafka, lambda: DictStore(objects)).collect()}
    assert list(out[0].asDict()) == [name for name, _ in RESULT_COLUMNS]
    assert [out[i].ok for i in range(5)] == [True, True, False, False, False]
    assert [out[i].reason for i in range(2, 5)] == [Reason.MISSING_OBJECT, Reason.CHECKSUM_MISMATCH, Reason.BAD_JSON]
    assert out[0].delivery == "inline" and out[1].delivery == "claim_check"
    assert out[0].captions == ["a red circle"] and out[0].uploaded_at == T0
    assert {r.kafka_topic for r in out.values()} == {"uploads"} and out[4].raw_prefix.endswith("not json")
    # (the inline image went to the Python worker's copy of the store: test_check_event shows the put)
