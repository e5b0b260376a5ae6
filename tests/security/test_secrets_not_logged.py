"""No secret reaches a log file: every secret the stack holds (Settings' secret fields, the API keys,
the generated UI passwords, Airflow's JWT/secret/Fernet keys) is searched, as a whole token, in every
file under the stack's log folder (servers, jobs, Airflow task logs), after everything else that ran
before it in `make test` has logged what it logs.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/security/test_secrets_not_logged.py
"""

from __future__ import annotations

import json
import re

import pytest
from pydantic import SecretStr

pytestmark = pytest.mark.integration


def stack_secrets(s) -> dict[str, str]:
    from infra.apps import ui_password

    found = {
        name: getattr(s, name).get_secret_value()
        for name, field in type(s).model_fields.items()
        if field.annotation is SecretStr
    }
    found |= {
        f"{kind}[{i}]": k.get_secret_value()
        for kind in ("api_keys", "admin_keys")
        for i, k in enumerate(getattr(s, kind))
    }
    found |= {f"{app} admin password": ui_password(s, app) for app in ("airflow", "superset")}
    keys = s.run_dir / "airflow-keys.json"
    if keys.exists():
        found |= {f"airflow {k} key": v for k, v in json.loads(keys.read_text()).items()}
    return {name: value for name, value in found.items() if len(value) >= 6}  # "" or a toy value: nothing to find


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Which secrets appear in ``text`` as whole tokens (``lake-local`` is not found in ``lake-local-1``)."""
    return [name for name, value in secrets.items() if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text)]


def test_a_secret_is_found_as_a_token_only():
    secrets = {"pw": "lake-local", "key": "s3cr3t-Key_9"}
    assert leaks("node.id lake-local-1 and xlake-local", secrets) == []
    assert leaks("password=lake-local;", secrets) == ["pw"]
    assert leaks("auth s3cr3t-Key_9\n", secrets) == ["key"]


def test_no_log_file_holds_a_secret(settings):
    secrets = stack_secrets(settings)
    assert {"s3_secret_key", "postgres_password", "airflow admin password"} <= set(secrets)
    files = [p for p in settings.log_dir.rglob("*") if p.is_file()]
    assert files, f"no log files under {settings.log_dir}: run it after the stack has run"
    found = {}
    for path in files:
        hit = leaks(path.read_text(errors="replace"), secrets)
        if hit:
            found[str(path.relative_to(settings.log_dir))] = hit
    assert not found, f"secrets in log files: {found}"
