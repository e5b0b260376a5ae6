"""Faults mid-ingest: SIGKILL of the stream job, of MinIO and of Kafka, then restart.
The goal each time: every published event exactly once in bronze, every image in MinIO
with its sha256, the stack healthy afterwards.

    pytest -m reliability tests/reliability/test_faults.py
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.lane import Uploads, api_server, images, kill_job, outage, upload

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]


def _wait_rows(lane, at_least: int, job=None, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while (rows := lane.rows()) < at_least:
        if job is not None:
            assert job.poll() is None, f"the job exited ({job.returncode}):\n{job.log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"only {rows} of {at_least} rows after {timeout:.0f}s"
        time.sleep(0.5)
    return rows


def test_stream_sigkill_after_a_merge_and_mid_backlog_then_restart(lane):
    """Two kills of the stream over one backlog. First it dies right after batch 2's MERGE
    committed, before Spark's checkpoint records the batch (the worst moment: the restart runs
    that batch again); then the continuous stream is SIGKILLed from outside at an arbitrary
    point. A drain after both lands every event once."""
    n = 1200  # 8 batches of 150: 3 before the crash, 2+ of the continuous stream, the rest drained
    ids = lane.publish_inline(images(n))
    crashed = lane.job(
        "--max-offsets",
        "150",
        module="tests.reliability.crash_after_merge",
        log="crash",
        env={"LAKE_TEST_CRASH_AFTER_BATCH": "2"},
    )
    rc, out = lane.wait(crashed, 300)
    assert rc == -9 and "batch 2 written, SIGKILL" in out, out[-3000:]
    # batches 0, 1 and 2 landed (~150 rows each); the checkpoint has committed only 0 and 1
    assert lane.batches() == {0, 1, 2}
    before = lane.rows()

    job = lane.job("--continuous", "--trigger-seconds", "1", "--max-offsets", "150")
    try:
        landed = _wait_rows(lane, before + 300, job)
    finally:
        kill_job(job)
    assert landed < n, "killed too late to test anything"
    lane.drain()
    lane.assert_exactly_once(ids)


def test_minio_sigkill_mid_ingest_then_restart(lane):
    """MinIO dies while the stream writes objects, table files and its checkpoint."""
    n = 500
    ids = lane.publish_inline(images(n))
    job = lane.job("--continuous", "--trigger-seconds", "1", "--max-offsets", "100")
    _wait_rows(lane, 100, job)
    with outage(lane.s, "minio"):
        time.sleep(8)  # past the object client's retries: the batch in flight fails
    # The job either rode it out or died with a clear error; either way a restart finishes.
    print(f"stream after the MinIO outage: {'running' if job.poll() is None else f'exited {job.returncode}'}")
    kill_job(job)
    lane.drain()
    lane.assert_exactly_once(ids)


def test_kafka_sigkill_while_producing_and_consuming(lane):
    """Kafka dies while API clients upload and the stream consumes. The API answers 503
    `bus_unavailable` meanwhile (the bytes are already in bronze); clients retry the same
    bytes with the same `event_id`, and every upload lands once when Kafka is back (some
    first tries that answered 503 are delivered after all: the event id keeps them single)."""
    datas = images(400)
    result = Uploads()
    job = lane.job("--continuous", "--trigger-seconds", "1", "--max-offsets", "200")
    with api_server(lane) as client, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(upload, client, lane, d, result, retry_s=240) for d in datas]
        while sum(result.statuses.values()) < len(datas) // 3:
            time.sleep(0.1)
        with outage(lane.s, "kafka"):
            time.sleep(5)
        for f in futures:
            f.result()
    print(f"uploads: {dict(result.statuses)}, retried after 503: {result.retried}")
    assert not result.errors, result.errors[:5]
    assert len(result.event_ids) == len(datas)
    print(f"stream after the Kafka outage: {'running' if job.poll() is None else f'exited {job.returncode}'}")
    if job.poll() is None:
        _wait_rows(lane, len(datas), job, timeout=300)  # a loaded 2-core machine takes ~80 s for the first batch
    kill_job(job)
    lane.drain()
    lane.assert_exactly_once(result.event_ids)
    assert set(lane.rows_per_image().values()) == {1}
