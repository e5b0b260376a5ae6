"""lake/logging.py: a job's process ends on an error with one line naming the cause; libraries' records
go to .lake/logs/ unless verbose (`lake --verbose`). No servers.

    .lake/venvs/core/bin/python -m pytest -q tests/lake/test_logging.py
"""

from __future__ import annotations

import logging
import subprocess
import warnings

import pytest
from typer.testing import CliRunner

from lake.logging import VERBOSE, cause_of, fails_in_one_line, setup_logging, sizes, written_since


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


def test_an_error_from_the_jvm_is_named_by_its_java_line():
    class Py4JJavaError(Exception):
        pass

    e = Py4JJavaError(
        "An error occurred while calling o43.sql.\n: org.apache.iceberg.exceptions.NoSuchTableException: "
        "Table does not exist: lake.silver.images\n\tat org.apache.iceberg..."
    )
    assert cause_of(e) == (
        "Py4JJavaError: org.apache.iceberg.exceptions.NoSuchTableException: Table does not exist: lake.silver.images"
    )


@pytest.fixture
def logs(tmp_path, monkeypatch):
    """setup_logging into a scratch file; the root logger and warnings as they were afterwards."""
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    monkeypatch.delenv(VERBOSE, raising=False)
    yield tmp_path / "lake-cli.log"
    for h in [h for h in root.handlers if getattr(h, "lake", False)]:
        root.removeHandler(h)
        h.close()
    root.setLevel(before[0])
    logging.captureWarnings(False)


def _library_noise() -> None:
    gx = logging.getLogger("great_expectations")
    gx.getChild("_docs_decorators").info("Skipping registering function f because it is a closure")
    gx.getChild("data_context").info("Created temporary directory '/tmp/x' for ephemeral docs site")
    warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)


def test_quiet_libraries_write_to_the_log_file_not_the_console(logs, capsys):
    assert setup_logging(log_file=logs) == logs
    setup_logging(log_file=logs)  # a second call replaces the first's handlers
    _library_noise()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    text = logs.read_text()
    assert text.count("Skipping registering function") == 1  # one handler, not two
    assert "ephemeral docs site" in text and "a library's deprecation" in text
    assert sum(getattr(h, "lake", False) for h in logging.getLogger().handlers) == 3  # ours, libraries', file


def test_verbose_shows_them_on_the_console_too(logs, capsys, monkeypatch):
    monkeypatch.setenv(VERBOSE, "1")
    setup_logging(log_file=logs)
    _library_noise()
    err = capsys.readouterr().err
    assert "Skipping registering function" in err and "ephemeral docs site" in err
    assert "Skipping registering function" in logs.read_text()


def test_lakes_own_lines_stay_on_the_console_when_quiet(logs, capsys):
    import structlog

    setup_logging(log_file=logs)
    structlog.get_logger("lake.silver").info("silver normalize done", normalized=3)
    assert "silver normalize done" in capsys.readouterr().out


@pytest.mark.parametrize(("verbose", "on_console"), [("", False), ("1", True)])
def test_a_command_with_its_own_summary_keeps_lakes_info_lines_in_the_file(
    logs, capsys, monkeypatch, verbose, on_console
):
    """`lake up` and `lake demo` pass WARNING: their per-service and per-job lines go to the file only,
    unless --verbose; a warning still reaches the console."""
    import structlog

    monkeypatch.setenv(VERBOSE, verbose)
    setup_logging("WARNING", log_file=logs)
    structlog.get_logger("infra.stack").info("healthy", service="kafka")
    structlog.get_logger("lake.retrain").warning("something to see")
    out = capsys.readouterr().out
    assert ("healthy" in out) is on_console and "something to see" in out
    text = logs.read_text()
    assert "healthy" in text and "infra.stack" in text and "something to see" in text


def test_written_since_gives_the_lines_a_log_gained(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("old\n")
    marks = sizes([a, b])
    assert marks == {a: 4, b: 0}
    a.write_text("old\n" + "".join(f"new {i}\n" for i in range(20)))
    assert written_since(marks, lines=2) == {a: ["new 18", "new 19"]}  # b never written: left out


def test_the_verbose_option_reaches_child_processes(monkeypatch):
    import os

    from lake.cli import app

    monkeypatch.delenv(VERBOSE, raising=False)
    assert CliRunner().invoke(app, ["layers", "--help"]).exit_code == 0
    assert VERBOSE not in os.environ
    assert CliRunner().invoke(app, ["--verbose", "layers", "--help"]).exit_code == 0
    assert os.environ[VERBOSE] == "1"
    child = subprocess.run(["sh", "-c", f"echo ${VERBOSE}"], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "1"


@pytest.mark.parametrize(("verbose", "bars"), [("", "False"), ("1", "True")])
def test_hugging_faces_own_progress_bars_only_when_verbose(tmp_path, verbose, bars):
    """transformers' tqdm bars ("Writing model shards" at every save) stay off the console when quiet."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys, pathlib; from lake.logging import setup_logging\n"
        "setup_logging(log_file=pathlib.Path(sys.argv[1]))\n"
        "from transformers.utils import logging as tl; print(tl.is_progress_bar_enabled())"
    )
    env = {k: v for k, v in os.environ.items() if k not in (VERBOSE, "HF_HUB_DISABLE_PROGRESS_BARS")}
    env[VERBOSE] = verbose
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "x.log")], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == bars
