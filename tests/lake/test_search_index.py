"""lake/search_index.py without servers: a bag-of-words embedder that counts its calls, caption rows in
memory, a dict for MinIO and a list for the catalog's runs. Incremental updates (add vs refit, what gets
embedded), the files of a version, publishing and loading through the pointer, and the job end to end."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from minio.error import S3Error

from lake import search as s
from lake import search_index as si
from lake.catalog import Catalog

DIM = 64
WORDS = {
    "size": ["small", "large"],
    "colour": ["red", "green", "blue", "yellow"],
    "shape": ["circle", "square", "star", "triangle"],
    "where": ["on the left", "on the right", "at the top"],
}
TEXTS = [f"a {a} {b} {c} {d}" for a, b, c, d in itertools.product(*WORDS.values())]  # 96 distinct captions


class Embedder:
    """Hashed bag of words, unit rows; remembers every text it embedded."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, texts):
        self.seen += list(texts)
        out = np.zeros((len(texts), DIM), np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, zlib.crc32(word.encode()) % DIM] += 1
        return s.normalize(out)


def image(i: int) -> str:
    return f"{i:064x}"


def rows(n: int, start: int = 0, offset: int = 0) -> list[tuple[str, str]]:
    return [(image(i), TEXTS[(i + offset) % len(TEXTS)]) for i in range(start, start + n)]


CONFIG = s.IndexConfig(pca_dims=16)


def test_first_build_embeds_each_distinct_caption_once():
    embed = Embedder()
    ci, counts = si.update(None, rows(300), embed, CONFIG)
    assert counts == {"captions": 300, "new": 300, "changed": 0, "removed": 0, "embedded": 96, "refit": 1}
    assert sorted(embed.seen) == sorted(TEXTS) and ci.index.size == 300
    assert dict(zip(ci.image_ids, ci.captions)) == dict(rows(300))
    hits = ci.search(Embedder()([TEXTS[5]]), k=3, nprobe=ci.index.n_lists)[0]
    assert hits[0].caption == TEXTS[5] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.image_id in {image(5), image(101), image(197), image(293)} for h in hits)


def test_nothing_new_returns_the_same_index_and_embeds_nothing():
    ci, _ = si.update(None, rows(50), Embedder(), CONFIG)
    embed = Embedder()
    again, counts = si.update(ci, rows(50)[::-1] + [(image(999), None), (image(998), "  ")], embed, CONFIG)
    assert again is ci and embed.seen == [] and counts["new"] == counts["changed"] == counts["embedded"] == 0


def test_new_images_are_added_without_refit():
    ci, _ = si.update(None, rows(400), Embedder(), CONFIG)
    embed = Embedder()
    grown, counts = si.update(ci, rows(420, offset=0) + [(image(500), "a purple hexagon in the middle")], embed, CONFIG)
    assert counts["refit"] == 0 and counts["new"] == 21 and embed.seen == ["a purple hexagon in the middle"]
    np.testing.assert_array_equal(grown.index.centroids, ci.index.centroids)  # the same lists, longer
    assert list(grown.image_ids[:400]) == list(ci.image_ids) and grown.image_ids[-1] == image(500)
    assert grown.similar(image(500), k=1, nprobe=grown.index.n_lists)[0].image_id != image(500)
    (hit,) = grown.search(Embedder()(["a purple hexagon in the middle"]), k=1, nprobe=grown.index.n_lists)[0]
    assert hit.image_id == image(500) and hit.score == pytest.approx(1.0, abs=1e-5)


def test_a_changed_or_vanished_caption_refits_on_the_stored_vectors():
    ci, _ = si.update(None, rows(200), Embedder(), CONFIG)
    changed = [(iid, "a tiny black dot at the bottom" if iid == image(7) else cap) for iid, cap in rows(200)]
    embed = Embedder()
    new, counts = si.update(ci, changed[:150] + changed[151:], embed, CONFIG)  # image 150 vanished
    assert counts == {"captions": 199, "new": 0, "changed": 1, "removed": 1, "embedded": 1, "refit": 1}
    assert embed.seen == ["a tiny black dot at the bottom"] and new.index.size == 199
    assert image(150) not in new.position and new.captions[new.position[image(7)]] == "a tiny black dot at the bottom"
    for iid in (image(0), image(42), image(199)):  # unchanged vectors are carried over, not recomputed
        np.testing.assert_allclose(
            s.vector(new.index, new.position[iid]), s.vector(ci.index, ci.position[iid]), atol=1e-6
        )
    with pytest.raises(KeyError):
        new.similar(image(150))


