"""The ``lake`` command line. ``lake --help`` lists the commands.

lake up && lake status
lake --verbose demo      # every library's log on the console too (else in .lake/logs/)
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from lake.cli import capacity, dags, datasets, ingest, layers, model, search, stack
from lake.logging import VERBOSE

app = typer.Typer(
    help="Lake: an open medallion data lake for images.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
stack.register(app)
ingest.register(app)
model.register(app)
capacity.register(app)
app.add_typer(datasets.app, name="datasets")
app.add_typer(layers.layers_app, name="layers")
app.add_typer(layers.quality_app, name="quality")
app.add_typer(search.search_app, name="search")
app.add_typer(dags.dags_app, name="dags")


@app.callback()
def options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show every library's log (Spark, Iceberg, Great Expectations, py4j) on the console, not only "
            "in .lake/logs/.",
        ),
    ] = False,
) -> None:
    """Lake: an open medallion data lake for images."""
    if verbose:  # an env var, so the Spark JVM, Airflow's `dags test` and every other child inherit it
        os.environ[VERBOSE] = "1"


def main() -> None:
    app()
