"""lake.search_index against the real stack: captions read through Trino from a scratch lake's
`image_captions` view, embedded with the real sentence model, published to MinIO (a scratch prefix of
the gold bucket), the run recorded in a scratch catalog under the advisory lock; a re-run does nothing,
new images are added as a new version, and the API's SearchService loads it and finds an image by its
caption.

    .lake/venvs/core/bin/python -m pytest tests/lake/test_search_stack.py -q -p no:cacheprovider
"""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def scratch(spark):
    import lake.search_index as si
    from lake.clients import minio_client
    from lake.datasets.shapes import generate
    from spark_jobs.gold import build_gold
    from tests.lake.test_training import land
    from tests.utils.bronze import scratch_lake
    from tests.utils.images import RUN

    name = f"t{uuid.uuid4().hex[:10]}"
    with scratch_lake(spark, name) as lake, pytest.MonkeyPatch.context() as mp:
        land(spark, lake, list(generate(12, seed=int(RUN[6:12], 16) + 5)), 0)
        build_gold.run(spark, tables=lake.gold, catalog=lake.catalog)  # the views, image_captions among them
        prefix = f"test-{name}/"
        mp.setattr(si, "PREFIX", prefix)
        mp.setattr(si, "POINTER", prefix + "current.json")
        try:
            yield lake, name
        finally:
            mc = minio_client()
            for o in mc.list_objects(si.BUCKET, prefix=prefix, recursive=True):
                mc.remove_object(si.BUCKET, o.object_name)


def test_index_publish_rerun_add_and_serve(scratch, spark, tmp_path):
    import lake.search_index as si
    from lake.clients import minio_client, trino_query
    from lake.datasets.shapes import generate
    from services.api.search_service import SearchService
    from tests.lake.test_training import land
    from tests.utils.images import RUN

    lake, _ = scratch
    first = si.build(catalog=lake.catalog, cache=tmp_path / "c1", tables=lake.gold)
    assert first["status"] == "indexed" and first["version"] == 1 and first["size"] == 12
    names = {o.object_name.rsplit("/", 1)[1] for o in minio_client().list_objects(si.BUCKET, si.PREFIX + "v1/")}
    assert "rows.parquet" in names and si.read_pointer(minio_client())["version"] == 1
    assert lake.catalog.last_run(si.JOB)["outputs"]["version"] == 1

    again = si.build(catalog=lake.catalog, cache=tmp_path / "c2", tables=lake.gold)
    assert again["status"] == "nothing to do" and again["version"] == 1

    land(spark, lake, list(generate(3, seed=int(RUN[6:12], 16) + 6)), 100)
    from spark_jobs.gold import build_gold

    build_gold.run(spark, tables=lake.gold, catalog=lake.catalog)
    added = si.build(catalog=lake.catalog, cache=tmp_path / "c3", tables=lake.gold)
    assert added["status"] == "indexed" and added["version"] == 2 and added["size"] == 15
    assert added["counts"]["new"] == 3

    image_id, caption = trino_query(
        f"SELECT image_id, caption FROM {si.source_table(lake.gold)} ORDER BY image_id LIMIT 1"
    )[0]
    svc = SearchService(poll_s=0.5).start()
    try:
        deadline = time.monotonic() + 60
        while svc.current is None or svc.current.version != 2:
            assert time.monotonic() < deadline, svc.state
            time.sleep(0.2)
        version, hits = svc.search(caption, 15)
        assert version == 2 and hits[0].caption == caption
        assert image_id in {h.image_id for h in hits if h.caption == caption}
        assert svc.similar(image_id, 3)[1]
    finally:
        svc.stop()
