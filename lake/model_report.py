"""An evaluation report: ``index.html`` (metrics overall and per slice, attribute accuracy,
example images with caption and reference, the loss curve) and ``slices.png`` (CIDEr per slice).

    from lake.model_report import write_report
    write_report(report, model_doc, dataset_doc, [(image_id, pil_image, prediction, references), ...], folder)

Pure apart from writing into ``folder``: `lake model eval` uploads the folder next to the model.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

from models.captioner.evaluate import METRICS

EXAMPLES = 24


def slices_png(report: dict, path: Path, metric: str = "CIDEr") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["overall", *report["slices"]]
    values = [report["overall"][metric], *(v[metric] for v in report["slices"].values())]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(names) + 2), 3.5))
    bars = ax.bar(names, values, color=["#444"] + ["#4a7ab5"] * (len(names) - 1))
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set(ylabel=metric, title=f"{metric} per slice")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare_png(
    table: Sequence[dict], production: str, candidate: str, path: Path, title: str = "", metric: str = "CIDEr"
) -> Path:
    """Production vs candidate per slice, side by side: the promotion gate's table (`lake.retrain.gate`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in table if r["production"] is not None or r["candidate"] is not None]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows) + 3), 3.8))
    for dx, who, label, colour in ((-0.2, "production", production, "#999"), (0.2, "candidate", candidate, "#4a7ab5")):
        bars = ax.bar(x + dx, [r[who] or 0 for r in rows], 0.4, label=label, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [r["slice"] + (" *" if r.get("focus") else "") for r in rows], rotation=45, fontsize=8)
    ax.set(ylabel=metric, title=title or f"{candidate} vs {production}: {metric} per slice (* focus)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _thumb(image) -> str:
    buf = io.BytesIO()
    image.copy().convert("RGB").resize((96, 96)).save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(report: dict, model: dict, dataset: dict, examples: Sequence[tuple], loss_curve: bool) -> str:
    """The HTML page (images inline, so the single file travels)."""
    metrics = [m for m in METRICS if m in report["overall"]]
    rows = [
        ("overall", report["n"], *(report["overall"][m] for m in metrics)),
        *((name, v["n"], *(v[m] for m in metrics)) for name, v in report["slices"].items()),
    ]
    # wrong captions first: they are what a reader looks for
    shown = sorted(examples, key=lambda e: e[2] in e[3])[:EXAMPLES]
    cards = "".join(
        f'<figure class="{"ok" if pred in refs else "bad"}"><img src="{_thumb(im)}" alt="{html.escape(iid)}">'
        f"<figcaption><b>{html.escape(pred)}</b><br><small>{html.escape(refs[0])}</small></figcaption></figure>"
        for iid, im, pred, refs in shown
    )
    accuracy = report.get("accuracy", {})
    train = model.get("train") or {}
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(model["_id"])}</title>
<style>body{{font:14px sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;width:200px;margin:6px;vertical-align:top}}.bad b{{color:#b00}}.ok b{{color:#070}}</style>
</head><body><h1>{html.escape(model["_id"])} on {html.escape(dataset["_id"])} ({report["n"]} images)</h1>
<p>stage {html.escape(model["stage"])}; trained on {html.escape(model["dataset"]["id"])}; code
{html.escape(model.get("code_version", ""))}; {train.get("steps", "?")} steps, {train.get("parameters", 0):,}
parameters, final loss {train.get("final_loss", float("nan")):.3f}.</p>
{_table(["slice", "n", *metrics], rows)}
{_table(["attribute", "accuracy"], [(k, v) for k, v in accuracy.items()]) if accuracy else ""}
<img src="slices.png" alt="CIDEr per slice"> {'<img src="loss_curve.png" alt="loss curve">' if loss_curve else ""}
<h2>Examples (caption in bold, first reference below; wrong ones first)</h2>{cards}</body></html>"""


def write_report(
    report: dict, model: dict, dataset: dict, examples: Sequence[tuple], folder: Path, model_dir: Path | None = None
) -> Path:
    """Write ``index.html`` and ``slices.png`` (and the model's ``loss_curve.png``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    slices_png(report, folder / "slices.png")
    curve = model_dir / "loss_curve.png" if model_dir else None
    if curve and curve.is_file():
        (folder / "loss_curve.png").write_bytes(curve.read_bytes())
    (folder / "index.html").write_text(render(report, model, dataset, examples, (folder / "loss_curve.png").is_file()))
    return folder / "index.html"
