"""The words of the Shapes domain and the captions built from them (docs/shapes.md, spec v1): what the
compact tokenizer must know, kept with the model so that ``models`` needs nothing of Lake's.

    from models.captioner.vocab import ShapeObject, captions_for
    captions_for([ShapeObject("circle", "red", "small", "left")], "white")[0]   # "a small red circle on the left"

``lake.datasets.shapes`` draws these words (colours, sizes, positions in pixels) and imports its
caption grammar from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "black")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
BACKGROUNDS = ("white", "gray")
PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
PAIRS = (("left", "right"), ("top", "bottom"))  # (first, second) of a two-object image


@dataclass(frozen=True)
class ShapeObject:
    shape: str  # circle | square | triangle | star
    colour: str  # one of COLOURS
    size: str  # small | large
    position: str  # left | right | top | bottom | center


def _ordered(objects: Sequence[ShapeObject]) -> tuple[ShapeObject, ...]:
    if len(objects) == 1:
        if objects[0].position not in PHRASES:
            raise ValueError(f"unknown position {objects[0].position!r}")
        return tuple(objects)
    if len(objects) != 2:
        raise ValueError(f"a Shapes image has one or two objects, not {len(objects)}")
    a, b = objects
    for first, second in PAIRS:
        if (a.position, b.position) == (first, second):
            return (a, b)
        if (a.position, b.position) == (second, first):
            return (b, a)
    raise ValueError(f"two objects must be left/right or top/bottom, not {a.position}/{b.position}")


def captions_for(objects: Sequence[ShapeObject], background: str) -> tuple[str, str, str]:
    """The three reference captions of docs/shapes.md for one or two objects (in any order)."""
    objs = _ordered(objects)
    if len(objs) == 1:
        o = objs[0]
        where = PHRASES[o.position]
        return (
            f"a {o.size} {o.colour} {o.shape} {where}",
            f"a {o.colour} {o.shape} {where} of the image",
            f"a {o.size} {o.colour} {o.shape} {where} on a {background} background",
        )
    a, b = objs
    before, after = ("to the left of", "to the right of") if a.position == "left" else ("above", "below")
    return (
        f"a {a.size} {a.colour} {a.shape} {before} a {b.size} {b.colour} {b.shape}",
        f"a {a.colour} {a.shape} and a {b.colour} {b.shape}",
        f"a {b.size} {b.colour} {b.shape} {after} a {a.size} {a.colour} {a.shape}",
    )


def shapes_vocabulary() -> list[str]:
    """One caption per word of the Shapes domain, so that a concept held back from the first training set
    (``star``) still has its own token when later uploads bring it in."""
    words = [*SHAPES, *COLOURS, *SIZES, *BACKGROUNDS]
    pairs = [
        captions_for([ShapeObject("circle", "red", "small", a), ShapeObject("star", "blue", "large", b)], "gray")
        for a, b in PAIRS
    ]
    singles = [captions_for([ShapeObject("circle", "red", "small", p)], "white") for p in POSITIONS]
    return [*words, *(c for caps in pairs + singles for c in caps)]
