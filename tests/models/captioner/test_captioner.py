"""load() / Captioner over save_pretrained directories: dtypes, determinism, clear errors."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from models.captioner import CaptionerError, load
from models.captioner.data import read_shapes


@pytest.fixture(scope="module")
def images(shapes_dir):
    return [Image.open(r.path) for r in read_shapes(shapes_dir)[:6]]


def test_load_caption_and_identical_copies(tiny_model_dir, images):
    a, b = load(tiny_model_dir), load(str(tiny_model_dir), device="cpu")
    assert a.dtype == torch.float32 and a.device.type == "cpu"
    caps = a.caption(images, max_new_tokens=6)
    assert len(caps) == len(images) and all(isinstance(c, str) for c in caps)
    assert b.caption(images, max_new_tokens=6, batch_size=4) == caps  # greedy: same weights, same words
    assert all("<image>" not in c and "<s>" not in c for c in caps)


def test_bf16_path(tiny_model_dir, images):
    c = load(tiny_model_dir, dtype="bf16")
    assert c.model.language_model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert len(c.caption(images[:2], max_new_tokens=4)) == 2


def test_saved_weights_are_safetensors_and_reload_identically(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    c = load(tiny_model_dir)
    c.model.save_pretrained(tmp_path)
    c.processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = load_file(tmp_path / "model.safetensors")
    for name, p in c.model.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], p), name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(dtype="fp16", device="cpu"), "fp16 needs a GPU"),
        (dict(dtype="int4"), "dtype must be"),
        (dict(quantization="nf4", device="cpu"), "needs bitsandbytes on a CUDA GPU"),
        (dict(quantization="8bit", device="cpu"), "needs bitsandbytes on a CUDA GPU"),
        (dict(quantization="4bit", device="cpu"), "quantization must be"),
    ],
)
def test_options_that_cannot_work_here(tiny_model_dir, kwargs, match):
    with pytest.raises(CaptionerError, match=match):
        load(tiny_model_dir, **kwargs)


def test_missing_dir_non_model_dir_and_offline_hub_id(tmp_path, monkeypatch):
    with pytest.raises(CaptionerError, match="does not exist"):
        load(tmp_path / "nope")
    with pytest.raises(CaptionerError, match="no config.json"):
        load(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CaptionerError, match="HF_HUB_OFFLINE"):
        load("Salesforce/blip2-opt-2.7b")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_device_without_cuda(tiny_model_dir):
    with pytest.raises(CaptionerError, match="CUDA is not available"):
        load(tiny_model_dir, device="cuda")
