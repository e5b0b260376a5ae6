"""A bounded load test through the real API on loopback, then a replay of the whole topic.

2,000 distinct small images from 16 concurrent clients: zero errors, every one in bronze
after a drain; then the stream from a fresh checkpoint over the whole topic adds nothing.

    pytest -m reliability tests/reliability/test_load_and_replay.py -s     # -s prints the figures
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.lane import Uploads, api_server, images, open_lane, upload

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]

UPLOADS, CLIENTS = 2_000, 16  # the throughput figures at scale are `make bench`'s (bench/ingest)


@pytest.fixture(scope="module")
def loaded(rel_stack, tmp_path_factory):
    """A lane that took UPLOADS uploads through the API and was drained into bronze."""
    with open_lane(rel_stack, tmp_path_factory.mktemp("load") / "logs") as lane:
        datas = images(UPLOADS)
        result = Uploads()
        with api_server(lane) as client:
            upload(client, lane, datas[0], result)  # warms the connection and the API's producer
            t = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(lambda d: upload(client, lane, d, result), datas[1:]))
            wall = time.perf_counter() - t
        t = time.perf_counter()
        lane.drain()
        drain = time.perf_counter() - t
        lat = sorted(result.latencies)
        figures = {
            "uploads": UPLOADS,
            "clients": CLIENTS,
            "bytes_each": sum(map(len, datas)) // UPLOADS,
            "wall_s": round(wall, 1),
            "uploads_per_s": round((UPLOADS - 1) / wall, 1),
            "latency_ms_p50": round(1000 * statistics.median(lat), 1),
            "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1),
            "drain_s_with_job_start": round(drain, 1),
        }
        print("load:", json.dumps(figures))
        yield lane, result, figures


def test_load_uploads_zero_errors_all_land(loaded):
    lane, result, figures = loaded
    assert not result.errors, f"{len(result.errors)} errors, e.g. {result.errors[:5]}"
    assert dict(result.statuses) == {201: UPLOADS}
    assert len(result.event_ids) == UPLOADS
    lane.assert_exactly_once(result.event_ids)


def test_full_topic_replay_from_a_fresh_checkpoint_adds_nothing(loaded):
    lane, result, _ = loaded
    before = lane.events()
    assert sum(before.values()) == UPLOADS
    lane.drain(checkpoint="replay")
    assert lane.events() == before
    assert lane.rejected() == []
