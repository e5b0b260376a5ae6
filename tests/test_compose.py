"""docker-compose.yml is valid, uses the same LAKE_* names, and has no default secrets."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess

import pytest
import yaml

from lake.config import REPO_ROOT

SECRETS = ["LAKE_S3_SECRET_KEY", "LAKE_POSTGRES_PASSWORD", "LAKE_MONGO_PASSWORD", "LAKE_AIRFLOW_PASSWORD",
           "AIRFLOW_JWT_SECRET", "LAKE_SUPERSET_PASSWORD", "LAKE_SUPERSET_SECRET_KEY", "AIRFLOW_FERNET_KEY"]


@pytest.fixture(scope="module")
def compose(settings):
    from infra.install import compose_cmd

    cmd = compose_cmd(settings)

    def run(*args, env_file=None):
        env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("LAKE_")}
        extra = ["--env-file", str(env_file)] if env_file else []
        return subprocess.run([*cmd, "-f", str(REPO_ROOT / "docker-compose.yml"), *extra, *args],
                              capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)

    return run


def _filled_env(tmp_path):
    lines = []
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in SECRETS and line.endswith("="):
            line += base64.urlsafe_b64encode(os.urandom(32)).decode() if key == "AIRFLOW_FERNET_KEY" \
                else secrets.token_urlsafe(24)
        lines.append(line)
    path = tmp_path / "lake.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compose_config_is_valid_with_secrets_set(compose, tmp_path):
    res = compose("config", "--format", "json", env_file=_filled_env(tmp_path))
    assert res.returncode == 0, res.stderr
    import json

    services = json.loads(res.stdout)["services"]
    for name in ("kafka", "minio", "mongo", "postgres", "trino", "spark-master", "airflow-api", "superset", "api",
                 "nginx"):
        assert name in services
    api_env = services["api"]["environment"]
    assert api_env["LAKE_MODE"] == "compose" and api_env["LAKE_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_compose_refuses_to_start_without_secrets(compose, tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    res = compose("config", "-q", env_file=empty)
    assert res.returncode != 0
    assert "is missing a value: set " in res.stderr and "in .env" in res.stderr  # names the variable


def test_env_example_documents_every_secret():
    text = (REPO_ROOT / ".env.example").read_text()
    for key in SECRETS:
        assert f"\n{key}=\n" in text, f"{key} must be documented and left empty"
    assert "password" not in yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text()).get("x-lake-env", {})
