"""lake.apps.demo_loop.print_summary: the gate table with the drill's column, the two outcomes, the probes (pure)."""

from __future__ import annotations

import io
from dataclasses import asdict

from rich.console import Console

from lake.apps.demo_loop import print_summary
from lake.retrain import gate


def answer(status: str, candidate: str, cand: dict, prod: dict) -> dict:
    return {
        "status": status,
        "candidate": candidate,
        "production": "compact-v1",
        "dataset": "training_examples@2",
        "new_examples": 300,
        "replay_examples": 300,
        "chart": "/tmp/gate.png",
        **asdict(gate(cand, prod, 0.05, ["star"])),
    }


def test_the_summary_shows_both_candidates_side_by_side():
    prod = {"overall": {"CIDEr": 6.7}, "slices": {"star": {"n": 31, "CIDEr": 2.6}}}
    v2 = {"overall": {"CIDEr": 7.1}, "slices": {"star": {"n": 31, "CIDEr": 7.2}}}
    drill = {"overall": {"CIDEr": 0.5}, "slices": {"star": {"n": 31, "CIDEr": 2.0}}}
    loop = {
        "retrain": answer("promoted", "compact-v3", v2, prod),
        "drill": answer("drill passed", "compact-v2", drill, prod),
        "swap_s": 0.3,
        "probes": [
            (
                "a small red star on the left",
                "a small red circle on the left",
                "compact-v1",
                "a small red star on the left",
                "compact-v3",
            )
        ],
    }
    buf = io.StringIO()
    print_summary(loop, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "compact-v3 vs compact-v1 on training_examples@2" in text and "drill compact-v2" in text
    assert "+176.9%" in text and "0.500" in text and "7.200" in text
    assert "gate drill: compact-v2 drill passed" in text and "retrain (300 new + 300 replayed examples)" in text
    assert "; and 1 more (the table's drill column)" in text  # the drill line: two reasons, the table has all
    assert "0.3 s after" in text and "a small red circle on the left (compact-v1)" in text and "warning" not in text
