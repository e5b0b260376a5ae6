"""Stack commands: install, up, down, status, logs, env (a tooling stack), fingerprint."""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.procs import StackError
from lake.config import get_settings
from lake.logging import setup_logging

console = Console()
Services = Annotated[list[str] | None, typer.Argument(help="Services (default: all).", show_default=False)]


def _fail(e: Exception) -> None:
    console.print(f"[red]error:[/red] {e}")
    raise typer.Exit(1)


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def register(app: typer.Typer) -> None:
    @app.command()
    def install(services: Services = None) -> None:
        """Download and build what the local stack runs (cached under ~/.cache/lake)."""
        from infra import stack

        setup_logging()
        try:
            stack.install(get_settings(), services or [])
        except StackError as e:
            _fail(e)

    @app.command()
    def up(services: Services = None) -> None:
        """Start the local stack (installing what is missing). Running twice is harmless."""
        from infra import stack

        setup_logging("WARNING")  # each server's started/healthy line: .lake/logs/lake-cli.log (--verbose: here)
        s = get_settings()
        t0 = time.monotonic()
        try:
            started = stack.up(s, services or [])
        except StackError as e:
            _fail(e)
        console.print(
            f"[green]up[/green]: started {', '.join(started) or 'nothing (all running)'}"
            + (f" in {time.monotonic() - t0:.0f} s (`lake status`; logs in {_short(s.log_dir)}/)" if started else "")
        )

    @app.command()
    def down(services: Services = None) -> None:
        """Stop every server Lake started (or the ones named)."""
        from infra import stack

        setup_logging("WARNING")  # each server's stopped line: .lake/logs/lake-cli.log (--verbose: here)
        try:
            stopped = stack.down(get_settings(), services or [])
        except StackError as e:
            _fail(e)
        console.print(f"[green]down[/green]: stopped {', '.join(stopped) or 'nothing (none running)'}")

    @app.command()
    def clean(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
        """Stop the stack and delete its state (data, logs, metadata); venvs and downloads stay."""
        from infra import stack

        setup_logging()
        if not yes and not typer.confirm("Delete every table, object and log of this local stack?"):
            raise typer.Exit(1)
        try:
            removed = stack.clean(get_settings())
        except StackError as e:
            _fail(e)
        console.print(f"[green]clean[/green]: removed {len(removed)} paths")

    def _waiting_line() -> str:
        """How far silver is behind the front door: the oldest upload event not yet in silver."""
        from datetime import UTC, datetime

        from lake.apps.layers import oldest_waiting
        from lake.clients import no_tables_yet

        try:
            w = oldest_waiting()
        except Exception as e:  # noqa: BLE001 - a status line, never a reason for `lake status` to fail
            if no_tables_yet(e):
                return "oldest event not yet in silver: none, nothing ingested yet"
            return f"[yellow]oldest event not yet in silver: unknown[/yellow] ({type(e).__name__}: {str(e)[:120]})"
        if w is None:
            return "[green]silver is up to date[/green]: every upload event is in silver (or quarantined)"
        age = (datetime.now(UTC) - w["since"]).total_seconds()
        return (
            f"oldest event not yet in silver: {age / 60:.1f} min old ({w['since']:%Y-%m-%d %H:%M:%S} UTC); "
            f"{w['in_kafka']} in Kafka not yet in bronze, {w['in_bronze']} images in bronze not yet in silver"
        )

    @app.command()
    def status(
        services: Services = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    ) -> None:
        """A table of the servers: state, pid, ports, memory, uptime, log. Exit 1 if any is not healthy."""
        from infra import stack

        setup_logging("WARNING")
        rows = stack.status(get_settings(), services or [])
        if as_json:
            print(json.dumps([{**r.__dict__, "log": str(r.log)} for r in rows], indent=2))
        else:
            t = Table(title="Lake local stack")
            for col in ("service", "state", "pid", "ports", "memory", "uptime", "log"):
                t.add_column(col)
            colour = {"healthy": "green", "unhealthy": "red", "stopped": "yellow"}
            for r in rows:
                t.add_row(
                    r.name,
                    f"[{colour[r.state]}]{r.state}[/]",
                    str(r.pid or "-"),
                    ",".join(map(str, r.ports)),
                    f"{r.mem_mb:.0f} MiB" if r.pid else "-",
                    f"{r.uptime_s:.0f}s" if r.pid else "-",
                    _short(r.log),
                )
            t.caption = f"memory is PSS; total {sum(r.mem_mb for r in rows):.0f} MiB. `lake logs SERVICE` shows a log."
            console.print(t)
            for r in rows:
                if r.detail:
                    console.print(f"[red]{r.name}[/red]: {r.detail} (log: {_short(r.log)})")
            healthy = {r.name for r in rows if r.state == "healthy"}
            if {"kafka", "trino"} <= healthy:
                console.print(_waiting_line())
        if any(r.state != "healthy" for r in rows):
            raise typer.Exit(1)

    @app.command()
    def demo(
        rows: Annotated[int, typer.Option(help="Rows the smoke Spark job writes.")] = 1000,
        images: Annotated[
            int, typer.Option(help="Shapes images to generate, ingest and carry to gold (0: only check the stack).")
        ] = 200,
        train_images: Annotated[
            int,
            typer.Option(
                help="Shapes training set to ingest, then train, evaluate and caption with (0: no model stage)."
            ),
        ] = 30000,
        train_minutes: Annotated[float, typer.Option(help="Training budget (wall clock).")] = 14.0,
        star_images: Annotated[
            int, typer.Option(help="Star images uploaded for the learning loop (retrain, gate, hot swap; 0: skip it).")
        ] = 3000,
        retrain_minutes: Annotated[float, typer.Option(help="The retrain's budget (wall clock).")] = 5.0,
        airflow: Annotated[
            bool,
            typer.Option(help="Run each Airflow DAG once at the end and check their last runs through the REST API."),
        ] = True,
    ) -> None:
        """Run the main job end to end on the running stack (see `make demo`)."""
        from lake.apps import demo as demo_mod

        setup_logging("WARNING")  # the jobs' own lines: .lake/logs/lake-cli.log; each step prints its result
        demo_mod.run(rows, images, train_images, train_minutes, star_images, retrain_minutes, airflow)

    @app.command()
    def logs(
        service: Annotated[str, typer.Argument(help="postgres, minio, ferretdb, kafka, trino, ...")],
        lines: Annotated[int, typer.Option("-n", help="How many lines.")] = 50,
        follow: Annotated[bool, typer.Option("-f", help="Keep printing new lines.")] = False,
    ) -> None:
        """Show a server's log."""
        from infra import stack

        try:
            (svc,) = stack.select(get_settings(), [service])
        except StackError as e:
            _fail(e)
        path = svc.proc(runnable=False).log
        if not path.exists():
            _fail(StackError(f"no log yet at {path}; has `lake up` run?"))
        os.execvp("tail", ["tail", f"-n{lines}", *(["-F"] if follow else []), str(path)])

    @app.command("env")
    def env_(
        name: Annotated[str, typer.Argument(help="The tooling stack: test (`make test`) or bench (`make bench`).")],
    ) -> None:
        """Print the exports that point Lake at a tooling stack (its own state dir and ports), beside yours.

        eval "$(lake env test)"; lake up; pytest tests/spark_jobs -x   # tests by hand, never on your lake
        """
        from lake.config import TOOLING_STACKS, tooling_stack

        if name not in TOOLING_STACKS:
            _fail(ValueError(f"no tooling stack {name!r}: choose from {', '.join(TOOLING_STACKS)}"))
        for k, v in tooling_stack(name).items():
            print(f"export {k}={shlex.quote(v)}")

    @app.command()
    def fingerprint(
        as_json: Annotated[bool, typer.Option("--json", help="Print the fingerprint as JSON.")] = False,
        compare: Annotated[
            Path | None, typer.Option(help="A fingerprint saved before: print what differs, exit 1 if anything.")
        ] = None,
    ) -> None:
        """Row counts and snapshots of every table, objects per bucket, catalog and topic counts (servers
        running) or the state dir's files (stopped): what tests and benchmarks must leave unchanged."""
        from lake.apps.fingerprint import compare as compare_prints
        from lake.apps.fingerprint import fingerprint as take

        setup_logging("WARNING")
        s = get_settings()
        now = take(s)
        if compare is not None:
            diff, own, ran = compare_prints(json.loads(compare.read_text()), now)
            for line in own:
                console.print(f"[yellow]changed by the lake's scheduler[/yellow] {line}")
            if ran:
                console.print(
                    f"the lake's scheduler started {ran} DAG runs meanwhile (its DAGs are live): what they write "
                    "may change by itself; `lake dags pause` holds them"
                )
            for line in diff:
                console.print(f"[red]changed[/red] {line}")
            if diff:
                _fail(RuntimeError(f"the lake at {_short(s.state_dir)} changed ({len(diff)} differences)"))
            console.print(f"[green]unchanged[/green]: the lake at {_short(s.state_dir)} ({now['state']})")
        elif as_json:
            print(json.dumps(now, indent=2, sort_keys=True))
        else:
            console.print_json(json.dumps(now, sort_keys=True))
