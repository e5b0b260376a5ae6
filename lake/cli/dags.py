"""Airflow DAGs from a terminal: run one now, and see the last run of each (the UI shows the same).

lake dags status                 # every DAG: paused?, last run, state, when, how long
lake dags status --json
lake dags run lake_ingest        # all its tasks now (`airflow dags test`); exit 1 unless it succeeded
lake dags run lake_retrain --conf '{"min_new": 50, "minutes": 2}'
lake dags pause lake_retrain     # the scheduler stops starting it (runs in flight finish); no name: the pipeline
lake dags unpause                # the pipeline DAGs run by themselves again
lake dags record                 # Airflow's finished task runs -> catalog.lake.pipeline_runs (lake.gold.pipeline_runs)
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from lake.apps.reports import dags_table, styled

console = Console()
dags_app = typer.Typer(
    help="Airflow DAGs: run one now, show the last run of each, pause or unpause them.", no_args_is_help=True
)
NAMES = typer.Argument(help="DAG ids (default: the pipeline: lake_ingest, lake_caption, lake_index, lake_retrain).")


@contextmanager
def airflow_errors():
    """Airflow down or refusing: the reason in one line, exit 2."""
    from lake.apps.orchestration import AirflowError

    try:
        yield
    except AirflowError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e


@dags_app.command("status")
def status_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The last run of every DAG, from the Airflow REST API."""
    from lake.apps.orchestration import status

    with airflow_errors():
        rows = status()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    console.print(dags_table(rows))


@dags_app.command("run")
def run(
    dag_id: Annotated[str, typer.Argument(help="lake_ingest, lake_caption, lake_retrain, lake_index ...")],
    conf: Annotated[str, typer.Option(help="The run's parameters, as a JSON object.")] = "{}",
) -> None:
    """Run every task of a DAG now (`airflow dags test`, recorded in Airflow like any run); exit 1 unless it
    succeeded."""
    from lake.apps.orchestration import run_dag

    try:
        params = json.loads(conf)
        if not isinstance(params, dict):
            raise ValueError("--conf must be a JSON object")
    except ValueError as e:
        console.print(f"[red]error:[/red] bad --conf: {e}")
        raise typer.Exit(2) from e
    with airflow_errors(), console.status(f"running {dag_id} ..."):
        done = run_dag(dag_id, params)
    tasks = ", ".join(f"{t} {styled(st)}" for t, st in done.tasks.items())
    console.print(f"{dag_id} {done.run_id}: {styled(done.state)} in {done.seconds:.0f} s ({tasks}); log {done.log}")
    if not done.ok:
        raise typer.Exit(1)


def _pause(dag_ids: list[str] | None, paused: bool) -> None:
    from lake.apps.orchestration import PIPELINE, set_paused

    with airflow_errors():
        before = set_paused(tuple(dag_ids or PIPELINE), paused)
    word = "paused" if paused else "live"
    for dag_id, was in before.items():
        console.print(f"{dag_id}: {word}" + ("" if was != paused else " (already)"))


@dags_app.command("pause")
def pause(dag_ids: Annotated[list[str] | None, NAMES] = None) -> None:
    """Pause DAGs: the scheduler starts no new run of them (a run in flight finishes)."""
    _pause(dag_ids, True)


@dags_app.command("unpause")
def unpause(dag_ids: Annotated[list[str] | None, NAMES] = None) -> None:
    """Unpause DAGs: the scheduler runs them on their schedule and assets again."""
    _pause(dag_ids, False)


@dags_app.command("record")
def record() -> None:
    """Copy Airflow's finished task runs (REST API) into the catalog, where `lake.gold.pipeline_runs` reads them
    (lake_ingest does it on every run)."""
    from lake.apps.orchestration import record_task_runs

    with airflow_errors():
        n = record_task_runs()
    console.print(f"{n} task runs recorded in catalog.lake.pipeline_runs")
