"""lake/datasets/shapes.py against docs/shapes.md. Pure, no servers (~5 s).

.lake/venvs/core/bin/pytest tests/lake/datasets/test_shapes.py
"""

import hashlib
import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lake.cli import app
from lake.datasets.shapes import (
    COLOURS,
    POSITIONS,
    SIZE,
    ShapeObject,
    boxes_apart,
    captions_for,
    generate,
    layout,
    outline,
    render,
    sample_objects,
    split_of,
    write_dataset,
)


def test_same_seed_same_bytes_and_longer_runs_extend_shorter_ones():
    a, b = list(generate(12, seed=3)), list(generate(12, seed=3))
    assert a == b
    assert list(generate(5, seed=3)) == a[:5]
    assert [s.data for s in generate(12, seed=4)] != [s.data for s in a]


def test_one_object_captions():
    obj = ShapeObject("circle", "red", "small", "left")
    assert captions_for([obj], "white") == (
        "a small red circle on the left",
        "a red circle on the left of the image",
        "a small red circle on the left on a white background",
    )
    star = ShapeObject("star", "orange", "large", "center")
    assert captions_for([star], "gray")[2] == "a large orange star in the center on a gray background"


def test_left_right_captions_put_the_left_object_first_whatever_the_order():
    left, right = ShapeObject("circle", "red", "small", "left"), ShapeObject("square", "blue", "large", "right")
    expected = (
        "a small red circle to the left of a large blue square",
        "a red circle and a blue square",
        "a large blue square to the right of a small red circle",
    )
    assert captions_for([left, right], "white") == expected
    assert captions_for([right, left], "gray") == expected


def test_top_bottom_captions():
    top, bottom = ShapeObject("star", "yellow", "large", "top"), ShapeObject("triangle", "black", "small", "bottom")
    assert captions_for([bottom, top], "gray") == (
        "a large yellow star above a small black triangle",
        "a yellow star and a black triangle",
        "a small black triangle below a large yellow star",
    )


def test_captions_reject_layouts_outside_the_spec():
    with pytest.raises(ValueError, match="left/right or top/bottom"):
        captions_for(
            [ShapeObject("star", "red", "small", "left"), ShapeObject("star", "blue", "small", "top")], "white"
        )
    with pytest.raises(ValueError, match="one or two"):
        captions_for([], "white")


def test_samples_follow_the_spec():
    for s in generate(200, seed=7):
        assert s.captions == captions_for(s.objects, s.background)
        assert s.background in ("white", "gray")
        if len(s.objects) == 2:
            a, b = s.objects
            assert (a.position, b.position) in (("left", "right"), ("top", "bottom"))
            assert (a.colour, a.shape) != (b.colour, b.shape)
        img = Image.open(io.BytesIO(s.data))
        assert img.size == (SIZE, SIZE) and img.mode == "RGB"
        assert img.format == s.fmt.upper() and s.filename.endswith(".jpg" if s.fmt == "jpeg" else ".png")
        assert s.filename.startswith("shape_7_")


def test_held_back_star_and_star_only():
    assert not any(o.shape == "star" for s in generate(500, seed=1, star="none") for o in s.objects)
    assert all(any(o.shape == "star" for o in s.objects) for s in generate(500, seed=1, star="only"))
    shapes = Counter(o.shape for s in generate(100, seed=2) for o in s.objects)
    assert set(shapes) == {"circle", "square", "triangle", "star"}


def test_formats_and_object_counts():
    assert {s.fmt for s in generate(20, fmt="png")} == {"png"}
    assert {s.fmt for s in generate(20, fmt="jpeg")} == {"jpeg"}
    assert {s.fmt for s in generate(40)} == {"png", "jpeg"}
    assert {len(s.objects) for s in generate(20, one_object_ratio=1.0)} == {1}
    with pytest.raises(ValueError, match="star"):
        next(generate(1, star="some"))


