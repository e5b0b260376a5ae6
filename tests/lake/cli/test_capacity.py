"""`lake capacity`: JSON that parses, a table that renders, options that reach the plan (no servers).

.lake/venvs/core/bin/python -m pytest tests/lake/cli/test_capacity.py -q
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lake.cli import app

runner = CliRunner()


def test_json_parses_and_answers_the_seed(tmp_path):
    r = runner.invoke(app, ["capacity", "--json", "--results", str(tmp_path)])
    assert r.exit_code == 0, r.output
    p = json.loads(r.output)
    assert round(p["uploads_s"]) == 11_574
    assert {s["name"] for s in p["stages"]} >= {
        "upload API",
        "Kafka brokers",
        "bronze stream",
        "silver normalize",
        "captioning, CPU",
        "captioning, GPU",
        "search index",
        "Trino",
    }
    assert all(f["source"].startswith("assumed: ") for f in p["figures"].values())  # empty results folder


def test_options_reach_the_plan(tmp_path):
    r = runner.invoke(
        app,
        [
            "capacity",
            "--json",
            "--results",
            str(tmp_path),
            "--users",
            "1000000",
            "--uploads-per-day",
            "2",
            "--image-kb",
            "100",
            "--peak-factor",
            "3",
            "--gpu-latency-ms",
            "80",
            "--gpu-batch",
            "32",
        ],
    )
    assert r.exit_code == 0, r.output
    p = json.loads(r.output)
    assert p["uploads_s"] * 86_400 == 2_000_000
    assert p["workload"]["image_kb"] == 100 and p["workload"]["peak_factor"] == 3
    gpu = next(s for s in p["stages"] if s["name"] == "captioning, GPU")
    assert gpu["rate"] == 400
    assert p["figures"]["gpu_batch"]["source"] == "given: --gpu-batch"


def test_table_renders_with_sources(tmp_path):
    (tmp_path / "ingest.json").write_text(json.dumps({"cpus": 2, "upload": {"api_upload_per_s": 234.3}}))
    r = runner.invoke(app, ["capacity", "--results", str(tmp_path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    for text in (
        "11,574 uploads/s",
        "Stages",
        "upload API",
        "Storage added",
        "total at peak",
        "GPUs",
        "Figures and their sources",
        "assumed: the seed design",
        "measured: ",
    ):
        assert text in r.output, text


def test_gpu_batch_needs_its_latency():
    r = runner.invoke(app, ["capacity", "--gpu-batch", "8"])
    assert r.exit_code == 2
    assert "--gpu-latency-ms" in r.output
