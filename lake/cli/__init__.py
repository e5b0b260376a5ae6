"""The ``lake`` command line. ``lake --help`` lists the commands.

lake up && lake status
"""

from __future__ import annotations

import typer

from lake.cli import capacity, dags, datasets, ingest, layers, model, search, stack

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


def main() -> None:
    app()
