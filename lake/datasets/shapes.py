"""The synthetic Shapes domain, exactly as docs/shapes.md (spec v1) fixes it.

    lake datasets shapes make data/shapes -n 2000 --no-star     # the CLI over write_dataset()
    python -c "from lake.datasets.shapes import generate; print(next(generate(1)).captions)"

Drawing and sampling live here; the domain's words and its caption grammar (``captions_for``,
``ShapeObject``) live with the model's tokenizer in models/captioner/vocab.py.

Everything is a pure function of a seed: image ``i`` of ``generate(n, seed)`` is drawn
from its own generator ``default_rng([seed, i])``, so a longer run starts with the
images of a shorter one and ``n`` never changes an image.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

# The domain's words and caption grammar live with the model's tokenizer (models may not import lake).
from models.captioner.vocab import PAIRS, SHAPES, ShapeObject, captions_for

SIZE = 128
# How each word of the domain (models/captioner/vocab.py, in its order) is drawn: RGB, side range
# in px, nominal centre, grey-level range. tests/lake/datasets/test_shapes.py keeps the two in step.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
    "black": (15, 15, 15),
}
SIZES = {"small": (18.0, 30.0), "large": (44.0, 60.0)}
POSITIONS = {"left": (32, 64), "right": (96, 64), "top": (64, 32), "bottom": (64, 96), "center": (64, 64)}
BACKGROUNDS = {"white": (245, 255), "gray": (115, 140)}
COLOUR_JITTER, POSITION_JITTER, MAX_ROTATION, MAX_NOISE = 15, 6.0, 10.0, 8.0
MIN_GAP = 2.0  # px between the bounding boxes of two objects
SUPERSAMPLE = 4  # draw at 512 px, box-filter down: anti-aliased edges for ~1 ms

StarMode = Literal["any", "none", "only"]
Format = Literal["mixed", "jpeg", "png"]


@dataclass(frozen=True)
class ShapesSample:
    filename: str
    data: bytes  # the encoded image
    fmt: Literal["jpeg", "png"]
    objects: tuple[ShapeObject, ...]  # the left (or top) one first
    background: str  # white | gray
    captions: tuple[str, str, str]


@dataclass(frozen=True)
class Placement:
    """One object as drawn: centre, bounding-box side, rotation (degrees) and RGB."""

    obj: ShapeObject
    cx: float
    cy: float
    side: float
    angle: float
    rgb: tuple[int, int, int]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """A box of ``side`` around the centre: it holds the drawn object (whose larger extent is ``side``)."""
        h = self.side / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


# ---- drawing --------------------------------------------------------------------------------------------------


def _unit_outline(shape: str) -> np.ndarray:
    if shape == "square":
        return np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=float)
    if shape == "triangle":  # apex up (image y grows downwards)
        angles = np.radians([-90, 30, 150])
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "star":  # 5 points apex up, inner radius of a regular pentagram
        inner = math.sin(math.radians(18)) / math.sin(math.radians(54))
        angles = np.radians(-90 + 36 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    raise ValueError(f"unknown shape {shape!r}")


def outline(p: Placement) -> list[tuple[float, float]]:
    """The polygon of a non-circle placement: rotated, scaled so its larger extent is ``side``, bbox-centred."""
    pts = _unit_outline(p.obj.shape)
    t = math.radians(p.angle)
    pts = pts @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pts = (pts - (lo + hi) / 2) * (p.side / (hi - lo).max()) + (p.cx, p.cy)
    return [(float(x), float(y)) for x, y in pts]


def layout(objects: Sequence[ShapeObject], rng: np.random.Generator) -> tuple[Placement, ...]:
    """Draw sizes, rotations, colour jitter and centres; two objects are re-jittered until they do not overlap."""
    sides = [rng.uniform(*SIZES[o.size]) for o in objects]
    angles = [rng.uniform(-MAX_ROTATION, MAX_ROTATION) if o.shape in ("square", "star") else 0.0 for o in objects]
    jitter = [rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3) for _ in objects]
    rgbs = [tuple(int(v) for v in np.clip(np.array(COLOURS[o.colour]) + j, 0, 255)) for o, j in zip(objects, jitter)]
    for _ in range(1000):  # always feasible: two 60 px objects fit with room to spare at the extremes
        centres = []
        for o, side in zip(objects, sides):
            nominal, half = POSITIONS[o.position], side / 2
            centres.append(
                tuple(
                    float(np.clip(c + rng.uniform(-POSITION_JITTER, POSITION_JITTER), half + 1, SIZE - 1 - half))
                    for c in nominal
                )
            )
        placed = tuple(
            Placement(o, cx, cy, s, a, rgb) for o, (cx, cy), s, a, rgb in zip(objects, centres, sides, angles, rgbs)
        )
        if len(placed) == 1 or boxes_apart(placed[0].bbox, placed[1].bbox, MIN_GAP):
            return placed
    raise RuntimeError(f"could not place {objects} without overlap")


def boxes_apart(a: Sequence[float], b: Sequence[float], gap: float = 0.0) -> bool:
    """True when boxes (x0, y0, x1, y1) are separated by at least ``gap`` along x or y."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def render(objects: Sequence[ShapeObject], background: str, rng: np.random.Generator) -> Image.Image:
    """A 128x128 RGB image of ``objects`` on ``background`` (jitter, rotation and noise drawn from ``rng``)."""
    level = int(rng.integers(BACKGROUNDS[background][0], BACKGROUNDS[background][1] + 1))
    placed = layout(objects, rng)
    k = SUPERSAMPLE
    img = Image.new("RGB", (SIZE * k, SIZE * k), (level, level, level))
    draw = ImageDraw.Draw(img)
    for p in placed:
        if p.obj.shape == "circle":
            x0, y0, x1, y1 = p.bbox
            draw.ellipse([x0 * k, y0 * k, x1 * k, y1 * k], fill=p.rgb)
        else:
            draw.polygon([(x * k, y * k) for x, y in outline(p)], fill=p.rgb)
    img = img.reduce(k)
    if rng.random() < 0.5:  # half the images get pixel noise
        sigma = rng.uniform(1.0, MAX_NOISE)
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, sigma, (SIZE, SIZE, 3)).astype(np.float32)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    return img


