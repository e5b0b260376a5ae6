"""Ingestion commands: bulk upload into bronze, and the Kafka -> bronze stream.

lake ingest ./photos --captions captions.json --source bulk
lake stream                  # drain images.uploaded into bronze and stop
lake stream --continuous     # keep landing events as they arrive
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lake.logging import setup_logging

console = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def ingest(
        paths: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")],
        captions: Annotated[
            Path | None,
            typer.Option(
                help="Sidecar with human captions: captions.json {file: [..]}, a file_name,caption CSV, or COCO."
            ),
        ] = None,
        source: Annotated[str, typer.Option(help="Recorded on every event (e.g. bulk, mobile, coco).")] = "bulk",
        workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent uploads.")] = 8,
    ) -> None:
        """Upload images into bronze (content-addressed) and publish their events. Re-runs skip what was
        sent with the same captions, and send again a file whose captions were corrected or added."""
        from lake.datasets.coco import load_sidecar
        from lake.ingest import ingest_paths

        setup_logging("WARNING")
        try:
            caps = load_sidecar(captions) if captions else {}
            report = ingest_paths(paths, caps, source=source, workers=workers)
        except (FileNotFoundError, ValueError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
        console.print(
            f"[green]ingested[/green] {report.uploaded} files ({report.new_images} new images), "
            f"skipped {report.skipped} already sent with these captions, failed {len(report.failed)}"
        )
        for path, reason in report.failed[:20]:
            console.print(f"  [red]{escape(path)}[/red]: {escape(reason)}", soft_wrap=True)
        if len(report.failed) > 20:
            console.print(f"  ... and {len(report.failed) - 20} more failed")
        if report.failed:
            raise typer.Exit(1)

    @app.command()
    def stream(
        continuous: Annotated[bool, typer.Option("--continuous", help="Keep running.")] = False,
        trigger_seconds: Annotated[int, typer.Option(help="Micro-batch interval when continuous.")] = 5,
    ) -> None:
        """Land `images.uploaded` events in bronze (Spark Structured Streaming, exactly once)."""
        from spark_jobs.bronze import ingest_uploads

        setup_logging()
        try:
            ingest_uploads.main(continuous=continuous, trigger_seconds=trigger_seconds)
        except ingest_uploads.StreamFailed as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from e