@pytest.mark.parametrize("background", ["white", "gray"])
@pytest.mark.parametrize("colour", sorted(COLOURS))
def test_rendered_colours_match_the_spec(colour, background):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        position = ("left", "right", "top", "bottom", "center")[seed]
        arr = np.asarray(render([ShapeObject("circle", colour, "large", position)], background, rng), dtype=float)
        x, y = POSITIONS[position]  # a large circle (radius >= 22) covers its nominal centre despite +-6 jitter
        centre = arr[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(axis=0)  # 5x5 mean: noise sigma 8 -> 1.6
        assert np.abs(centre - COLOURS[colour]).max() <= 15 + 6, (colour, position, centre)
        corner = arr[:4, :4].reshape(-1, 3).mean(axis=0)
        lo, hi = (245, 255) if background == "white" else (115, 140)
        assert np.all(corner >= lo - 6) and np.all(corner <= hi + 6), corner


def test_two_objects_never_overlap_and_stay_on_the_canvas():
    for i in range(2000):
        rng = np.random.default_rng([11, i])
        objects, _ = sample_objects(rng, one_object_ratio=0.0)
        placed = layout(objects, rng)
        assert boxes_apart(placed[0].bbox, placed[1].bbox, gap=2.0), placed
        for p in placed:
            x0, y0, x1, y1 = p.bbox
            assert 0 <= x0 and 0 <= y0 and x1 <= SIZE and y1 <= SIZE
            assert (44 <= p.side <= 60) if p.obj.size == "large" else (18 <= p.side <= 30)
            if p.obj.shape != "circle":  # the drawn polygon lies inside the bbox and spans `side`
                pts = np.array(outline(p))
                assert pts[:, 0].min() >= x0 - 1e-6 and pts[:, 0].max() <= x1 + 1e-6
                assert pts[:, 1].min() >= y0 - 1e-6 and pts[:, 1].max() <= y1 + 1e-6
                assert max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])) == pytest.approx(p.side)


def test_split_of_is_80_10_10_and_stable():
    ids = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(5000)]
    counts = Counter(split_of(i) for i in ids)
    assert abs(counts["train"] / 5000 - 0.8) < 0.03
    assert abs(counts["val"] / 5000 - 0.1) < 0.02 and abs(counts["test"] / 5000 - 0.1) < 0.02
    assert [split_of(i) for i in ids[:100]] == [split_of(i) for i in ids[:100]]
    # pinned: sha256 of the id's ASCII text, first 8 hex digits, mod 100
    assert split_of(ids[0]) == "train" and split_of(ids[9]) == "val" and split_of(ids[28]) == "test"


def test_write_dataset_writes_images_and_sidecars(tmp_path):
    out = write_dataset(tmp_path / "s", 8, seed=5, progress=False)
    captions = json.loads((out / "captions.json").read_text())
    images = sorted(p.name for p in out.glob("shape_5_*"))
    assert sorted(captions) == images and len(images) == 8
    lines = [json.loads(line) for line in (out / "attributes.jsonl").read_text().splitlines()]
    assert [row["file_name"] for row in lines] == [s.filename for s in generate(8, seed=5)]
    for row in lines:
        data = (out / row["file_name"]).read_bytes()
        assert row["image_id"] == hashlib.sha256(data).hexdigest() and row["split"] == split_of(row["image_id"])
        assert len(captions[row["file_name"]]) == 3 and row["background"] in ("white", "gray")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(out, 2, progress=False)
    write_dataset(out, 2, seed=6, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["attributes.jsonl", "captions.json", *(s.filename for s in generate(2, seed=6))]
    )


def test_cli_make(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["datasets", "shapes", "make", str(tmp_path / "d"), "-n", "6", "--seed", "2", "--only-star", "--format", "png"],
    )
    assert result.exit_code == 0, result.output
    captions = json.loads((tmp_path / "d" / "captions.json").read_text())
    assert len(captions) == 6 and len(list((tmp_path / "d").glob("*.png"))) == 6
    assert all("star" in caps[1] for caps in captions.values())
    both = runner.invoke(
        app, ["datasets", "shapes", "make", str(tmp_path / "e"), "-n", "2", "--no-star", "--only-star"]
    )
    assert both.exit_code != 0 and "exclude each other" in both.output
    assert not (tmp_path / "e").exists()


def test_every_word_of_the_vocabulary_is_drawn_in_its_order():
    """The words live in models/captioner/vocab.py (the tokenizer's), the drawing here: one list of words."""
    from lake.datasets import shapes
    from models.captioner import vocab

    for name in ("COLOURS", "SIZES", "POSITIONS", "BACKGROUNDS"):
        assert tuple(getattr(shapes, name)) == getattr(vocab, name), name
    assert set(vocab.PHRASES) == set(vocab.POSITIONS)
    assert shapes.captions_for is vocab.captions_for and shapes.ShapeObject is vocab.ShapeObject
