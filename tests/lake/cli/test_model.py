"""`lake model` and `lake caption` through typer's runner: help, and clear errors for what does not exist."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lake.cli import app

runner = CliRunner()


def test_model_help_lists_the_commands():
    out = runner.invoke(app, ["model", "--help"]).output
    assert all(c in out for c in ("train", "eval", "list", "show", "promote"))


@pytest.mark.integration
def test_an_unknown_version_is_a_clear_error(stack_up):
    res = runner.invoke(app, ["model", "show", "nosuch:v9"])
    assert res.exit_code == 2 and "no model 'nosuch:v9'" in res.output


@pytest.mark.integration
def test_caption_with_an_unknown_version_is_a_clear_error(stack_up, tmp_path):
    res = runner.invoke(app, ["caption", str(tmp_path), "--out", str(tmp_path / "c.json"), "--model", "nosuch:v1"])
    assert res.exit_code == 2 and "versions of nosuch: none" in res.output
