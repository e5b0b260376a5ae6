"""The captioner: one interface over BLIP-2 checkpoints, real or compact (README.md in this folder).

    from models.captioner import load
    print(load("out/compact").caption([PIL.Image.open("shape.png")]))

Submodules: `captioner` (load, Captioner), `compact` (the small config and its tokenizer), `data` (Shapes
folders), `train`, `evaluate`. Importing this package does not import torch until `load` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.captioner.captioner import Captioner, CaptionerError, load

__all__ = ["Captioner", "CaptionerError", "load"]


def __getattr__(name: str):
    if name in __all__:
        from models.captioner import captioner

        return getattr(captioner, name)
    raise AttributeError(name)
