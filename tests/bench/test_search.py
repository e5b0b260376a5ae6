"""bench/search.py at a toy size: synthetic vectors, and Shapes captions through a bag-of-words stand-in for
the sentence model; it writes search.json with every figure (no timing assertions)."""

from __future__ import annotations

import json
import zlib

import numpy as np

from lake.search import normalize


def bag_of_words(texts) -> np.ndarray:
    out = np.zeros((len(texts), 384), np.float32)
    for row, text in enumerate(texts):
        for word in text.split():
            out[row, zlib.crc32(word.encode()) % 384] += 1
    return normalize(out)


def check(r: dict, tmp_path, vectors: int) -> None:
    assert json.loads((tmp_path / "search.json").read_text()) == r
    (run,) = r["runs"]
    assert run["vectors"] == vectors and run["n_lists"] == round(vectors**0.5)
    assert [c["nprobe"] for c in run["curve"]] == [1, 4, run["n_lists"]]
    assert run["curve"][-1]["recall"] == 1.0  # every list probed: brute force
    for c in run["curve"] + [run["brute_force"]]:
        assert c["p50_ms"] > 0 and c["p99_ms"] >= c["p50_ms"]
    assert run["chosen"]["recall"] >= r["goal"]["recall"] and run["chosen"]["speedup_p50"] > 0
    assert 0 <= run["pca_rank_recall"] <= 1 and isinstance(run["goals_met"], bool)


def test_synthetic_vectors(tmp_path):
    from bench.search import main, synthetic

    x = synthetic(500, topics=20)
    assert x.shape == (500, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    r = main(sizes=(2500,), queries=20, nprobes=(1, 4, 50), results=tmp_path)
    check(r, tmp_path, 2500)
    assert r["data"]["kind"] == "synthetic"


def test_shapes_captions_with_an_injected_embedder(tmp_path):
    from bench.search import main, shapes_captions

    assert shapes_captions(3, seed=0) != shapes_captions(3, seed=1)
    r = main(queries=20, nprobes=(1, 4, 30), captions=900, embed=bag_of_words, results=tmp_path)
    check(r, tmp_path, 900)
    assert r["data"]["kind"] == "shapes captions"
