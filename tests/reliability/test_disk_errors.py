"""Disk full and a read-only disk under a job: the stream's checkpoint on a tiny tmpfs.

The job must stop with an error that names the cause, and once space (or write access) is
back, a plain re-run must finish with every event landed once. Needs root (mount).

    sudo pytest -m reliability tests/reliability/test_disk_errors.py
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.reliability.lane import images

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]

SIZE = 1024 * 1024  # the tmpfs
FREE = 40 * 1024  # what the filler leaves: the checkpoint of a batch or two (each file takes a 4 KiB page)


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "lake-reliability", str(mnt)], capture_output=True, text=True
    )
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _mount(mnt: Path, *opts: str) -> None:
    subprocess.run(["mount", "-o", ",".join(["remount", *opts]), str(mnt)], check=True)


def test_disk_full_then_read_only_then_retry_lands_everything_once(lane, tiny_disk):
    n = 400
    ids = lane.publish_inline(images(n))
    checkpoint = f"file://{tiny_disk}/checkpoint"
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (SIZE - FREE))

    # 1. the disk fills up after a batch or two
    rc, out = lane.wait(lane.job("--max-offsets", "100", checkpoint=checkpoint, log="full"))
    assert rc != 0
    assert "No space left on device" in _last_lines(out), out[-3000:]
    assert lane.rows() < n

    # 2. space is freed, but the disk is now read-only (a permission error root cannot override)
    filler.unlink()
    _mount(tiny_disk, "ro")
    rc, out = lane.wait(lane.job("--max-offsets", "100", checkpoint=checkpoint, log="read-only"))
    assert rc != 0
    assert "Read-only file system" in _last_lines(out), out[-3000:]

    # 3. writable again: a plain re-run resumes from the checkpoint and finishes
    _mount(tiny_disk, "rw")
    lane.drain(checkpoint)
    lane.assert_exactly_once(ids)


def _last_lines(out: str, n: int = 5) -> str:
    """What a person reads first: the end of the job's output."""
    return "\n".join(out.rstrip().splitlines()[-n:])


@pytest.mark.parametrize(
    "message, cause",
    [
        (
            "[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: "
            "java.io.IOException: No space left on device SQLSTATE: XXKST\n"
            "=== Streaming Query ===\nIdentifier: bronze_ingest_uploads\n",
            "IOException: No space left on device",
        ),
        (
            "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach batch "
            "sink. Reason: An exception was raised by the Python Proxy. Return Message: "
            "Traceback (most recent call last):\n"
            '  File "x.py", line 1, in call\npy4j.protocol.Py4JJavaError: An error occurred while calling o168.sql.\n'
            ": software.amazon.awssdk.core.exception.SdkClientException: Unable to execute HTTP request: Connect to "
            "http://127.0.0.1:9000 failed: Connection refused (SDK Attempt Count: 6)\n"
            "\tSuppressed: x.y.OtherException: z\n"
            "=== Streaming Query ===\n",
            "SdkClientException: Unable to execute HTTP request: Connect to http://127.0.0.1:9000 failed: Connection "
            "refused (SDK Attempt Count: 6)",
        ),
        (
            "[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: /x/commits/.1.tmp (Read-only file "
            "system) SQLSTATE: XXKST\n=== Streaming Query ===\n",
            "/x/commits/.1.tmp (Read-only file system)",
        ),
    ],
)
def test_failure_cause_names_the_cause_not_the_wrappers(message, cause):
    from spark_jobs.bronze.ingest_uploads import failure_cause

    assert failure_cause(RuntimeError(message)) == cause
