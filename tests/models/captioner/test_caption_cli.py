"""`lake caption DIR --model PATH --out FILE.json` on a tiny checkpoint (no servers)."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from lake.cli import app


def test_caption_writes_one_caption_per_image_and_skips_bad_files(tmp_path, shapes_dir, tiny_model_dir):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    pictures = sorted(p for p in shapes_dir.iterdir() if p.suffix in (".png", ".jpg"))[:5]
    for p in pictures[:3]:
        shutil.copy(p, folder / p.name)
    for p in pictures[3:]:
        shutil.copy(p, folder / "sub" / p.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "captions.json"
    result = CliRunner().invoke(app, ["caption", str(folder), "--model", str(tiny_model_dir), "--out", str(out)])
    captions = json.loads(out.read_text())
    assert set(captions) == {p.name for p in pictures[:3]} | {f"sub/{p.name}" for p in pictures[3:]}
    assert all(isinstance(c, str) for c in captions.values())
    assert result.exit_code == 1 and "broken.jpg" in result.output  # reported, not fatal to the others


def test_caption_with_a_missing_model_says_so(tmp_path):
    result = CliRunner().invoke(
        app, ["caption", str(tmp_path), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o.json")]
    )
    assert result.exit_code == 2 and "error" in result.output
