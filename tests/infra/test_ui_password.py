"""infra.apps.ui_password: the web UIs' admin password is generated per state dir in local
mode (never the fixed default), printed once on the terminal, kept private; a configured
one wins (unit: no servers)."""

from __future__ import annotations

import stat

from pydantic import SecretStr

from infra.apps import ui_password
from lake.config import Settings


def test_generated_once_printed_once_and_private(tmp_path, capsys):
    s = Settings(state_dir=tmp_path)
    first = ui_password(s, "airflow")
    shown = capsys.readouterr().err
    assert first in shown and "shown once" in shown and len(first) >= 16 and first != "lake-local"
    assert ui_password(s, "airflow") == first and capsys.readouterr().err == ""  # not printed again
    path = tmp_path / "secrets" / "airflow_admin_password"
    assert path.read_text() == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ui_password(s, "superset") != first  # one per app
    assert ui_password(Settings(state_dir=tmp_path / "other"), "airflow") != first  # one per state dir


def test_a_configured_password_wins(tmp_path, capsys):
    s = Settings(state_dir=tmp_path, superset_password=SecretStr("Correct-Horse-7"))
    assert ui_password(s, "superset") == "Correct-Horse-7"
    assert not (tmp_path / "secrets").exists() and capsys.readouterr().err == ""
