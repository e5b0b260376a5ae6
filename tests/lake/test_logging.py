"""lake/logging.py: a job's process ends on an error with one line naming the cause. No servers."""

from __future__ import annotations

import pytest

from lake.logging import fails_in_one_line


def test_an_error_ends_the_job_with_one_line():
    with pytest.raises(SystemExit) as e, fails_in_one_line("silver normalize"):
        raise ConnectionError("MinIO at http://127.0.0.1:9000 refused the connection\n  ...a page of trace")
    assert str(e.value.code) == (
        "error: silver normalize failed: ConnectionError: MinIO at http://127.0.0.1:9000 refused the connection"
    )


def test_an_error_without_a_message_still_names_its_class():
    with pytest.raises(SystemExit) as e, fails_in_one_line("gold build"):
        raise RuntimeError()
    assert str(e.value.code) == "error: gold build failed: RuntimeError: "


def test_a_clean_run_and_an_explicit_exit_pass_through():
    with fails_in_one_line("x"):
        pass
    with pytest.raises(SystemExit) as e, fails_in_one_line("x"):
        raise SystemExit(99)  # Airflow's "skipped" exit code
    assert e.value.code == 99
