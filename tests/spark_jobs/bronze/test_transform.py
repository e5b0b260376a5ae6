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
from lake.events import ImageUploaded, Reason, parse_upload
from lake.tables import bronze_key
from spark_jobs.bronze.ingest_uploads import RESULT_COLUMNS, check_event, reused_event_ids, transform

T0 = datetime(2026, 1, 2, 3, 4, 5)
_SEQ = itertools.count()
KEYS = ["test-claim-key"]
LIMITS = {"max_inline_bytes": 2**20, "max_pixels": 10**7, "claim_keys": KEYS}


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


def _claim(data: bytes, key: str | None = KEYS[0], **over) -> bytes:
    """A claim-check event for ``data``, signed by ``key`` (None: unsigned), as the API sends it."""
    ev = parse_upload(_event(data, bronze_key=bronze_key(hashlib.sha256(data).hexdigest()), image_b64=None))
    ev = ImageUploaded.model_validate({**ev.model_dump(), **over})
    return (ev.signed(key) if key else ev).to_kafka()[1]


@pytest.fixture(scope="module")
def images():
    return [s.data for s in generate(3, seed=11, fmt="png")]


def test_check_event_lands_inline_bytes_and_refuses_with_a_reason(images):
    store = DictStore({})
    ok = check_event(_event(images[0]), store, **LIMITS)
    image_id = hashlib.sha256(images[0]).hexdigest()
    assert ok["ok"] and ok["image_id"] == image_id and ok["bronze_key"] == bronze_key(image_id)
    assert store.objects[image_id] == (images[0], "image/png") and ok["delivery"] == "inline"
    bad = check_event(b"{not json", store, **LIMITS)
    assert not bad["ok"] and bad["reason"] == Reason.BAD_JSON and bad["raw_prefix"] == "{not json"
    big = check_event(_event(images[1]), store, **{**LIMITS, "max_inline_bytes": 100})
    assert not big["ok"] and hashlib.sha256(images[1]).hexdigest() not in store.objects


def test_transform_checks_every_row_and_keeps_its_offset(local_spark, images):
    objects: dict[str, tuple[bytes, str]] = {}
    present, missing = images[1], images[2]
    objects[hashlib.sha256(present).hexdigest()] = (present, "image/png")
    values = [
        _event(images[0]),  # inline: lands
        _claim(present),  # claim-check, there
        _claim(missing),  # claim-check, absent
        _claim(present, size_bytes=len(present) + 1),  # claim-check, wrong size
        b"\xff\xfe not json",
    ]
    rows = [(b"k", v, "uploads", 0, i, T0) for i, v in enumerate(values)]
    kafka = local_spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    out = {r.kafka_offset: r for r in transform(kafka, lambda: DictStore(objects), claim_keys=KEYS).collect()}
    assert list(out[0].asDict()) == [name for name, _ in RESULT_COLUMNS]
    assert [out[i].ok for i in range(5)] == [True, True, False, False, False]
    assert [out[i].reason for i in range(2, 5)] == [Reason.MISSING_OBJECT, Reason.CHECKSUM_MISMATCH, Reason.BAD_JSON]
    assert out[0].delivery == "inline" and out[1].delivery == "claim_check"
    assert out[0].captions == ["a red circle"] and out[0].client_uploaded_at == T0
    assert {r.kafka_topic for r in out.values()} == {"uploads"} and out[4].raw_prefix.endswith("not json")
    # (the inline image went to the Python worker's copy of the store: test_check_event shows the put)


def test_claim_checks_are_honoured_only_when_signed_by_the_api(images):
    image_id = hashlib.sha256(images[0]).hexdigest()
    store = DictStore({image_id: (images[0], "image/png")})
    assert check_event(_claim(images[0]), store, **LIMITS)["ok"]
    assert check_event(_claim(images[0]), store, **{**LIMITS, "claim_keys": ["rotated", *KEYS]})["ok"]
    for forged in (
        _claim(images[0], key=None),  # unsigned: any producer on the topic could send it
        _claim(images[0], key="a-guess"),
        # signed, then the captions and the user changed on the way
        _claim(images[0]).replace(b'"a red circle"', b'"forged caption"'),
    ):
        row = check_event(forged, store, **LIMITS)
        assert row["reason"] == Reason.UNTRUSTED_CLAIM_CHECK and row["image_id"] == image_id and row["event_id"]


@pytest.mark.parametrize(
    ("at", "reason"),
    [("9999-12-31T23:59:59Z", Reason.BAD_TIMESTAMP), ("0001-01-01T00:00:00Z", Reason.BAD_TIMESTAMP)],
)
def test_a_poison_pill_clock_is_refused_with_its_identity(images, at, reason):
    row = check_event(_event(images[0], uploaded_at=at), DictStore({}), **LIMITS)
    assert (row["ok"], row["reason"]) == (False, reason) and row["event_id"] and row["image_id"]


def test_an_unforeseen_error_refuses_the_event_not_the_stream(images, monkeypatch):
    import lake.images

    def boom(*a, **kw):
        raise ZeroDivisionError("a decoder bug")

    monkeypatch.setattr(lake.images, "inspect_image", boom)
    row = check_event(_event(images[0]), DictStore({}), **LIMITS)
    assert row["reason"] == Reason.UNPROCESSABLE and "ZeroDivisionError" in row["error"] and row["event_id"]


def test_store_errors_are_the_systems_and_propagate(images):
    class Down(DictStore):
        def put(self, *a):
            raise ConnectionError("minio is down")

    with pytest.raises(ConnectionError):
        check_event(_event(images[0]), Down({}), **LIMITS)


def test_reused_event_ids_are_marked_and_replays_are_not(local_spark):
    cols = "event_id string, image_id string, fingerprint string, kafka_partition int, kafka_offset long"
    landed = local_spark.createDataFrame(
        [("e1", "i1", "f1", 0, 0), ("e0", "i0", None, 0, 1)],  # e0 landed before fingerprints were kept
        cols,
    )
    batch = local_spark.createDataFrame(
        [
            ("e1", "i1", "f1", 0, 10),  # e1 again, same content: a replay, lands once (the MERGE)
            ("e1", "i2", "f2", 0, 11),  # e1 for another upload: reused
            ("e2", "i3", "f3", 1, 5),  # new: the first in the batch wins
            ("e2", "i4", "f4", 1, 6),  # reused within the batch
            ("e2", "i3", "f3", 1, 7),  # the winner again: fine
            ("e0", "i0", "fx", 0, 12),  # same image as the old row: not reused
            ("e0", "i9", "fy", 0, 13),  # another image: reused
        ],
        cols,
    )
    rows = reused_event_ids(batch, landed).collect()
    assert {r.kafka_offset: r.reused for r in rows} == {
        10: False,
        11: True,
        5: False,
        6: True,
        7: False,
        12: False,
        13: True,
    }
    assert {r.kafka_offset for r in rows if r.seen} == {10, 11, 12, 13}  # landed before: nothing to append
