"""Dataset commands: make the synthetic Shapes set, import a captioned image folder.

lake datasets shapes make data/shapes -n 2000 --seed 0 --no-star
lake datasets coco import annotations/captions_val2017.json val2017/ --source coco
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
app = typer.Typer(
    help="Datasets: synthetic Shapes images, and captioned image folders to import.", no_args_is_help=True
)
shapes_app = typer.Typer(help="The synthetic Shapes domain (docs/shapes.md).", no_args_is_help=True)
coco_app = typer.Typer(
    help="Import images with COCO captions (or a captions.json / CSV sidecar).", no_args_is_help=True
)
app.add_typer(shapes_app, name="shapes")
app.add_typer(coco_app, name="coco")


class Fmt(StrEnum):
    mixed = "mixed"
    jpeg = "jpeg"
    png = "png"


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _count(value: object) -> str:
    """The report's fields may be counts or lists of what they count."""
    return str(len(value) if isinstance(value, (list, tuple, set, dict)) else value)


@shapes_app.command("make")
def make(
    out: Annotated[Path, typer.Argument(help="Folder for the images, captions.json and attributes.jsonl.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many images.")],
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same bytes.")] = 0,
    no_star: Annotated[bool, typer.Option("--no-star", help="Hold back the star concept.")] = False,
    only_star: Annotated[bool, typer.Option("--only-star", help="Every image has a star.")] = False,
    fmt: Annotated[Fmt, typer.Option("--format", help="Encoding of the images.")] = Fmt.mixed,
    one_object_ratio: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of one-object images.")] = 0.5,
    force: Annotated[bool, typer.Option("--force", help="Replace a Shapes set already in OUT.")] = False,
) -> None:
    """Write N Shapes images with their three reference captions each."""
    from lake.datasets.shapes import write_dataset

    if no_star and only_star:
        raise typer.BadParameter("--no-star and --only-star exclude each other; give at most one")
    star = "none" if no_star else "only" if only_star else "any"
    start = time.perf_counter()
    try:
        write_dataset(out, n, seed=seed, star=star, one_object_ratio=one_object_ratio, fmt=fmt.value, overwrite=force)
    except FileExistsError as e:
        _fail(str(e))
    secs = time.perf_counter() - start
    console.print(
        f"[green]wrote[/green] {n} images to {out} in {secs:.1f}s ({n / secs:.0f} img/s), "
        f"captions.json and attributes.jsonl"
    )


@coco_app.command("import")
def import_(
    annotations: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="COCO captions JSON, captions.json or a file_name,caption CSV."
        ),
    ],
    images_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder the file names are in.")],
    source: Annotated[str, typer.Option(help="Source tag on the upload events.")] = "coco",
) -> None:
    """Upload every image the annotations name, with its captions, into bronze.

    File names may have folders (``val/x.jpg``, under IMAGES_DIR). A named file that is not there is
    listed; a re-import sends again only the images whose captions changed since."""
    from lake.datasets.coco import load_sidecar, locate

    try:
        captions = load_sidecar(annotations)
    except ValueError as e:
        _fail(str(e))
    found, missing = locate(captions, images_dir)
    if not found:
        _list("missing", missing)
        _fail(f"none of the {len(captions)} images that {annotations} names is in {images_dir}")
    from lake.ingest import ingest_files  # heavy (Kafka, S3 clients): only once the files check out

    report = ingest_files(found, source=source)
    t = Table(title=f"import {images_dir} (source {source})")
    for col in ("uploaded", "skipped", "missing", "failed", "new images"):
        t.add_column(col, justify="right")
    t.add_row(*(_count(v) for v in (report.uploaded, report.skipped, missing, report.failed, report.new_images)))
    console.print(t)
    if missing:
        console.print(
            f"[yellow]warning:[/yellow] {len(missing)} of {len(captions)} images are missing from {images_dir}",
            soft_wrap=True,
        )
    _list("missing", missing)
    _list("failed", report.failed)
    if report.failed:
        raise typer.Exit(1)


def _list(what: str, items: list[tuple[str, str]], limit: int = 20) -> None:
    colour = "red" if what == "failed" else "yellow"
    for name, reason in items[:limit]:  # escaped: a file name like img[1].jpg is not markup
        console.print(f"[{colour}]{what}[/{colour}] {escape(name)}: {escape(reason)}", soft_wrap=True)
    if len(items) > limit:
        console.print(f"... and {len(items) - limit} more {what}")
