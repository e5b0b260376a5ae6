"""evaluate() on known strings, slices, and Shapes attribute accuracy (models/captioner/evaluate.py)."""

from __future__ import annotations

import pytest

from models.captioner.evaluate import evaluate, parse_shapes_caption, shapes_accuracy

REFS = [
    [
        "a small red circle on the left",
        "a red circle on the left of the image",
        "a small red circle on the left on a white background",
    ],
    [
        "a large blue square above a small green star",
        "a blue square and a green star",
        "a small green star below a large blue square",
    ],
    [
        "a large black triangle in the center",
        "a black triangle in the center of the image",
        "a large black triangle in the center on a gray background",
    ],
    [
        "a small yellow star at the bottom",
        "a yellow star at the bottom of the image",
        "a small yellow star at the bottom on a gray background",
    ],
]
SLICES = [["objects=1"], ["objects=2", "star"], ["objects=1"], ["objects=1", "star"]]


def test_perfect_captions_score_high_and_wrong_ones_low():
    perfect = evaluate([r[0] for r in REFS], REFS, SLICES, meteor=True)
    assert perfect["overall"]["BLEU-1"] == pytest.approx(1.0) and perfect["overall"]["BLEU-4"] == pytest.approx(1.0)
    assert perfect["overall"]["ROUGE-L"] == pytest.approx(1.0)
    assert perfect["overall"]["METEOR"] > 0.9
    assert perfect["overall"]["CIDEr"] > 3.0
    wrong = evaluate(["a large green square at the top"] * 4, REFS, meteor=False)
    assert wrong["overall"]["CIDEr"] < perfect["overall"]["CIDEr"] / 3
    assert "METEOR" not in wrong["overall"] and wrong["slices"] == {}


def test_slices_are_scored_on_their_own_images():
    report = evaluate([REFS[0][0], "a red square", REFS[2][0], REFS[3][0]], REFS, SLICES, meteor=False)
    assert set(report["slices"]) == {"objects=1", "objects=2", "star"}
    assert report["slices"]["objects=1"]["n"] == 3 and report["slices"]["star"]["n"] == 2
    assert report["slices"]["objects=1"]["BLEU-1"] == pytest.approx(1.0)
    assert report["slices"]["objects=2"]["BLEU-1"] < 0.5


def test_a_slice_cider_uses_the_whole_test_sets_document_frequencies():
    """Within the star slice every reference says "star": with that slice's own frequencies the word would
    weigh nothing, and calling the stars circles would cost little."""
    from models.captioner.evaluate import cider_per_image

    preds = [REFS[0][0], REFS[1][0], REFS[2][0], REFS[3][0].replace("star", "circle")]
    report = evaluate(preds, REFS, SLICES, meteor=False)
    per_image = cider_per_image({i: r for i, r in enumerate(REFS)}, {i: [p] for i, p in enumerate(preds)})
    assert report["slices"]["star"]["CIDEr"] == pytest.approx((per_image[1] + per_image[3]) / 2)
    assert report["overall"]["CIDEr"] == pytest.approx(sum(per_image.values()) / 4)
    perfect = evaluate([r[0] for r in REFS], REFS, SLICES, meteor=False)["slices"]["star"]["CIDEr"]
    alone = [
        evaluate(p[1::2], REFS[1::2], meteor=False)["overall"]["CIDEr"]  # the slice scored by itself
        for p in (preds, [r[0] for r in REFS])
    ]
    assert report["slices"]["star"]["CIDEr"] / perfect < alone[0] / alone[1]  # the wrong word costs more


def test_empty_prediction_and_bad_lengths():
    assert evaluate(["", REFS[1][0]], REFS[:2], meteor=False)["overall"]["CIDEr"] >= 0
    with pytest.raises(ValueError, match="one entry per image"):
        evaluate(["a"], REFS, meteor=False)


def test_parse_and_accuracy():
    assert parse_shapes_caption("a small red circle on the left") == [
        {"size": "small", "colour": "red", "shape": "circle", "position": "left"}
    ]
    assert [o["position"] for o in parse_shapes_caption(REFS[1][0])] == ["top", "bottom"]
    assert parse_shapes_caption("a red circle and a blue square") is None
    objects = [
        [{"size": "small", "colour": "red", "shape": "circle", "position": "left"}],
        [
            {"size": "large", "colour": "blue", "shape": "square", "position": "left"},
            {"size": "small", "colour": "green", "shape": "star", "position": "right"},
        ],
    ]
    acc = shapes_accuracy(
        ["a small red circle on the right", "a large blue square to the left of a small green star"], objects
    )
    assert acc["count"] == 1.0 and acc["colour"] == 1.0 and acc["position"] == pytest.approx(2 / 3)
    assert acc["exact"] == 0.5
