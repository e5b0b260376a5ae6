"""lake/storage.py against the real MinIO: a bronze write is a conditional create, so of many concurrent
writers of the same bytes exactly one is told it created the object.

    .lake/venvs/core/bin/python -m pytest -q tests/lake/test_storage.py -p no:cacheprovider
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lake.storage import object_size, put_bronze, read_object
from tests.utils.images import RUN, png

pytestmark = pytest.mark.integration

BRONZE = "bronze"


@pytest.fixture(scope="module")
def mc(stack_up):
    from lake.clients import minio_client

    return minio_client(stack_up)


def test_16_concurrent_writers_of_the_same_bytes_one_creates(mc):
    data = png(9, 4, "olive", note=f"{RUN}-storage-race")
    image_id = hashlib.sha256(data).hexdigest()
    start = threading.Barrier(16)

    def one(_):
        start.wait()  # all at once: each stats "missing" before any put lands
        return put_bronze(mc, image_id, data, "image/png")

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(16)))
    assert got.count(True) == 1, got
    assert read_object(mc, BRONZE, f"images/{image_id}") == data
    st = mc.stat_object(BRONZE, f"images/{image_id}")
    assert st.content_type == "image/png"
    assert put_bronze(mc, image_id, data, "image/png") is False  # and again later


def test_a_wrong_object_under_the_key_is_repaired(mc):
    import io

    data = png(9, 5, "olive", note=f"{RUN}-storage-repair")
    image_id = hashlib.sha256(data).hexdigest()
    mc.put_object(BRONZE, f"images/{image_id}", io.BytesIO(b"xx"), 2)  # not what the key's sha256 names
    assert put_bronze(mc, image_id, data, "image/png") is False
    assert object_size(mc, BRONZE, f"images/{image_id}") == len(data)
