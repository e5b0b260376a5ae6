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


def rejected() -> dict:
    """What `lake.retrain.retrain` / `decide` answer for a candidate whose star slice dropped."""
    from dataclasses import asdict

    import lake.retrain

    prod = {"overall": {"CIDEr": 1.0}, "slices": {"star": {"n": 4, "CIDEr": 0.2}}}
    cand = {"overall": {"CIDEr": 1.1}, "slices": {"star": {"n": 4, "CIDEr": 0.1}}}
    decision = lake.retrain.gate(cand, prod, 0.05, ["star"])
    return {
        "status": "rejected",
        "candidate": "compact-v2",
        "production": "compact-v1",
        "dataset": "training_examples@2",
        "since": "training_examples@1",
        "new_examples": 120,
        "replay_examples": 120,
        "chart": "/tmp/gate.png",
        "decision": "reject",
        "focus_slices": ["star"],
        **asdict(decision),
    }


def test_retrain_prints_the_gate_table_and_decision(monkeypatch):
    import lake.retrain

    out = rejected()
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


def test_the_gate_step_ends_with_its_decision_as_one_json_line(monkeypatch):
    """Airflow's XCom is a task's last line: the gate step's is the decision and the per-slice table."""
    import json

    import lake.retrain

    seen = []
    monkeypatch.setattr(lake.retrain, "decide", lambda candidate: seen.append(candidate) or rejected())
    res = runner.invoke(app, ["model", "retrain", "--step", "gate", "--candidate", "compact-v2"])
    assert res.exit_code == 0 and seen == ["compact-v2"], res.output
    assert "compact-v2 rejected" in res.output  # the table and the reasons in the task's log
    last = json.loads(res.output.strip().splitlines()[-1])
    assert last["decision"] == "reject" and last["slices"]["star"] == [0.2, 0.1, False]


def test_the_step_the_gate_did_not_choose_exits_with_the_idle_code(monkeypatch):
    import lake.retrain

    monkeypatch.setattr(lake.retrain, "decision_of", lambda candidate: rejected())
    applied = []
    monkeypatch.setattr(lake.retrain, "conclude", lambda d: applied.append(d["candidate"]) or "rejected")
    cmd = ["model", "retrain", "--candidate", "compact-v2", "--idle-exit-code", "99", "--step"]
    res = runner.invoke(app, [*cmd, "promote"])
    assert res.exit_code == 99 and "the gate decided to reject, not to promote" in res.output and not applied
    res = runner.invoke(app, [*cmd, "reject"])
    assert res.exit_code == 0 and applied == ["compact-v2"] and "compact-v2 is rejected" in res.output


def test_a_step_is_checked_before_anything_runs():
    res = runner.invoke(app, ["model", "retrain", "--step", "deploy"])
    assert res.exit_code == 2 and "--step must be one of all, check, train" in res.output
    res = runner.invoke(app, ["model", "retrain", "--step", "gate"])
    assert res.exit_code == 2 and "--step gate needs --candidate" in res.output
