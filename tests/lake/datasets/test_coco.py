"""lake/datasets/coco.py and `lake datasets coco import` (with a stand-in for lake.ingest). No servers.

.lake/venvs/core/bin/pytest tests/lake/datasets/test_coco.py
"""

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lake.cli import app
from lake.datasets.coco import load_sidecar, read_coco_captions
from lake.datasets.shapes import write_dataset

COCO = {
    "info": {"description": "tiny"},
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
        {"id": 2, "file_name": "b.jpg"},
        {"id": 3, "file_name": "c.jpg"},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "caption": "  A dog on a sofa.\n"},
        {"id": 11, "image_id": 2, "caption": "a cat"},
        {"id": 12, "image_id": 1, "caption": "a brown dog"},
    ],
}


def _write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_reads_coco_captions(tmp_path):
    got = read_coco_captions(_write(tmp_path / "captions.json", COCO))
    assert got == {"a.jpg": ["A dog on a sofa.", "a brown dog"], "b.jpg": ["a cat"], "c.jpg": []}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"images": []}, "not a COCO captions file"),
        ([1, 2], "not a COCO captions file"),
        ({"images": [{"id": 1}], "annotations": []}, r"images\[0\] needs an 'id' and a string 'file_name'"),
        (
            {"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}], "annotations": []},
            "repeats image id 1",
        ),
        ({**COCO, "annotations": [{"image_id": 9, "caption": "x"}]}, "unknown image_id 9"),
        ({**COCO, "annotations": [{"image_id": 1}]}, r"annotations\[0\] needs an 'image_id' and a string 'caption'"),
    ],
)
def test_malformed_coco_files_name_the_problem(tmp_path, doc, message):
    path = _write(tmp_path / "bad.json", doc)
    with pytest.raises(ValueError, match=message) as e:
        read_coco_captions(path)
    assert str(path) in str(e.value)


def test_sidecar_json_csv_and_coco(tmp_path):
    assert load_sidecar(_write(tmp_path / "caps.json", {"x.png": [" one ", "two"], "y.png": []})) == {
        "x.png": ["one", "two"],
        "y.png": [],
    }
    csv = _write(tmp_path / "caps.csv", 'file_name,caption\nx.png,one\nx.png," two, with a comma "\ny.png,three\n')
    assert load_sidecar(csv) == {"x.png": ["one", "two, with a comma"], "y.png": ["three"]}
    assert load_sidecar(_write(tmp_path / "coco.json", COCO))["c.jpg"] == []


def test_sidecar_reads_what_the_shapes_generator_writes(tmp_path):
    out = write_dataset(tmp_path / "shapes", 4, progress=False)
    caps = load_sidecar(out / "captions.json")
    assert len(caps) == 4 and all(len(c) == 3 for c in caps.values())


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("caps.txt", "x.png one", "unknown caption sidecar format"),
        ("caps.csv", "image,text\nx.png,one\n", "header 'file_name,caption'"),
        ("caps.csv", "file_name,caption\nx.png,one,extra\n", "line 2 needs two fields"),
        ("caps.json", '["x.png"]', r"\{file_name: \[caption, ...\]\}"),
        ("caps.json", '{"x.png": "one"}', r"\{file_name: \[caption, ...\]\}"),
    ],
)
def test_sidecar_rejects_other_formats(tmp_path, name, text, message):
    with pytest.raises(ValueError, match=message):
        load_sidecar(_write(tmp_path / name, text))


@dataclass
class _Report:
    uploaded: int
    skipped: int
    failed: list = field(default_factory=list)
    new_images: int = 0


def test_cli_import_hands_present_files_and_captions_to_ingest(tmp_path, monkeypatch):
    calls = []

    def ingest_paths(paths, captions, source):
        calls.append((paths, captions, source))
        return _Report(uploaded=len(paths), skipped=0, new_images=len(paths))

    monkeypatch.setitem(sys.modules, "lake.ingest", types.SimpleNamespace(ingest_paths=ingest_paths))
    (tmp_path / "imgs").mkdir()
    for name in ("a.jpg", "b.jpg"):  # c.jpg is missing
        (tmp_path / "imgs" / name).write_bytes(b"\xff\xd8")
    ann = _write(tmp_path / "captions.json", COCO)
    result = CliRunner().invoke(
        app, ["datasets", "coco", "import", str(ann), str(tmp_path / "imgs"), "--source", "test"]
    )
    assert result.exit_code == 0, result.output
    ((paths, captions, source),) = calls
    assert [p.name for p in paths] == ["a.jpg", "b.jpg"] and source == "test"
    assert captions["a.jpg"] == ["A dog on a sofa.", "a brown dog"]
    assert "1 of 3 images are missing" in result.output and "uploaded" in result.output


def test_cli_import_reports_a_malformed_file(tmp_path):
    ann = _write(tmp_path / "captions.json", {**COCO, "annotations": [{"image_id": 9, "caption": "x"}]})
    result = CliRunner().invoke(app, ["datasets", "coco", "import", str(ann), str(tmp_path)])
    assert result.exit_code == 1 and "unknown image_id 9" in result.output
