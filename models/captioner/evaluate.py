"""Caption metrics (pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr), overall and per slice.

    python -m models.captioner.evaluate out/compact data/shapes --split test
    python -c "from models.captioner.evaluate import evaluate; print(evaluate(['a red circle'], [['a red circle']]))"

`evaluate()` is pure: predictions and references (and optional slice labels per image) in, a dict out.
Tokenisation is a lower-case whitespace split (``tokenize="simple"``), which is what PTB tokenisation gives
for captions without punctuation such as Shapes'; ``tokenize="ptb"`` runs pycocoevalcap's bundled Stanford
tokenizer (java, local) for real captions. METEOR runs its bundled jar (java); SPICE is not used.
For Shapes, `shapes_accuracy()` adds colour / shape / size / position / object-count accuracy, read off the
captions against the known attributes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def _tokenize(texts: Mapping[int, Sequence[str]], how: str) -> dict[int, list[str]]:
    if how == "simple":
        return {k: [" ".join(t.lower().split()) for t in v] for k, v in texts.items()}
    if how == "ptb":
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": t} for t in v] for k, v in texts.items()})
    raise ValueError(f"tokenize must be simple or ptb, not {how!r}")


def _scores(gts: dict, res: dict, meteor, cider: Mapping[int, float]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)}
    if meteor is not None:
        out["METEOR"] = float(meteor.compute_score(gts, res)[0])
    out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = sum(cider[i] for i in gts) / len(gts)
    return out


def cider_per_image(gts: dict, res: dict) -> dict[int, float]:
    """CIDEr-D of each image, with n-gram document frequencies from ALL of ``gts`` (pycocoevalcap)."""
    from pycocoevalcap.cider.cider import Cider

    _, scores = Cider().compute_score(gts, res)
    return {i: float(s) for i, s in zip(gts, scores)}


def evaluate(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    slices: Sequence[Sequence[str]] | None = None,
    meteor: bool = True,
    tokenize: str = "simple",
) -> dict:
    """``{"overall": {metric: value}, "slices": {slice: {metric: value, "n": count}}, "n": count, "per_image":
    [{"CIDEr": value, "slices": [...]}, ...]}``.

    ``references[i]`` are all ground-truth captions of image ``i``; ``slices[i]`` the slice labels of image
    ``i``. A slice is scored on its own images; its CIDEr is the mean per-image CIDEr with the document
    frequencies of the WHOLE test set, so slices are on one scale and a word that every caption of a slice
    shares (``star`` in the star slice) keeps its weight: with the slice's own frequencies it would weigh
    nothing there, and a model that never says it would lose little."""
    if len(predictions) != len(references) or (slices is not None and len(slices) != len(predictions)):
        raise ValueError("predictions, references and slices must have one entry per image")
    if not predictions:
        raise ValueError("nothing to evaluate")
    gts = _tokenize(dict(enumerate(references)), tokenize)
    res = _tokenize({i: [p] for i, p in enumerate(predictions)}, tokenize)
    res = {k: [v[0] or "<empty>"] for k, v in res.items()}  # the scorers reject empty hypotheses
    scorer = None
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        scorer = Meteor()
    try:
        cider = cider_per_image(gts, res)
        report: dict = {"n": len(predictions), "overall": _scores(gts, res, scorer, cider), "slices": {}}
        # each image's CIDEr and slices, in input order: what a paired comparison of two models needs
        report["per_image"] = [
            {"CIDEr": cider[i], "slices": list(slices[i]) if slices else []} for i in range(len(predictions))
        ]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, labels in enumerate(slices or []):
            for label in labels:
                groups[label].append(i)
        for label in sorted(groups):
            ids = groups[label]
            report["slices"][label] = {
                "n": len(ids),
                **_scores({i: gts[i] for i in ids}, {i: res[i] for i in ids}, scorer, cider),
            }
    finally:
        if scorer is not None:
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()
    return report


# ---- Shapes ---------------------------------------------------------------------------------------------------

_PHRASE = re.compile(r"\b(on the left|on the right|at the top|at the bottom|in the center|to the left of|above)\b")
_POSITION = {
    "on the left": "left",
    "on the right": "right",
    "at the top": "top",
    "at the bottom": "bottom",
    "in the center": "center",
}


def parse_shapes_caption(caption: str) -> list[dict] | None:
    """Objects named by a template-1 Shapes caption (``a S C H P`` / ``a S C H to the left of|above a S C H``),
    left/top first; None when the caption does not follow template 1."""
    words = caption.lower().split()
    m = _PHRASE.search(" ".join(words))
    if not m or len(words) < 4 or words[0] != "a":
        return None
    first = dict(zip(("size", "colour", "shape"), words[1:4]))
    if m.group(1) in _POSITION:
        return [{**first, "position": _POSITION[m.group(1)]}] if len(words) == 4 + len(m.group(1).split()) else None
    second_words = words[4 + len(m.group(1).split()) :]
    if len(second_words) != 4 or second_words[0] != "a":
        return None
    second = dict(zip(("size", "colour", "shape"), second_words[1:]))
    pair = ("left", "right") if m.group(1) == "to the left of" else ("top", "bottom")
    return [{**first, "position": pair[0]}, {**second, "position": pair[1]}]


def shapes_accuracy(predictions: Sequence[str], objects: Sequence[Sequence[Mapping[str, str]]]) -> dict[str, float]:
    """Share of images whose caption gets the object count right, and per attribute the share of objects
    named correctly (0 for every object of an image whose caption is off-template or miscounts)."""
    right, total, count_ok = defaultdict(int), 0, 0
    for pred, objs in zip(predictions, objects):
        parsed = parse_shapes_caption(pred)
        total += len(objs)
        if parsed is None or len(parsed) != len(objs):
            continue
        count_ok += 1
        for got, want in zip(parsed, objs):
            for attr in ("colour", "shape", "size", "position"):
                right[attr] += got[attr] == want[attr]
    n = max(1, len(predictions))
    return {
        "count": count_ok / n,
        **{a: right[a] / max(1, total) for a in ("colour", "shape", "size", "position")},
        "exact": sum(parse_shapes_caption(p) == [dict(o) for o in objs] for p, objs in zip(predictions, objects)) / n,
    }


def evaluate_shapes(
    model_dir: str | Path,
    shapes_dir: str | Path,
    split: str = "test",
    limit: int = 0,
    meteor: bool = True,
    **load_options,
) -> dict:
    """Caption a Shapes split with a saved model and score it (metrics, slices, attribute accuracy)."""
    import time

    from PIL import Image

    from models.captioner.captioner import load
    from models.captioner.data import read_shapes, slices_of

    records = read_shapes(shapes_dir, split)[: limit or None]
    captioner = load(model_dir, **load_options)
    images = [Image.open(r.path) for r in records]
    start = time.perf_counter()
    predictions = captioner.caption(images)
    secs = time.perf_counter() - start
    labels = [slices_of(r) for r in records]
    report = evaluate(predictions, [r.captions for r in records], labels, meteor=meteor)
    report["accuracy"] = shapes_accuracy(predictions, [r.objects for r in records])
    report["caption_images_per_s"] = len(records) / secs
    report["examples"] = [
        {"file": r.path.name, "prediction": p, "reference": r.captions[0]}
        for r, p in zip(records[:10], predictions[:10])
    ]
    report |= {"predictions": predictions, "references": [r.captions for r in records], "slice_labels": labels}
    return report


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:  # a log file: do not squeeze the table to 80 columns
        console = Console(file=console.file, width=max(console.width, 120))
    table = Table(title=f"{report['n']} images")
    table.add_column("slice", no_wrap=True)
    table.add_column("n", justify="right")
    for m in METRICS:
        if m in report["overall"]:
            table.add_column(m, justify="right")
    rows = [("overall", {"n": report["n"], **report["overall"]}), *report["slices"].items()]
    for name, values in rows:
        table.add_row(name, str(values["n"]), *(f"{values[m]:.3f}" for m in METRICS if m in report["overall"]))
    console.print(table)
    if "accuracy" in report:
        console.print("accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in report["accuracy"].items()))


def main(
    model_dir: Annotated[Path, typer.Argument(help="A saved model directory.")],
    shapes_dir: Annotated[Path, typer.Argument(help="A Shapes folder.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    limit: Annotated[int, typer.Option(help="At most this many images (0: all).")] = 0,
    meteor: Annotated[bool, typer.Option(help="Also METEOR (java).")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report here.")] = None,
) -> None:
    """Caption a Shapes split and print BLEU / METEOR / ROUGE-L / CIDEr overall and per slice."""
    import json

    report = evaluate_shapes(model_dir, shapes_dir, split, limit, meteor)
    print_report(report)
    if json_out:
        json_out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    typer.run(main)
