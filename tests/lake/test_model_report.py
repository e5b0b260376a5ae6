"""lake/model_report.py: the HTML page and the slice chart from a report dict (no servers)."""

from __future__ import annotations

from PIL import Image

from lake.model_report import write_report
from lake.training import evaluation_rows, score


def test_report_page_chart_and_rows(tmp_path):
    refs = [["a small red circle on the left"], ["a large blue star at the top"], ["a cat on a mat"]]
    preds = ["a small red circle on the left", "a large blue square at the top", "a dog"]
    report = score(preds, refs, meteor=False)
    assert report["slices"]["other"]["n"] == 1 and report["slices"]["shape=star"]["n"] == 1
    assert report["accuracy"]["colour"] == 1.0 and report["accuracy"]["shape"] == 0.5
    model = {
        "_id": "compact:v7",
        "name": "compact",
        "stage": "candidate",
        "dataset": {"id": "training_examples@1"},
        "train": {"steps": 3, "parameters": 10, "final_loss": 0.5},
        "code_version": "abc",
    }
    dataset = {"_id": "training_examples@1", "snapshot_id": 1, "table": "lake.gold.training_examples"}
    examples = [
        (f"id{i}", Image.new("RGB", (128, 128), (i * 80, 0, 0)), p, r) for i, (p, r) in enumerate(zip(preds, refs))
    ]
    page = write_report(report, model, dataset, examples, tmp_path / "r").read_text()
    assert "compact:v7" in page and page.count("<figure") == 3 and "a dog" in page
    assert page.index("a dog") < page.index("a small red circle on the left</b>")  # wrong captions first
    assert (tmp_path / "r" / "slices.png").stat().st_size > 1000
    rows = evaluation_rows(report, model=model, dataset=dataset, split="test", run_id="r1")
    assert ["compact", "compact:v7", "training_examples@1", 1, "test", "overall", "CIDEr"] in [r[:7] for r in rows]
    assert any(r[6] == "accuracy.shape" and r[7] == 0.5 for r in rows)
