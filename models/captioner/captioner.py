"""One interface over any BLIP-2 checkpoint: ``load(...)`` -> ``Captioner``; ``caption(images) -> list[str]``.

    from models.captioner import load
    captioner = load("out/compact")                                    # a save_pretrained directory
    captioner = load("Salesforce/blip2-opt-2.7b", dtype="fp16", quantization="nf4")   # hub id, GPU
    print(captioner.caption([PIL.Image.open("x.png")], num_beams=3))

The compact Shapes model and a real BLIP-2 go through the same `Blip2ForConditionalGeneration` /
`Blip2Processor.from_pretrained`; options that cannot work on this machine fail early with `CaptionerError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

Dtype = Literal["fp32", "bf16", "fp16"]
Quantization = Literal["8bit", "nf4"] | None
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# transformers' from_pretrained patches torch globally while it builds a model (empty "meta" weights):
# two loads at once in one process break each other (the API loads a new version while serving), so they take turns.
_LOAD_LOCK = threading.Lock()


class CaptionerError(RuntimeError):
    """An option or a checkpoint that cannot be used here; the message says why and what to do."""


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CaptionerError(f"device {device!r} asked for, but CUDA is not available here")
    return torch.device(device)


def _check_source(source: str | Path) -> str:
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise CaptionerError(f"{path} is not a saved model directory (no config.json)")
        return str(path)
    # "owner/name" could be a hub id; anything path-like that is missing is a missing directory
    looks_like_hub_id = str(source).count("/") == 1 and not str(source).startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise CaptionerError(f"model directory {source} does not exist")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(str(source), "config.json"), str):
            raise CaptionerError(
                f"{source} is not a local directory and HF_HUB_OFFLINE is set, and the hub "
                f"cache has no copy: download it where the hub is reachable, or pass a directory"
            )
    return str(source)


def _quantization_config(quantization: Quantization, device: torch.device, dtype: torch.dtype):
    if quantization is None:
        return None
    if quantization not in ("8bit", "nf4"):
        raise CaptionerError(f"quantization must be None, '8bit' or 'nf4', not {quantization!r}")
    if device.type != "cuda":
        raise CaptionerError(f"{quantization} quantization needs bitsandbytes on a CUDA GPU; none here")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise CaptionerError(f"{quantization} quantization needs the bitsandbytes package") from e
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


@dataclass
class Captioner:
    model: torch.nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype
    source: str = ""

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image], batch_size: int = 64, **generate: object) -> list[str]:
        """Captions for ``images``, in order. ``generate``: `generate()` options (``max_new_tokens``, default
        30 or what the decoder's positions allow; ``num_beams``; ``do_sample``...); greedy by default."""
        # never past the decoder's positions (the compact OPT has few): queries + <s> come first
        cfg = self.model.config
        room = getattr(cfg.text_config, "max_position_embeddings", 10**6) - cfg.num_query_tokens - 1
        options = {"max_new_tokens": min(30, room), "do_sample": False, **generate}
        out: list[str] = []
        for start in range(0, len(images), batch_size):
            batch = [im.convert("RGB") for im in images[start : start + batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            ids = self.model.generate(**inputs, **options)
            out.extend(t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True))
        return out


def load(
    path_or_hub_id: str | Path, dtype: Dtype = "fp32", quantization: Quantization = None, device: str = "auto"
) -> Captioner:
    """A captioner from a `save_pretrained` directory (or a hub id, where the hub or its cache is reachable)."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    if dtype not in DTYPES:
        raise CaptionerError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    dev = _resolve_device(device)
    if dtype == "fp16" and dev.type == "cpu":
        raise CaptionerError(
            "fp16 needs a GPU (CPU kernels for half precision are missing or slow): use dtype='bf16' or 'fp32' on CPU"
        )
    torch_dtype = DTYPES[dtype]
    quant = _quantization_config(quantization, dev, torch_dtype)
    source = _check_source(path_or_hub_id)
    kwargs: dict = {"dtype": torch_dtype}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": dev.index or 0})
    try:
        with _LOAD_LOCK:
            model = Blip2ForConditionalGeneration.from_pretrained(source, **kwargs)
            processor = Blip2Processor.from_pretrained(source)
    except OSError as e:
        raise CaptionerError(f"could not load a BLIP-2 model and processor from {source}: {e}") from e
    if quant is None:
        model.to(dev)
    model.eval()
    return Captioner(model, processor, dev, torch_dtype, source)
