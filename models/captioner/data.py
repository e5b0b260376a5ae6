"""Shapes folders as training examples and evaluation slices; images pre-decoded to one uint8 tensor.

    lake datasets shapes make data/shapes -n 20000
    python -c "from models.captioner.data import read_shapes; print(read_shapes('data/shapes', 'test')[0])"

A Shapes folder is what `lake datasets shapes make` writes (lake/datasets/shapes.py): images plus
``captions.json`` and ``attributes.jsonl`` (split, objects, background per image).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image


@dataclass(frozen=True)
class ShapesRecord:
    path: Path
    split: str  # train | val | test (a pure function of the image id)
    captions: tuple[str, ...]  # the three references, template 1 first
    objects: tuple[dict, ...]  # {shape, colour, size, position}, left/top first
    background: str


def read_shapes(folder: str | Path, split: str | None = None) -> list[ShapesRecord]:
    """The records of a Shapes folder, optionally only one split, in file order."""
    folder = Path(folder)
    if not (folder / "attributes.jsonl").is_file():
        raise FileNotFoundError(
            f"{folder} is not a Shapes folder (no attributes.jsonl): make one with "
            f"`lake datasets shapes make {folder} -n 2000`"
        )
    captions = json.loads((folder / "captions.json").read_text())
    records = []
    for line in (folder / "attributes.jsonl").read_text().splitlines():
        a = json.loads(line)
        if split is None or a["split"] == split:
            records.append(
                ShapesRecord(
                    folder / a["file_name"],
                    a["split"],
                    tuple(captions[a["file_name"]]),
                    tuple(a["objects"]),
                    a["background"],
                )
            )
    return records


def slices_of(record: ShapesRecord) -> list[str]:
    """Evaluation slices an image belongs to: each shape present, one vs two objects, with or without a star."""
    return slices_for(record.objects)


def slices_for(objects: Sequence[dict] | None) -> list[str]:
    """The slices of an image with these objects ({shape, ...} each); ``other`` when they are unknown
    (a caption outside the Shapes templates)."""
    if not objects:
        return ["other"]
    shapes = sorted({o["shape"] for o in objects})
    return [*(f"shape={s}" for s in shapes), f"objects={len(objects)}", "star" if "star" in shapes else "no_star"]


def to_image(image: Image.Image | bytes | str | Path) -> Image.Image:
    """A PIL image from an image, its encoded bytes or its path."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(image))
    return Image.open(image)


def decode_images(
    images: Sequence[Image.Image | bytes | str | Path], image_processor, chunk: int = 512
) -> torch.Tensor:
    """(N, 3, H, W) uint8: the processor's resize (and RGB conversion) done once, rescale/normalise left to
    `normalize` so that a training step needs no PIL."""
    out = []
    for start in range(0, len(images), chunk):
        batch = [to_image(im).convert("RGB") for im in images[start : start + chunk]]
        pix = image_processor(batch, do_rescale=False, do_normalize=False, return_tensors="pt")["pixel_values"]
        out.append(pix.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else torch.empty(0, 3, 1, 1, dtype=torch.uint8)


def normalize(pixels: torch.Tensor, image_processor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the float pixel_values the processor would have made."""
    mean = torch.tensor(image_processor.image_mean, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.float() * image_processor.rescale_factor - mean) / std