def test_refit_when_the_index_doubles():
    ci, _ = si.update(None, rows(100), Embedder(), CONFIG)
    grown, counts = si.update(ci, rows(250), Embedder(), CONFIG)
    assert counts["refit"] == 1 and counts["embedded"] == 0  # every text is indexed already: vectors reused
    assert grown.index.fitted_size == 250 and list(grown.image_ids) == [image(i) for i in range(250)]


def test_save_and_load_a_version(tmp_path):
    ci, _ = si.update(None, rows(120), Embedder(), CONFIG)
    si.save_index(ci, tmp_path / "v1")
    assert (tmp_path / "v1" / si.ROWS).is_file() and (tmp_path / "v1" / "manifest.json").is_file()
    back = si.load_index(tmp_path / "v1", version=1, mmap=True)
    assert back.version == 1 and list(back.image_ids) == list(ci.image_ids) and list(back.captions) == list(ci.captions)
    q = Embedder()([TEXTS[3]])
    assert back.search(q, 5) == ci.search(q, 5)


# ---- the object store and the job ------------------------------------------------------------------------------


class FakeMinio:
    """The few calls lake.search_index makes, on a dict."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}

    def _missing(self, bucket, key):
        return S3Error(None, "NoSuchKey", "missing", key, "", "", bucket, key)

    def put_object(self, bucket, key, data, length, content_type=None):
        self.objects[bucket, key] = data.read(length)

    def fput_object(self, bucket, key, path):
        self.objects[bucket, key] = Path(path).read_bytes()

    def get_object(self, bucket, key, offset=0, length=0):
        if (bucket, key) not in self.objects:
            raise self._missing(bucket, key)
        body = io.BytesIO(self.objects[bucket, key])
        return SimpleNamespace(read=body.read, close=body.close, release_conn=lambda: None)

    def fget_object(self, bucket, key, path):
        if (bucket, key) not in self.objects:
            raise self._missing(bucket, key)
        Path(path).write_bytes(self.objects[bucket, key])

    def list_objects(self, bucket, prefix="", recursive=False):
        return [SimpleNamespace(object_name=k) for b, k in sorted(self.objects) if b == bucket and k.startswith(prefix)]

    def remove_object(self, bucket, key):
        del self.objects[bucket, key]

    def versions(self) -> set[str]:
        return {k.split("/")[1] for b, k in self.objects if b == si.BUCKET and k.count("/") == 2}


class FakeRuns:
    def __init__(self):
        self.docs: dict[str, dict] = {}

    def insert_one(self, doc):
        self.docs[doc["_id"]] = dict(doc)

    def update_one(self, query, update):
        self.docs[query["_id"]].update(update["$set"])


@pytest.fixture
def job(tmp_path):
    mc, runs = FakeMinio(), FakeRuns()
    locks: list[str] = []

    @contextlib.contextmanager
    def lock(name):
        locks.append(name)
        yield

    def build(rows, embed=None, **kw):
        return si.build(
            rows=rows,
            embed=embed or Embedder(),
            mc=mc,
            catalog=Catalog(SimpleNamespace(runs=runs)),
            lock=lock,
            cache=tmp_path / "job-cache",
            config=CONFIG,
            **kw,
        )

    return SimpleNamespace(build=build, mc=mc, runs=runs, locks=locks, tmp=tmp_path)


def test_the_job_publishes_versions_behind_a_pointer(job):
    first = job.build(rows(150))
    assert first["status"] == "indexed" and first["version"] == 1 and first["uri"] == "s3://gold/search/v1/"
    pointer = si.read_pointer(job.mc)
    assert pointer["version"] == 1 and pointer["embedder"] == si.EMBEDDER and pointer["size"] == 150
    assert {f["name"] for f in pointer["files"]} >= {"manifest.json", "vectors.npy", si.ROWS}
    assert job.locks == ["search:s3://gold/search/"]
    (run,) = job.runs.docs.values()
    assert run["status"] == "succeeded" and run["job"] == si.JOB and run["outputs"]["version"] == 1
    assert run["counts"]["embedded"] == 96

    embed = Embedder()
    idle = job.build(rows(150), embed)
    assert idle["status"] == "nothing to do" and idle["version"] == 1 and embed.seen == []
    assert si.read_pointer(job.mc)["version"] == 1

    for n in (160, 170, 180):
        job.build(rows(n))
    assert si.read_pointer(job.mc)["version"] == 4 and job.mc.versions() == {"v2", "v3", "v4"}  # KEEP = 3

    cache = job.tmp / "api-cache"
    ci = si.load_current(si.read_pointer(job.mc), mc=job.mc, cache=cache)
    assert ci.version == 4 and ci.index.size == 180 and isinstance(ci.index.vectors[0], np.memmap)
    assert [p.name[:3] for p in cache.iterdir()] == ["v4-"]  # no temporary folder left behind
    assert si.load_current(None, mc=job.mc, cache=cache) is None


def test_another_index_of_the_same_version_is_another_copy(job, tmp_path):
    """A version number names a copy only with its content: a scratch lake's v1 (or a rebuilt lake's) served
    from a cache that holds another index's v1 is downloaded, not read from that other copy."""
    job.build(rows(60))
    cache = tmp_path / "shared-cache"
    first = si.load_current(si.read_pointer(job.mc), mc=job.mc, cache=cache)
    job.mc.objects.clear()  # the same bucket emptied, and another index published as v1 again
    job.build(rows(30))
    other = si.load_current(si.read_pointer(job.mc), mc=job.mc, cache=cache)
    assert first.version == other.version == 1 and (first.index.size, other.index.size) == (60, 30)
    assert len(list(cache.iterdir())) == 2


