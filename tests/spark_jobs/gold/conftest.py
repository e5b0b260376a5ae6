"""A tiny BLIP-2 checkpoint for the captioning job's tests (no network)."""

from __future__ import annotations

import pytest

from lake.datasets.shapes import generate


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    import torch

    from models.captioner.compact import CompactConfig, build
    from tests.models.captioner.conftest import TINY

    torch.manual_seed(1)
    samples = list(generate(12, seed=5))
    model, processor = build(CompactConfig(**TINY), [c for s in samples for c in s.captions])
    out = tmp_path_factory.mktemp("tiny_caption_model")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return str(out)
