"""spark_jobs/gold/caption_images.caption_partition with a fake captioner and an in-memory fetch (no Spark,
no model): a silver object that is missing or does not decode is set aside with its reason, the rest of
its batch is captioned, and a failing store still fails the task."""

from __future__ import annotations

import pandas as pd
import pytest

from lake.datasets.shapes import generate
from lake.normalize import normalize_image
from spark_jobs.gold import caption_images


class FakeCaptioner:
    """Captions an image with its size; records the batches it was given."""

    def __init__(self):
        self.batches: list[int] = []

    def caption(self, images, batch_size=32):
        self.batches.append(len(images))
        return [f"a {im.width} by {im.height} {im.mode} picture" for im in images]


@pytest.fixture
def captioner(monkeypatch):
    fake = FakeCaptioner()
    monkeypatch.setattr(caption_images, "_captioner", lambda model: fake)
    return fake


def frames(keys: list[str]) -> list[pd.DataFrame]:
    return [pd.DataFrame({"image_id": [k.split("/")[1][:8] for k in keys], "silver_key": keys})]


def run(keys, fetch, batch_size=32) -> pd.DataFrame:
    out = caption_images.caption_partition(iter(frames(keys)), "unused", "fake-v1", fetch, batch_size)
    return pd.concat(list(out), ignore_index=True)


def test_missing_and_corrupt_images_are_set_aside_and_the_rest_captioned(captioner):
    good = [normalize_image(s.data).jpeg for s in generate(3, seed=2)]
    jpegs = {
        "images/good0000.jpg": good[0],
        "images/good1111.jpg": good[1],
        "images/trunc000.jpg": good[2][: len(good[2]) // 2],  # a truncated object
        "images/rotten00.jpg": b"\x00" * 20 + good[2][20:],  # bit rot over the JPEG header
    }
    keys = ["images/good0000.jpg", "images/missing0.jpg", "images/trunc000.jpg", "images/rotten00.jpg"]
    keys.append("images/good1111.jpg")
    out = run(keys, jpegs.get).set_index("image_id")

    assert list(out.columns) == caption_images.RESULT_COLUMNS[1:] and len(out) == 5
    assert set(out.model_version) == {"fake-v1"}
    for ok in ("good0000", "good1111"):
        assert out.caption[ok].endswith("RGB picture") and pd.isna(out.reason[ok]) and pd.isna(out.error[ok])
    assert captioner.batches == [2]  # one generate call, with the two images that decoded
    assert out.reason["missing0"] == "missing_object" and "images/missing0.jpg" in out.error["missing0"]
    for bad in ("trunc000", "rotten00"):
        assert out.reason[bad] == "corrupt_image" and pd.isna(out.caption[bad])
    assert "truncated" in out.error["trunc000"].lower()
    assert out.error["rotten00"].startswith("UnidentifiedImageError")


def test_a_batch_with_nothing_to_caption_calls_no_model(captioner):
    out = run(["images/missing0.jpg", "images/missing1.jpg"], {}.get, batch_size=1)
    assert list(out.reason) == ["missing_object", "missing_object"] and out.caption.isna().all()
    assert captioner.batches == []


def test_a_failing_store_fails_the_task(captioner):
    def fetch(key):
        raise ConnectionError("MinIO is down")

    with pytest.raises(ConnectionError, match="MinIO is down"):
        run(["images/good0000.jpg"], fetch)