def test_a_corrupt_download_is_refused(job):
    job.build(rows(60))
    pointer = si.read_pointer(job.mc)
    job.mc.objects[si.BUCKET, pointer["prefix"] + "vectors.npy"] += b"x"
    with pytest.raises(OSError, match="SHA-256"):
        si.load_current(pointer, mc=job.mc, cache=job.tmp / "api-cache")
    assert list((job.tmp / "api-cache").iterdir()) == []


def test_another_embedder_reembeds_everything(job):
    job.build(rows(100))
    job.mc.objects[si.BUCKET, si.POINTER] = job.mc.objects[si.BUCKET, si.POINTER].replace(
        si.EMBEDDER.encode(), b"some-older-model"
    )
    embed = Embedder()
    out = job.build(rows(100), embed)
    assert out["status"] == "indexed" and out["version"] == 2 and len(embed.seen) == 96


def test_a_failed_run_is_recorded_and_publishes_nothing(job):
    def broken(texts):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        job.build(rows(30), broken)
    (run,) = job.runs.docs.values()
    assert run["status"] == "failed" and "exploded" in run["error"] and si.read_pointer(job.mc) is None


def test_read_captions_through_a_query_function():
    seen = []

    def query(sql):
        seen.append(sql)
        return [["a" * 64, "a red star"], ["b" * 64, "a blue circle"]]

    assert si.read_captions(query) == [("a" * 64, "a red star"), ("b" * 64, "a blue circle")]
    assert "FROM lake.gold.image_captions" in seen[0]

    def missing(sql):
        raise RuntimeError("TrinoUserError(type=USER_ERROR, name=TABLE_NOT_FOUND, ...)")

    with pytest.raises(LookupError, match="lake layers run"):
        si.read_captions(missing)


def test_cli_query_and_index(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import lake.clients
    from lake.cli.search import search_app

    ci, _ = si.update(None, rows(120), Embedder(), CONFIG)
    monkeypatch.setattr(lake.clients, "minio_client", lambda *a: None)
    monkeypatch.setattr(si, "read_pointer", lambda mc: {"version": 7})
    monkeypatch.setattr(si, "load_current", lambda pointer: si.CaptionIndex(ci.index, ci.image_ids, ci.captions, 7))
    monkeypatch.setattr(s, "minilm_embedder", Embedder)
    runner = CliRunner()
    r = runner.invoke(search_app, ["query", TEXTS[4], "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert len(hits) == 3 and {h["image_id"] for h in hits[:2]} == {image(4), image(100)}  # the two with TEXTS[4]
    r = runner.invoke(search_app, ["query", "--like", image(4), "-k", "2"])
    assert r.exit_code == 0 and "index v7" in r.output
    assert runner.invoke(search_app, ["query", "--like", image(999)]).exit_code == 2
    assert runner.invoke(search_app, ["query"]).exit_code == 2

    monkeypatch.setattr(si, "build", lambda refit: {"status": "nothing to do", "message": "nothing new", "counts": {}})
    r = runner.invoke(search_app, ["index", "--idle-exit-code", "99"])
    assert r.exit_code == 99 and "nothing new" in r.output
