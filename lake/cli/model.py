"""Model commands that need no server.

    lake caption ./photos --model out/compact --out captions.json

Training and evaluation on a Shapes folder: `python -m models.captioner.train --help` and
`python -m models.captioner.evaluate --help` (models/captioner/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def caption_folder(folder: Path, captioner, batch_size: int = 32, progress: bool = True
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """({relative file name: caption}, {relative file name: why it was skipped}) for every image under ``folder``."""
    from PIL import Image
    from rich.progress import Progress

    from lake.ingest import discover

    files = discover([folder])
    captions: dict[str, str] = {}
    failed: dict[str, str] = {}
    with Progress(disable=not progress, console=console) as bar:
        task = bar.add_task("caption", total=len(files))
        for start in range(0, len(files), batch_size):
            names, images = [], []
            for path in files[start:start + batch_size]:
                name = str(path.relative_to(folder))
                try:
                    with Image.open(path) as im:
                        im.draft("RGB", (512, 512))  # large JPEGs decode at a fraction of their size
                        images.append(im.convert("RGB"))
                    names.append(name)
                except (OSError, ValueError, Image.DecompressionBombError) as e:
                    failed[name] = f"{type(e).__name__}: {e}"[:300]
            if images:
                captions.update(zip(names, captioner.caption(images, batch_size=batch_size)))
            bar.advance(task, len(files[start:start + batch_size]))
    return captions, failed


def register(app: typer.Typer) -> None:
    @app.command()
    def caption(
        folder: Annotated[Path, typer.Argument(help="A folder of images (searched recursively).", exists=True,
                                               file_okay=False)],
        out: Annotated[Path, typer.Option("--out", help="Where to write {file name: caption} as JSON.")],
        model: Annotated[str, typer.Option(help="A saved model directory (save_pretrained), or a hub id.")],
        dtype: Annotated[str, typer.Option(help="fp32, bf16 (CPU or GPU) or fp16 (GPU).")] = "fp32",
        batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Images per generate() call.")] = 32,
    ) -> None:
        """Caption every image in FOLDER with a model and write the captions to a JSON file."""
        from models.captioner import CaptionerError, load

        try:
            captioner = load(model, dtype=dtype)
        except CaptionerError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e
        captions, failed = caption_folder(folder, captioner, batch_size)
        out.write_text(json.dumps(captions, indent=1, ensure_ascii=False) + "\n")
        console.print(f"{len(captions)} captions -> {out}")
        for name, why in failed.items():
            console.print(f"[yellow]skipped[/yellow] {name}: {why}")
        if failed:
            raise typer.Exit(1)
