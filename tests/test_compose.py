"""docker-compose.yml is valid, uses the same LAKE_* names, and has no default secrets."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess

import pytest
import yaml

from lake.config import REPO_ROOT

SECRETS = [
    "LAKE_S3_SECRET_KEY",
    "LAKE_POSTGRES_PASSWORD",
    "LAKE_MONGO_PASSWORD",
    "LAKE_AIRFLOW_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "LAKE_SUPERSET_PASSWORD",
    "LAKE_SUPERSET_SECRET_KEY",
    "AIRFLOW_FERNET_KEY",
    "LAKE_API_KEYS",
    "LAKE_ADMIN_KEYS",
    "LAKE_CLAIM_CHECK_KEYS",
]


@pytest.fixture(scope="module")
def compose(settings):
    from infra.install import compose_cmd

    cmd = compose_cmd(settings)

    def run(*args, env_file=None):
        env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("LAKE_")}
        extra = ["--env-file", str(env_file)] if env_file else []
        return subprocess.run(
            [*cmd, "-f", str(REPO_ROOT / "docker-compose.yml"), *extra, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=120,
        )

    return run


def _filled_env(tmp_path):
    lines = []
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in SECRETS and line.endswith("="):
            if key == "AIRFLOW_FERNET_KEY":
                line += base64.urlsafe_b64encode(os.urandom(32)).decode()
            elif key in ("LAKE_API_KEYS", "LAKE_ADMIN_KEYS", "LAKE_CLAIM_CHECK_KEYS"):
                line += f'["{secrets.token_urlsafe(24)}"]'
            else:
                line += secrets.token_urlsafe(24)
        lines.append(line)
    path = tmp_path / "lake.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compose_config_is_valid_with_secrets_set(compose, tmp_path):
    res = compose("config", "--format", "json", env_file=_filled_env(tmp_path))
    assert res.returncode == 0, res.stderr
    import json

    services = json.loads(res.stdout)["services"]
    for name in (
        "kafka",
        "minio",
        "mongo",
        "postgres",
        "trino",
        "spark-master",
        "airflow-api",
        "superset",
        "api",
        "nginx",
    ):
        assert name in services
    api_env = services["api"]["environment"]
    assert api_env["LAKE_MODE"] == "compose" and api_env["LAKE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    # the API would refuse to start in compose mode without every secret: build its settings
    from lake.config import Settings

    keep = {k: v for k, v in api_env.items() if k.startswith("LAKE_") and v is not None}
    import pytest as _pytest

    mp = _pytest.MonkeyPatch()
    try:
        for k, v in keep.items():
            mp.setenv(k, v)
        assert Settings().mode == "compose"
    finally:
        mp.undo()


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
