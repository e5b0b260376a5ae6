"""bench/caption.py at a tiny size (40 images, a tiny model trained 3 steps): it runs end to end on a local
SparkSession and writes caption.json with every figure (no timing assertions; no servers)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_caption_bench_writes_its_figures(tmp_path):
    from bench.caption import main
    from models.captioner.compact import CompactConfig
    from tests.models.captioner.conftest import TINY

    r = main(
        n=40,
        batch_size=8,
        steps=3,
        train_images=40,
        model_config=CompactConfig(**TINY),
        cache=tmp_path / "cache",
        results=tmp_path,
    )
    assert json.loads((tmp_path / "caption.json").read_text()) == r
    assert r["images"] == 40 and r["batch_size"] == 8 and r["cores"] >= 1
    assert r["captions_identical"] is True
    # the job spreads its one input partition over the cores (a session the suite already runs may have its own)
    assert r["spark_partitions"]["input"] == 1 and r["spark_partitions"]["job"] >= min(2, r["cores"])
    for key in (
        "bare_images_s",
        "spark_images_s",
        "ratio",
        "spark_warm_images_s",
        "warm_ratio",
        "mean_caption_words",
        "reference_caption_words",
    ):
        assert isinstance(r[key], (int, float)) and r[key] >= 0, key
    assert r["model"]["parameters"] > 0
    assert r["training"]["steps"] == 3 and r["training"]["batch_size"] == 32 and r["training"]["cached"] is False
    assert r["training"]["examples_per_s"] > 0
    assert r["torch_threads"]["bare"] >= 1 and len(r["torch_threads"]["spark_workers"]) >= 1