# ---- sampling -------------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def sample_objects(
    rng: np.random.Generator, star: StarMode = "any", one_object_ratio: float = 0.5
) -> tuple[tuple[ShapeObject, ...], str]:
    """Random objects (left/top first) and a background. ``none``: no star; ``only``: at least one star."""
    shapes = tuple(s for s in SHAPES if s != "star") if star == "none" else SHAPES
    if rng.random() < one_object_ratio:
        positions: tuple[str, ...] = (_pick(rng, tuple(POSITIONS)),)
    else:
        positions = PAIRS[int(rng.integers(2))]
    star_slot = int(rng.integers(len(positions))) if star == "only" else -1
    objects: list[ShapeObject] = []
    for slot, position in enumerate(positions):
        while True:
            o = ShapeObject(
                "star" if slot == star_slot else _pick(rng, shapes),
                _pick(rng, tuple(COLOURS)),
                _pick(rng, tuple(SIZES)),
                position,
            )
            if all((o.colour, o.shape) != (q.colour, q.shape) for q in objects):
                break
        objects.append(o)
    return tuple(objects), _pick(rng, tuple(BACKGROUNDS))


def generate(
    n: int, seed: int = 0, star: StarMode = "any", one_object_ratio: float = 0.5, fmt: Format = "mixed"
) -> Iterator[ShapesSample]:
    """``n`` encoded Shapes images with their captions; ``fmt="mixed"`` is half JPEG (quality 75-95), half PNG."""
    if star not in ("any", "none", "only"):
        raise ValueError(f"star must be any, none or only, not {star!r}")
    if fmt not in ("mixed", "jpeg", "png"):
        raise ValueError(f"fmt must be mixed, jpeg or png, not {fmt!r}")
    if not 0.0 <= one_object_ratio <= 1.0 or n < 0:
        raise ValueError(f"need n >= 0 and 0 <= one_object_ratio <= 1 (got n={n}, ratio={one_object_ratio})")
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        objects, background = sample_objects(rng, star, one_object_ratio)
        img = render(objects, background, rng)
        kind = fmt if fmt != "mixed" else ("jpeg" if rng.random() < 0.5 else "png")
        buf = io.BytesIO()
        if kind == "jpeg":
            img.save(buf, "JPEG", quality=int(rng.integers(75, 96)))
        else:
            img.save(buf, "PNG")
        yield ShapesSample(
            f"shape_{seed}_{i:06d}.{'jpg' if kind == 'jpeg' else 'png'}",
            buf.getvalue(),
            kind,
            objects,
            background,
            captions_for(objects, background),
        )


# ---- splits and files -----------------------------------------------------------------------------------------


def split_of(image_id: str) -> str:
    """train / val / test from the first 8 hex digits of sha256(image_id) mod 100 (80/10/10)."""
    bucket = int(hashlib.sha256(image_id.encode("ascii")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


SIDECARS = ("captions.json", "attributes.jsonl")


def write_dataset(
    out_dir: Path,
    n: int,
    seed: int = 0,
    star: StarMode = "any",
    one_object_ratio: float = 0.5,
    fmt: Format = "mixed",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``n`` images plus ``captions.json`` ({file: [3 captions]}) and ``attributes.jsonl`` (one line per
    image: file_name, image_id = sha256 of the bytes, split, objects, background). Refuses a non-empty
    directory unless ``overwrite``, which first removes the Shapes files a previous run left there."""
    from rich.progress import track

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty (pass overwrite=True / --force to replace a Shapes set)")
        for old in [*out_dir.glob("shape_*.jpg"), *out_dir.glob("shape_*.png"), *(out_dir / s for s in SIDECARS)]:
            old.unlink(missing_ok=True)
    captions: dict[str, list[str]] = {}
    samples = generate(n, seed, star, one_object_ratio, fmt)
    with open(out_dir / "attributes.jsonl", "w") as attrs:
        for s in track(samples, total=n, description=f"shapes -> {out_dir}", disable=not progress):
            (out_dir / s.filename).write_bytes(s.data)
            captions[s.filename] = list(s.captions)
            image_id = hashlib.sha256(s.data).hexdigest()
            attrs.write(
                json.dumps(
                    {
                        "file_name": s.filename,
                        "image_id": image_id,
                        "split": split_of(image_id),
                        "objects": [asdict(o) for o in s.objects],
                        "background": s.background,
                    }
                )
                + "\n"
            )
    (out_dir / "captions.json").write_text(json.dumps(captions, indent=0))
    return out_dir
