"""bench/learning_loop.py at a toy size on the CPU: both models train, both are scored per slice,
and the lake's gate runs on the stored reports (no timing, no quality assertions)."""

from __future__ import annotations

import json
import sys

from bench import learning_loop


def test_learning_loop_toy_run(tmp_path, monkeypatch):
    out = tmp_path / "ll.json"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "learning_loop",
            "--work",
            str(tmp_path / "w"),
            "--v1-images",
            "80",
            "--star-images",
            "20",
            "--test-images",
            "24",
            "--v1-steps",
            "3",
            "--v2-steps",
            "2",
            "--out",
            str(out),
        ],
    )
    result = learning_loop.main()
    saved = json.loads(out.read_text())
    assert saved["train"]["v2"]["new"] == 20 and saved["train"]["v2"]["replay"] == 20
    assert {"overall", "star", "no_star"} <= set(saved["cider"]["v1"]) and "promote" in saved["gate"]
    assert result["star_ratio"] == saved["star_ratio"] and set(saved["star_alone"]) == {"v1", "v2", "ratio"}
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--reuse-v1", "--v2-lr", "1e-4"])
    again = learning_loop.main()
    assert again["train"]["v1"] == saved["train"]["v1"] and again["args"]["v2_lr"] == "0.0001"
