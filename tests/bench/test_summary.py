"""bench/summary.py: one table from whatever bench/results holds (no servers, no timing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import summary


def test_summary_of_the_committed_results_and_a_broken_file(tmp_path):
    for f in Path(summary.RESULTS).glob("*.json"):
        if f.stem in summary.EXTRACT:
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / "ingest.json").write_text(json.dumps({"upload": {}}))  # an older shape
    out = summary.main(tmp_path)
    table = out.read_text()
    assert "| ingest | unreadable (KeyError" in table and "| normalize | silver normalize" in table
    assert len(list(tmp_path.glob("20*.json"))) == 1


def test_an_unknown_benchmark_is_named_and_nothing_runs(capsys):
    from bench.__main__ import main

    assert main(["serving", "nosuch"]) == 2
    assert "unknown benchmark nosuch: choose from stack, ingest" in capsys.readouterr().out
