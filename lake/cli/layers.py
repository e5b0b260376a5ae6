"""Medallion commands: run the layers, see where they stand, read the quality gates.

lake layers run              # bronze -> silver -> gold, incremental; prints the counts
lake layers status [--json]  # counts per layer, quarantine, lag behind bronze, last runs
lake quality report          # the latest Great Expectations results per suite
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lake.logging import setup_logging

console = Console()
layers_app = typer.Typer(help="The bronze, silver and gold layers.", no_args_is_help=True)
quality_app = typer.Typer(help="Quality gates (Great Expectations) between layers.", no_args_is_help=True)


@layers_app.command("run")
def run_layers(
    silver: Annotated[bool, typer.Option(help="Normalize new bronze images into silver.")] = True,
    gold: Annotated[bool, typer.Option(help="Rebuild what changed in gold (and the Trino views).")] = True,
    max_side: Annotated[int, typer.Option(min=16, max=4096, help="Longest side of silver JPEGs.")] = 384,
) -> None:
    """Carry what is new in bronze through silver and gold. Re-runs with nothing new change nothing."""
    from lake.apps.layers import carry
    from lake.locks import BUSY_EXIT, AlreadyRunning

    setup_logging("WARNING")
    try:
        with console.status("Spark: bronze -> silver -> gold..."):
            result = carry(silver=silver, gold=gold, max_side=max_side)
    except AlreadyRunning as e:
        console.print(f"[yellow]not run:[/yellow] {e}; the scheduler's lake_ingest may be at it (`lake dags status`)")
        raise typer.Exit(BUSY_EXIT) from e
    for layer, counts in result.items():
        console.print(f"[green]{layer}[/green]: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@layers_app.command("status")
def layers_status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Counts per layer, quarantine, how far silver lags behind bronze, and the last run of each job."""
    from lake.apps.layers import status

    st = status()
    if as_json:
        console.print_json(json.dumps(st, default=str))
        return
    t = Table(title="Layers")
    t.add_column("what")
    t.add_column("rows", justify="right")
    for name, n in st["counts"].items():
        t.add_row(name, f"{n:,}")
    for name, n in st["lag"].items():
        t.add_row(f"[yellow]{name.replace('_', ' ')}[/yellow]", f"{n:,}")
    console.print(t)
    r = Table(title="Last runs")
    for col in ("job", "status", "started", "seconds", "counts"):
        r.add_column(col)
    for run in st["runs"]:
        colour = {"succeeded": "green", "failed": "red"}.get(run["status"], "yellow")
        r.add_row(
            run["job"],
            f"[{colour}]{run['status']}[/{colour}]",
            f"{run['started_at']:%Y-%m-%d %H:%M:%S}",
            str(run.get("duration_s") or ""),
            ", ".join(f"{k} {v}" for k, v in (run.get("counts") or {}).items()) or (run.get("error") or ""),
        )
    console.print(r)
    for p in st["problems"]:
        console.print(f"[yellow]note:[/yellow] {p}")


@quality_app.command("report")
def quality_report(
    suite: Annotated[str | None, typer.Option(help="Only this suite (silver_images, gold_training_examples).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many validation runs to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The latest quality-gate results: per expectation, whether it held and how many rows broke it."""
    from lake.catalog import Catalog

    results = Catalog.connect().quality(suite, limit=limit)
    if as_json:
        console.print_json(json.dumps(results, default=str))
        return
    if not results:
        console.print("no validation results yet: run `lake layers run`")
        return
    for res in results:
        ok = "[green]passed[/green]" if res["success"] else "[red]failed[/red]"
        t = Table(
            title=f"{res['suite']} {ok} - {res['rows']} rows, {res['failed_rows']} quarantined - "
            f"{res['validated_at']:%Y-%m-%d %H:%M:%S} ({res['run_id']})",
            title_justify="left",
        )
        t.add_column("expectation")
        t.add_column("held")
        t.add_column("rows that broke it", justify="right")
        for e in res["expectations"]:
            t.add_row(e["expectation"], "yes" if e["success"] else "[red]no[/red]", str(e["unexpected_count"]))
        console.print(t)
        console.print(f"  full result: {res['result_uri']}")
