"""`lake dags`: help, refusal of a bad --conf before Airflow is asked anything, and the status table
(unit: no servers; tests/dags/test_dag_runs.py runs the DAGs for real)."""

from __future__ import annotations

from rich.console import Console
from typer.testing import CliRunner

from lake.apps.reports import dags_table
from lake.cli import app

runner = CliRunner()


def test_help_lists_run_and_status():
    out = runner.invoke(app, ["dags", "--help"]).output
    assert "run" in out and "status" in out


def test_bad_conf_is_refused_with_the_reason():
    for conf, why in (("{not json", "bad --conf"), ("[1, 2]", "JSON object")):
        res = runner.invoke(app, ["dags", "run", "lake_ingest", "--conf", conf])
        assert res.exit_code == 2 and why in res.output


def test_status_table_shows_each_dag_and_its_last_run():
    rows = [
        {
            "dag_id": "lake_ingest",
            "paused": False,
            "schedule": None,
            "state": "success",
            "last_run": "manual__2026-11-26T08:15:35+00:00",
            "start": "2026-11-26T08:15:35.1Z",
            "end": None,
            "duration_s": 99.2,
            "triggered_by": "test",
        },
        {
            "dag_id": "lake_index",
            "paused": True,
            "schedule": None,
            "state": None,
            "last_run": None,
            "start": None,
            "end": None,
            "duration_s": None,
            "triggered_by": None,
        },
    ]
    console = Console(record=True, width=160)
    console.print(dags_table(rows))
    text = console.export_text()
    assert "lake_ingest" in text and "manual" in text and "success" in text and "99 s" in text
    assert "2026-11-26 08:15:35" in text and "lake_index" in text and "yes" in text
