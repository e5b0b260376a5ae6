"""A 20-step training smoke test and the CLI (models/captioner/train.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import torch
from typer.testing import CliRunner

from models.captioner import load
from models.captioner.data import read_shapes, slices_of
from models.captioner.train import TrainConfig, shapes_examples, train


def test_twenty_steps_write_a_loadable_model(shapes_dir, tiny_config, tmp_path):
    records = read_shapes(shapes_dir, "train")
    examples = shapes_examples(records)
    examples = [(examples[0][0].read_bytes(), examples[0][1]), *examples[1:]]  # bytes work as well as paths
    seen = []
    config = TrainConfig(model=tiny_config, batch_size=8, lr=3e-3, warmup_steps=5, steps=20, minutes=None, threads=1)
    result = train(examples, config, tmp_path / "run", progress=seen.append)
    assert result.steps == 20 and result.images_seen == 160 and len(seen) == 20
    assert seen[-1].loss < seen[0].loss
    assert seen[4].lr == config.lr and seen[-1].lr < config.lr / 2  # warmup, then cosine
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "processor_config.json",
        "loss_curve.png",
        "train_result.json",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    assert json.loads((tmp_path / "run" / "train_result.json").read_text())["steps"] == 20
    captions = load(tmp_path / "run").caption([__import__("PIL.Image").Image.open(records[0].path)])
    assert len(captions) == 1

    again = train(examples[:16], replace(config, steps=2), tmp_path / "again", init_from=tmp_path / "run")
    assert again.steps == 2 and again.parameters == result.parameters
    before, after = (load(tmp_path / d).model.vision_model.embeddings.position_embedding for d in ("run", "again"))
    assert torch.equal(before, after)  # sin-cos positions stay fixed


def test_examples_and_slices(shapes_dir):
    records = read_shapes(shapes_dir)
    assert {r.split for r in records} <= {"train", "val", "test"}
    assert len(shapes_examples(records, "all")) == 3 * len(shapes_examples(records, "first"))
    assert all(c == r.captions[0] for (_, c), r in zip(shapes_examples(records), records))
    one = next(r for r in records if len(r.objects) == 1)
    assert f"shape={one.objects[0]['shape']}" in slices_of(one) and "objects=1" in slices_of(one)


def test_cli_help():
    import typer

    from models.captioner.train import main

    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "--minutes" in result.output


def test_a_budget_is_required():
    import pytest

    from models.captioner.train import TrainConfig

    with pytest.raises(ValueError, match="budget"):
        TrainConfig(minutes=None, steps=None)
