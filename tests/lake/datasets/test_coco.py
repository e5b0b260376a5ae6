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
from lake.datasets.coco import load_sidecar, locate, read_coco_captions
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


def _stand_in(monkeypatch, failed=()) -> list:
    """lake.ingest replaced: records what `coco import` hands over, reports it all uploaded."""
    calls = []

    def ingest_files(files, *, source):
        calls.append((files, source))
        return _Report(uploaded=len(files), skipped=0, failed=list(failed), new_images=len(files))

    monkeypatch.setitem(sys.modules, "lake.ingest", types.SimpleNamespace(ingest_files=ingest_files))
    return calls


def test_cli_import_hands_present_files_and_captions_to_ingest(tmp_path, monkeypatch):
    calls = _stand_in(monkeypatch)
    (tmp_path / "imgs").mkdir()
    for name in ("a.jpg", "b.jpg"):  # c.jpg is missing
        (tmp_path / "imgs" / name).write_bytes(b"\xff\xd8")
    ann = _write(tmp_path / "captions.json", COCO)
    result = CliRunner().invoke(
        app, ["datasets", "coco", "import", str(ann), str(tmp_path / "imgs"), "--source", "test"]
    )
    assert result.exit_code == 0, result.output
    ((files, source),) = calls
    assert sorted(p.name for p in files) == ["a.jpg", "b.jpg"] and source == "test"
    assert files[tmp_path / "imgs" / "a.jpg"] == ["A dog on a sofa.", "a brown dog"]
    assert "1 of 3 images are missing" in result.output and "uploaded" in result.output
    assert f"missing c.jpg: no such file in {tmp_path / 'imgs'}" in result.output


def test_cli_import_keeps_the_captions_of_file_names_with_folders(tmp_path, monkeypatch):
    calls = _stand_in(monkeypatch)
    doc = {
        "images": [{"id": 1, "file_name": "val/x.jpg"}, {"id": 2, "file_name": "train/deep/y.jpg"}],
        "annotations": [{"image_id": 1, "caption": "an x"}, {"image_id": 2, "caption": "a y"}],
    }
    (tmp_path / "imgs" / "val").mkdir(parents=True)
    (tmp_path / "imgs" / "train" / "deep").mkdir(parents=True)
    (tmp_path / "imgs" / "val" / "x.jpg").write_bytes(b"x")
    (tmp_path / "imgs" / "train" / "deep" / "y.jpg").write_bytes(b"y")
    result = CliRunner().invoke(
        app, ["datasets", "coco", "import", str(_write(tmp_path / "c.json", doc)), str(tmp_path / "imgs")]
    )
    assert result.exit_code == 0, result.output
    ((files, _),) = calls
    assert files == {
        tmp_path / "imgs" / "val" / "x.jpg": ["an x"],
        tmp_path / "imgs" / "train" / "deep" / "y.jpg": ["a y"],
    }


def test_cli_import_lists_each_missing_file_even_when_none_is_there(tmp_path, monkeypatch):
    calls = _stand_in(monkeypatch)
    (tmp_path / "imgs").mkdir()
    ann = _write(tmp_path / "captions.json", {"val/[1].jpg": ["one"], "val/2.jpg": ["two"]})
    result = CliRunner().invoke(app, ["datasets", "coco", "import", str(ann), str(tmp_path / "imgs")])
    assert result.exit_code == 1 and not calls
    assert "missing val/[1].jpg: no such file" in result.output and "missing val/2.jpg" in result.output
    assert "none of the 2 images" in result.output


def test_cli_import_lists_failures_and_exits_1(tmp_path, monkeypatch):
    _stand_in(monkeypatch, failed=[("imgs/a.jpg", "not_an_image: unknown format")])
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"x")
    ann = _write(tmp_path / "captions.json", {"a.jpg": ["one"]})
    result = CliRunner().invoke(app, ["datasets", "coco", "import", str(ann), str(tmp_path / "imgs")])
    assert result.exit_code == 1 and "failed imgs/a.jpg: not_an_image: unknown format" in result.output


def test_locate_finds_names_with_folders_and_says_why_for_the_rest(tmp_path):
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "x.jpg").write_bytes(b"x")
    (tmp_path / "y.jpg").write_bytes(b"y")
    (tmp_path / "dir.jpg").mkdir()
    caps = {
        "val/x.jpg": ["an x"],
        "./y.jpg": ["a y"],
        "y.jpg": ["also y"],
        "val/gone.jpg": ["lost"],
        "dir.jpg": [],
        "../outside.jpg": [],
        "/etc/passwd": [],
    }
    found, missing = locate(caps, tmp_path)
    assert found == {tmp_path / "val" / "x.jpg": ["an x"], tmp_path / "y.jpg": ["a y", "also y"]}
    assert dict(missing) == {
        "val/gone.jpg": f"no such file in {tmp_path}",
        "dir.jpg": "not a file",
        "../outside.jpg": f"not a file name inside {tmp_path}",
        "/etc/passwd": f"not a file name inside {tmp_path}",
    }


def test_cli_import_reports_a_malformed_file(tmp_path):
    ann = _write(tmp_path / "captions.json", {**COCO, "annotations": [{"image_id": 9, "caption": "x"}]})
    result = CliRunner().invoke(app, ["datasets", "coco", "import", str(ann), str(tmp_path)])
    assert result.exit_code == 1 and "unknown image_id 9" in result.output
