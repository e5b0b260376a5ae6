"""spark_jobs/silver/normalize_images.transform on a local SparkSession, bytes from a dict (no servers)."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta

import pandas as pd
import pytest
from PIL import Image

from lake.datasets.shapes import generate
from lake.normalize import normalize_image, split_of
from spark_jobs.silver.normalize_images import (
    RESULT_COLUMNS,
    RESULT_SCHEMA,
    group_events,
    merge_captions,
    normalize_partition,
    store,
    transform,
)
from tests.utils.images import truncated_jpeg

T0 = datetime(2026, 1, 2, 3, 4, 5)


def _id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def corpus():
    """20 Shapes images, one truncated JPEG and one id whose bytes are missing: (store, events)."""
    samples = list(generate(20, seed=3))
    store = {_id(s.data): s.data for s in samples}
    bad = truncated_jpeg()
    store[_id(bad)] = bad
    missing = "0" * 64
    events = [
        dict(
            event_id=f"e{i:03d}",
            image_id=_id(s.data),
            source="api",
            captions=list(s.captions),
            ingested_at=T0 + timedelta(minutes=i),
            content_type="image/png",
        )
        for i, s in enumerate(samples)
    ]
    dup = _id(samples[0].data)  # seen again later from a phone, with a caption typed differently and a new one
    events += [
        dict(
            event_id="e900",
            image_id=dup,
            source="mobile",
            ingested_at=T0 + timedelta(days=1),
            captions=["  " + samples[0].captions[0].upper().replace(" ", "\t ") + "  ", "My Photo"],
            content_type="image/png",
        ),
        dict(
            event_id="e901", image_id=_id(bad), source="api", captions=None, ingested_at=T0, content_type="image/jpeg"
        ),
        dict(event_id="e902", image_id=missing, source="api", captions=[], ingested_at=T0, content_type="image/png"),
    ]
    return samples, store, events, dup, _id(bad), missing


def test_merge_captions_cleans_and_dedups_in_order():
    assert merge_captions(["B  b", None, "a", "b b", " ", "A"]) == ["b b", "a"]
    assert merge_captions(None) == []


def test_normalize_partition_without_spark(corpus):
    samples, store, _, _, bad, missing = corpus
    ids = [_id(samples[1].data), bad, missing, _id(samples[2].data)]
    grouped = pd.DataFrame(
        {
            "image_id": ids,
            "sightings": [1] * 4,
            "first_seen_at": [pd.Timestamp(T0)] * 4,
            "last_seen_at": [pd.Timestamp(T0)] * 4,
            "sources": [["api"]] * 4,
            "event_ids": [["e1"]] * 4,
            "raw_captions": [["x"], [], None, ["y", "Y"]],
        }
    )
    (out,) = list(normalize_partition(iter([grouped]), store.get))
    assert list(out.columns) == [name for name, _ in RESULT_COLUMNS] and list(out.image_id) == ids
    assert list(out.ok) == [True, False, False, True]
    assert list(out.reason) == [None, "corrupt_image", "missing_object", None]
    assert out.captions[3] == ["y"] and out.captions[2] == []

    tampered = {ids[0]: samples[2].data}  # the object under an id is not the bytes of that id
    (out,) = list(normalize_partition(iter([grouped.head(1)]), tampered.get))
    assert out.reason[0] == "checksum_mismatch"


def test_an_unforeseen_decoder_error_quarantines_the_image_and_a_store_error_fails_the_task(corpus, monkeypatch):
    import lake.normalize

    samples, store, *_ = corpus
    grouped = pd.DataFrame(
        {
            "image_id": [_id(samples[1].data)],
            "sightings": [1],
            "first_seen_at": [pd.Timestamp(T0)],
            "last_seen_at": [pd.Timestamp(T0)],
            "sources": [["api"]],
            "event_ids": [["e1"]],
            "raw_captions": [["x"]],
        }
    )

    def boom(*a, **kw):
        raise struct_error("unpack requires a buffer of 4 bytes")

    from struct import error as struct_error

    monkeypatch.setattr(lake.normalize, "normalize_image", boom)
    (out,) = list(normalize_partition(iter([grouped]), store.get))
    assert (out.ok[0], out.reason[0]) == (False, "unprocessable") and "unpack" in out.error[0]

    def down(image_id):
        raise ConnectionError("minio is down")

    with pytest.raises(ConnectionError):
        list(normalize_partition(iter([grouped]), down))


def test_transform(local_spark, corpus):
    samples, store, events, dup, bad, missing = corpus
    df = local_spark.createDataFrame(pd.DataFrame(events)).selectExpr(
        "event_id",
        "image_id",
        "source",
        "CAST(captions AS array<string>) AS captions",
        "CAST(ingested_at AS timestamp) AS ingested_at",
        "content_type",
    )
    out = transform(group_events(df), lambda: store.get, partitions=2)
    assert out.schema.simpleString() == local_spark.createDataFrame([], RESULT_SCHEMA).schema.simpleString()
    rows = {r.image_id: r for r in out.collect()}

    assert len(rows) == 22 and sum(r.ok for r in rows.values()) == 20
    for s in samples:
        r = rows[_id(s.data)]
        assert r.ok and r.reason is None and (r.width, r.height) == (128, 128) == (r.src_width, r.src_height)
        assert r.src_format == f"image/{'jpeg' if s.fmt == 'jpeg' else 'png'}"
        assert r.bytes_out == len(r.jpeg) and r.sha256_out == hashlib.sha256(r.jpeg).hexdigest()
        assert r.split == split_of(r.image_id) and r.silver_key == f"images/{r.image_id}.jpg"
        assert Image.open(io.BytesIO(r.jpeg)).size == (128, 128)
    assert rows[_id(samples[4].data)].jpeg == normalize_image(samples[4].data).jpeg  # same bytes on an executor

    one = rows[_id(samples[1].data)]
    assert one.sightings == 1 and one.sources == ["api"] and one.captions == list(samples[1].captions)
    assert one.first_seen_at == one.last_seen_at == T0 + timedelta(minutes=1)

    d = rows[dup]  # two events, one row
    assert d.sightings == 2 and d.sources == ["api", "mobile"]
    assert d.captions == [*samples[0].captions, "my photo"]  # the re-typed one is a repeat
    assert (d.first_seen_at, d.last_seen_at) == (T0, T0 + timedelta(days=1))

    for iid, reason in ((bad, "corrupt_image"), (missing, "missing_object")):
        r = rows[iid]
        assert not r.ok and r.reason == reason and r.error and r.jpeg is None and r.width is None
        assert r.sightings == 1 and r.captions == [] and r.split == split_of(iid)
    assert len({r.split for r in rows.values()}) >= 2


def test_failed_rows_only(local_spark):
    """A batch of nothing but failures still fits the schema (no NaN in int or array columns)."""
    df = local_spark.createDataFrame(
        [("e1", "1" * 64, "api", None, T0)],
        "event_id string, image_id string, source string, captions array<string>, ingested_at timestamp",
    )
    (r,) = transform(group_events(df), lambda: {}.get).collect()
    assert not r.ok and r.reason == "missing_object" and r.captions == [] and r.bytes_out is None


def test_store_puts_good_jpegs_and_drops_the_column(local_spark, corpus, tmp_path):
    samples, store_, events, _, bad, _ = corpus
    df = local_spark.createDataFrame(
        [
            (e["event_id"], e["image_id"], e["source"], e["captions"], e["ingested_at"])
            for e in events[:3] + events[-2:-1]
        ],
        "event_id string, image_id string, source string, captions array<string>, ingested_at timestamp",
    )

    def put_factory():  # local mode: the executors share this file system
        def put(key, jpeg, image_id, sha256):
            (tmp_path / f"{image_id}.jpg").write_bytes(jpeg)
            (tmp_path / f"{image_id}.key").write_text(f"{key} {sha256}")

        return put

    rows = store(transform(group_events(df), lambda: store_.get), put_factory).collect()
    assert "jpeg" not in rows[0].asDict() and len(rows) == 4
    for r in rows:
        if r.ok:
            assert hashlib.sha256((tmp_path / f"{r.image_id}.jpg").read_bytes()).hexdigest() == r.sha256_out
            assert (tmp_path / f"{r.image_id}.key").read_text() == f"{r.silver_key} {r.sha256_out}"
    assert [r.image_id for r in rows if not r.ok] == [bad] and not (tmp_path / f"{bad}.jpg").exists()
