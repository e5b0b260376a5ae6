"""The silver job against the real Spark, Iceberg-on-MinIO, MongoDB-protocol server and Trino,
on tables and a catalog database of the test's own."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image

from lake.clients import minio_client, trino_query
from lake.datasets.shapes import generate
from lake.storage import object_size, put_bronze
from spark_jobs.silver import normalize_images as job
from tests.utils.bronze import T0, event_row, formats, note, save, scratch_lake, sha
from tests.utils.images import RUN, noise_jpeg

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def lake(spark):
    """(tables, catalog, append(events)) in a namespace of this module's own."""
    import uuid

    with scratch_lake(spark, f"t{uuid.uuid4().hex[:10]}") as x:
        yield x.silver, x.catalog, x.append


@pytest.fixture(scope="module")
def landed(spark, lake):
    """12 Shapes images + 7 awkward formats (good), and 3 bad ones, through one silver run."""
    t, cat, append = lake
    mc = minio_client()
    good = {f"shape{i}": s.data for i, s in enumerate(generate(12, seed=int(RUN[:6], 16)))}
    good |= formats()
    captions = {name: [f"  A Caption For {name.upper()} "] for name in good}
    # unique bytes: the API tests check that their (fixed) bad bytes never reach bronze
    cut = noise_jpeg(64, 64, seed=RUN)
    bad = {"truncated": cut[: len(cut) // 2], "html": b"<html>" + RUN.encode() + b"</html>"}
    for data in [*good.values(), *bad.values()]:
        put_bronze(mc, sha(data), data, "application/octet-stream")
    missing = sha(b"never stored " + RUN.encode())
    ids = {name: sha(d) for name, d in {**good, **bad}.items()} | {"missing": missing}
    append([event_row(i, ids[name], captions.get(name), at=T0 + timedelta(minutes=i)) for i, name in enumerate(ids)])
    counts = job.run(spark, tables=t, catalog=cat)
    return good, bad, ids, counts


def test_good_images_land_bad_ones_are_quarantined(spark, lake, landed):
    t, cat, _ = lake
    good, bad, ids, counts = landed
    assert counts == {"events": 22, "normalized": 19, "updated": 0, "quarantined": 3}
    silver = {r.image_id: r for r in spark.table(t.silver).collect()}
    assert set(silver) == {ids[n] for n in good}
    q = {r.image_id: r.reason for r in spark.table(t.quarantine).collect()}
    assert q == {ids["truncated"]: "corrupt_image", ids["html"]: "not_an_image", ids["missing"]: "missing_object"}
    assert silver[ids["rotated_exif_jpeg"]]["width"] == 20 and silver[ids["rotated_exif_jpeg"]]["height"] == 40
    assert silver[ids["one_pixel"]]["width"] == 1 and silver[ids["png_16_bit"]]["src_width"] == 32
    assert silver[ids["shape0"]].captions == ["a caption for shape0"]


def test_silver_jpegs_are_rgb_and_right(lake, landed):
    good, _, ids, _ = landed
    mc = minio_client()
    for name in good:
        img = Image.open(io.BytesIO(mc.get_object("silver", job.silver_key(ids[name])).read()))
        assert img.format == "JPEG" and img.mode == "RGB", name
    cmyk = Image.open(io.BytesIO(mc.get_object("silver", job.silver_key(ids["cmyk_jpeg"])).read()))
    r, g, b = cmyk.getpixel((15, 10))
    assert r > 180 and g < 80 and b < 80  # red, not inverted
    pal = Image.open(io.BytesIO(mc.get_object("silver", job.silver_key(ids["palette_png_transparent"])).read()))
    assert min(pal.getpixel((8, 8))) > 230  # transparent -> white, not black


def test_catalog_documents_point_at_objects_that_exist(lake, landed):
    _, cat, _ = lake
    good, _, ids, _ = landed
    mc = minio_client()
    docs = list(cat.db.images.find({}))
    assert {d["_id"] for d in docs} == {ids[n] for n in good}
    for d in docs:
        for uri in d["layers"].values():
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            assert object_size(mc, bucket, key) is not None, uri
        assert d["split"] in {"train", "val", "test"} and d["lineage"]["event_ids"] and d["lineage"]["run_ids"]
    run = cat.last_run(job.STAGE)
    assert run["counts"]["normalized"] == 19 and run["outputs"]["silver_snapshot"]
    (q,) = cat.quality("silver_images", limit=1)
    assert q["success"] and q["rows"] == 19 and object_size(mc, "warehouse", q["result_uri"].split("/", 3)[3])


def test_rerun_changes_nothing(spark, lake, landed):
    t, cat, _ = lake
    before = [spark.table(f"{x}.snapshots").count() for x in (t.silver, t.quarantine)]
    assert job.run(spark, tables=t, catalog=cat) == {"events": 0, "normalized": 0, "updated": 0, "quarantined": 0}
    assert [spark.table(f"{x}.snapshots").count() for x in (t.silver, t.quarantine)] == before


def test_a_resighting_merges_without_renormalizing(spark, lake, landed):
    t, cat, append = lake
    _, _, ids, _ = landed
    image = ids["shape1"]
    append([event_row(900, image, ["A NEW caption"], source="mobile", at=T0 + timedelta(days=1))])
    counts = job.run(spark, tables=t, catalog=cat)
    assert counts == {"events": 1, "normalized": 0, "updated": 1, "quarantined": 0}
    row = spark.table(t.silver).where(f"image_id = '{image}'").collect()[0]
    assert row.sightings == 2 and row.sources == ["api", "mobile"] and row.captions[-1] == "a new caption"
    doc = cat.image(image)
    assert doc["sightings"] == 2 and len(doc["lineage"]["run_ids"]) == 2
    snaps = spark.table(f"{t.silver}.snapshots").count()
    assert job.run(spark, tables=t, catalog=cat)["updated"] == 0
    assert spark.table(f"{t.silver}.snapshots").count() == snaps


def test_trino_reads_silver(lake, landed):
    t, _, _ = lake
    good, _, _, _ = landed
    ((n, splits),) = trino_query(f"SELECT count(*), count(DISTINCT split) FROM {t.silver}")
    assert n == len(good) and splits >= 1


def test_the_gate_quarantines_rows_that_break_an_expectation(spark, lake, landed):
    """A 5000x2 image kept at full size (max_side 5000) breaks the width <= 4096 expectation."""
    t, cat, append = lake
    wide = save(Image.new("RGB", (5000, 2), (10, 10, 10)), "PNG", pnginfo=note(RUN.encode()))
    put_bronze(minio_client(), sha(wide), wide, "image/png")
    append([event_row(950, sha(wide))])
    counts = job.run(spark, tables=t, catalog=cat, max_side=5000)
    assert counts["quarantined"] == 1 and counts["normalized"] == 0
    (row,) = spark.table(t.quarantine).where(f"image_id = '{sha(wide)}'").collect()
    assert row.reason == "quality_gate" and "expect_column_values_to_be_between(width)" in row.error
    assert object_size(minio_client(), "silver", job.silver_key(sha(wide))) is None  # gate runs before the put
    (q,) = cat.quality("silver_images", limit=1)
    assert not q["success"] and q["failed_rows"] == 1
