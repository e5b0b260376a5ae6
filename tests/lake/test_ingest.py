"""lake/ingest.py without servers: the journal, event ids and caption lookup of `lake ingest`
(upload_bytes, MinIO and Kafka replaced by stand-ins that record what would be sent).

.lake/venvs/core/bin/pytest tests/lake/test_ingest.py
"""

from __future__ import annotations

import hashlib
import types
from pathlib import Path

import pytest

import lake.ingest as ingest
from lake.config import Settings


class _Sent:
    """upload_bytes's stand-in: records each call's captions and event id."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, data: bytes, *, captions, source, s, mc=None, producer=None, event_id=None, **kw):
        image_id = hashlib.sha256(data).hexdigest()
        self.calls.append({"image_id": image_id, "captions": list(captions), "source": source, "event_id": event_id})
        event = types.SimpleNamespace(image_id=image_id, event_id=event_id)
        return types.SimpleNamespace(event=event, new=True)


@pytest.fixture
def sent(monkeypatch) -> _Sent:
    rec = _Sent()
    monkeypatch.setattr(ingest, "upload_bytes", rec)
    monkeypatch.setattr(ingest, "minio_client", lambda s: None)
    monkeypatch.setattr(ingest, "get_producer", lambda s: types.SimpleNamespace(flush=lambda: None))
    return rec


def _settings(state: Path) -> Settings:
    return Settings(_env_file=None, state_dir=state)


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    (root / "val").mkdir(parents=True)
    (root / "val" / "x.png").write_bytes(b"x-bytes")
    (root / "y.png").write_bytes(b"y-bytes")
    return root


def _run(paths, captions, state: Path, **kw):
    return ingest.ingest_paths(paths, captions, s=_settings(state), show_progress=False, workers=2, **kw)


def test_rerun_with_the_same_captions_skips_everything(tmp_path, sent):
    root = _folder(tmp_path)
    caps = {"val/x.png": ["a cross"], "y.png": ["a y"]}
    first = _run([root], caps, tmp_path / "state")
    again = _run([root], caps, tmp_path / "state")
    assert (first.uploaded, first.skipped) == (2, 0)
    assert (again.uploaded, again.skipped) == (0, 2) and len(sent.calls) == 2


def test_rerun_with_a_corrected_or_added_caption_sends_those_files_again(tmp_path, sent):
    root = _folder(tmp_path)
    state = tmp_path / "state"
    _run([root], {"val/x.png": ["a crosss"], "y.png": ["a y"]}, state)
    report = _run([root], {"val/x.png": ["a cross"], "y.png": ["a y", "the letter y"]}, state)
    assert (report.uploaded, report.skipped, report.failed) == (2, 0, [])
    first, second = sent.calls[:2], sent.calls[2:]
    assert sorted(c["captions"] for c in second) == [["a cross"], ["a y", "the letter y"]]
    assert {c["event_id"] for c in first}.isdisjoint(c["event_id"] for c in second)
    # and the corrected captions are now what counts as sent
    assert _run([root], {"val/x.png": ["a cross"], "y.png": ["a y", "the letter y"]}, state).skipped == 2


def test_event_id_is_the_same_for_the_same_file_and_captions(tmp_path, sent):
    """A run that dies after the broker's ack but before the journal re-sends the same event
    (a fresh state dir stands for the lost journal entry), so the stream lands it once."""
    root = _folder(tmp_path)
    caps = {"val/x.png": ["a cross"], "y.png": []}
    _run([root], caps, tmp_path / "a")
    _run([root], caps, tmp_path / "b")
    ids = [c["event_id"] for c in sent.calls]
    assert len(set(ids)) == 2 and sorted(ids[:2]) == sorted(ids[2:])


def test_event_id_changes_with_the_bytes_or_the_source(tmp_path, sent):
    root = _folder(tmp_path)
    caps = {"y.png": ["a y"]}
    _run([root / "y.png"], caps, tmp_path / "a")
    _run([root / "y.png"], caps, tmp_path / "b", source="other")
    (root / "y.png").write_bytes(b"other-y-bytes")
    _run([root / "y.png"], caps, tmp_path / "c")
    assert len({c["event_id"] for c in sent.calls}) == 3


def test_sidecar_names_with_folders_find_their_files_from_any_root(tmp_path, sent):
    root = _folder(tmp_path)
    caps = {"val/x.png": ["a cross"], "y.png": ["a y"]}
    _run([root / "val"], caps, tmp_path / "a")  # the folder itself: x.png is "val/x.png" in the sidecar
    _run([root / "val" / "x.png"], caps, tmp_path / "b")  # one file named on the command line
    assert [c["captions"] for c in sent.calls] == [["a cross"], ["a cross"]]


def test_a_root_relative_name_wins_over_a_same_named_file_elsewhere(tmp_path, sent):
    root = _folder(tmp_path)
    (root / "x.png").write_bytes(b"top-x-bytes")
    _run([root], {"x.png": ["top"], "val/x.png": ["nested"]}, tmp_path / "state")
    by_id = {c["image_id"]: c["captions"] for c in sent.calls}
    assert by_id[hashlib.sha256(b"top-x-bytes").hexdigest()] == ["top"]
    assert by_id[hashlib.sha256(b"x-bytes").hexdigest()] == ["nested"]


def test_ingest_files_takes_each_files_captions(tmp_path, sent):
    root = _folder(tmp_path)
    report = ingest.ingest_files(
        {root / "val" / "x.png": ["a cross"], root / "y.png": []},
        source="coco",
        s=_settings(tmp_path / "state"),
        show_progress=False,
    )
    assert report.uploaded == 2
    assert sorted((c["captions"], c["source"]) for c in sent.calls) == [([], "coco"), (["a cross"], "coco")]


def test_a_file_that_vanished_is_reported_not_a_crash(tmp_path, sent):
    root = _folder(tmp_path)
    gone = root / "gone.png"
    report = ingest.ingest_files(
        {gone: ["lost"], root / "y.png": ["a y"]}, s=_settings(tmp_path / "state"), show_progress=False
    )
    assert report.uploaded == 1
    ((path, reason),) = report.failed
    assert path == str(gone) and reason.startswith("missing:")


def test_a_journal_from_before_captions_counted_still_skips_caption_less_files(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"a")
    st = f.stat()
    assert ingest.Journal.key(f) == ingest.Journal.key(f, []) == f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    assert ingest.Journal.key(f, ["a"]) != ingest.Journal.key(f, ["b"]) != ingest.Journal.key(f)
