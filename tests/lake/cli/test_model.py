"""`lake model` and `lake caption` through typer's runner: help, and clear errors for what does not exist."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lake.cli import app

runner = CliRunner()


def test_model_help_lists_the_commands():
    out = runner.invoke(app, ["model", "--help"]).output
    assert all(c in out for c in ("train", "eval", "list", "show", "promote", "retrain", "rollback"))
    out = runner.invoke(app, ["model", "retrain", "--help"]).output
    assert all(o in out for o in ("--min-new", "--replay", "--minutes", "--steps", "--tolerance", "--focus-slice"))


@pytest.mark.integration
def test_an_unknown_version_is_a_clear_error(stack_up):
    res = runner.invoke(app, ["model", "show", "nosuch-v9"])
    assert res.exit_code == 2 and "no model 'nosuch-v9'" in res.output


@pytest.mark.integration
def test_caption_with_an_unknown_version_is_a_clear_error(stack_up, tmp_path):
    res = runner.invoke(app, ["caption", str(tmp_path), "--out", str(tmp_path / "c.json"), "--model", "nosuch-v1"])
    assert res.exit_code == 2 and "versions of nosuch: none" in res.output


@pytest.mark.integration
def test_retrain_and_rollback_without_a_production_model_are_clear_errors(stack_up):
    for cmd in (["retrain", "--name", "nosuch"], ["rollback", "--name", "nosuch"]):
        res = runner.invoke(app, ["model", *cmd])
        assert res.exit_code == 2 and "no model 'nosuch:production'" in res.output, res.output


def test_retrain_prints_the_gate_table_and_decision(monkeypatch):
    from dataclasses import asdict

    import lake.retrain

    prod = {"overall": {"CIDEr": 1.0}, "slices": {"star": {"n": 4, "CIDEr": 0.2}}}
    cand = {"overall": {"CIDEr": 1.1}, "slices": {"star": {"n": 4, "CIDEr": 0.1}}}
    decision = lake.retrain.gate(cand, prod, 0.05, ["star"])
    out = {
        "status": "rejected",
        "candidate": "compact-v2",
        "production": "compact-v1",
        "dataset": "training_examples@2",
        "since": "training_examples@1",
        "new_examples": 120,
        "replay_examples": 120,
        "chart": "/tmp/gate.png",
        **asdict(decision),
    }
    monkeypatch.setattr(lake.retrain, "retrain", lambda **kw: out)
    res = runner.invoke(app, ["model", "retrain", "--steps", "5"])
    assert res.exit_code == 0, res.output
    assert "120 new + 120 replayed" in res.output and "-50.0%" in res.output
    assert "compact-v2 rejected" in res.output and "star: CIDEr 0.200 -> 0.100" in res.output
    assert "chart: /tmp/gate.png" in res.output
    seen = {}
    monkeypatch.setattr(lake.retrain, "retrain", lambda **kw: seen.update(kw) or {**out, "status": "drill failed"})
    res = runner.invoke(app, ["model", "retrain", "--drill"])
    assert res.exit_code == 1 and seen["drill"] is True and "compact-v2 drill failed" in res.output
