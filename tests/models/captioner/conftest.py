"""Tiny Shapes folders and tiny compact BLIP-2 checkpoints for the captioner tests (no network)."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TINY = dict(
    image_size=32,
    patch_size=8,
    vision_hidden=32,
    vision_layers=1,
    vision_heads=2,
    qformer_hidden=32,
    qformer_layers=1,
    qformer_heads=2,
    num_query_tokens=4,
    text_hidden=32,
    text_layers=1,
    text_heads=2,
    mlp_ratio=2,
    max_text_tokens=24,
)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    from lake.datasets.shapes import write_dataset

    return write_dataset(tmp_path_factory.mktemp("shapes"), 80, seed=7, progress=False)


@pytest.fixture(scope="session")
def tiny_config():
    from models.captioner.compact import CompactConfig

    return CompactConfig(**TINY)


def save_tiny_model(out, config, captions):
    """An untrained tiny compact model (vocabulary from ``captions``) saved with save_pretrained into ``out``,
    as a real checkpoint directory is."""
    import torch

    from models.captioner.compact import build

    torch.manual_seed(0)
    model, processor = build(config, list(captions))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, shapes_dir, tiny_config):
    from models.captioner.data import read_shapes

    return save_tiny_model(
        tmp_path_factory.mktemp("tiny_model"), tiny_config, [c for r in read_shapes(shapes_dir) for c in r.captions]
    )
