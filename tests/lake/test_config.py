"""lake/config.py: defaults, environment overrides, and the secret guard."""

import pytest
from pydantic import ValidationError

from lake.config import REPO_ROOT, Settings, tooling_stack


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    """The defaults as a user sees them, not the test stack's (`make test` exports `lake env test`)."""
    for name in ("LAKE_STATE_DIR", "LAKE_PORT_OFFSET"):
        monkeypatch.delenv(name, raising=False)


def test_local_defaults_derive_endpoints():
    s = Settings(_env_file=None)
    assert s.mode == "local"
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.s3_endpoint == "http://127.0.0.1:9000"
    assert s.mongo_uri == "mongodb://127.0.0.1:27017/"
    assert s.jdbc_url == "jdbc:postgresql://127.0.0.1:5432/lake"
    assert s.warehouse == "s3://warehouse/"
    assert s.tables.silver == "lake.silver.images" and s.tables.catalog == "catalog.lake"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("LAKE_KAFKA_PORT", "19092")
    monkeypatch.setenv("LAKE_S3_ENDPOINT", "https://s3.example:443")
    s = Settings(_env_file=None)
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.s3_endpoint == "https://s3.example:443"


def test_port_offset_moves_every_port_not_set(monkeypatch):
    monkeypatch.setenv("LAKE_PORT_OFFSET", "10000")
    monkeypatch.setenv("LAKE_TRINO_PORT", "8111")
    s = Settings(_env_file=None)
    assert (s.kafka_port, s.kafka_controller_port, s.s3_port, s.postgres_port) == (19092, 19093, 19000, 15432)
    assert (s.airflow_port, s.airflow_worker_log_port, s.superset_port, s.api_port) == (18080, 18793, 18088, 18000)
    assert s.kafka_bootstrap == "127.0.0.1:19092" and s.mongo_uri == "mongodb://127.0.0.1:37017/"
    assert s.trino_port == 8111  # set explicitly: left where it was put
    assert Settings(_env_file=None, api_port=1).api_port == 1


def test_tooling_stacks_are_not_the_users_lake(monkeypatch):
    assert Settings(_env_file=None).is_user_lake
    ports = set()
    for name in ("test", "bench"):
        for k, v in tooling_stack(name).items():
            monkeypatch.setenv(k, v)
        s = Settings(_env_file=None)
        assert not s.is_user_lake and s.state_dir.is_relative_to(REPO_ROOT / ".lake" / "stacks")
        mine = {getattr(s, f) for f in type(s).model_fields if f.endswith("_port")}
        assert not mine & ports
        ports |= mine
    monkeypatch.delenv("LAKE_PORT_OFFSET")
    monkeypatch.delenv("LAKE_STATE_DIR")
    user = {getattr(Settings(_env_file=None), f) for f in type(s).model_fields if f.endswith("_port")}
    assert not user & ports  # the user's stack, the tests' and the benchmarks' can all run at once


@pytest.mark.parametrize("mode", ["compose", "cluster"])
def test_refuses_local_secrets_outside_local_mode(monkeypatch, mode):
    monkeypatch.setenv("LAKE_MODE", mode)
    with pytest.raises(ValidationError, match="LAKE_S3_SECRET_KEY, LAKE_POSTGRES_PASSWORD"):
        Settings(_env_file=None)
    for i, name in enumerate(
        ["S3_SECRET_KEY", "POSTGRES_PASSWORD", "AIRFLOW_PASSWORD", "SUPERSET_PASSWORD", "SUPERSET_SECRET_KEY"]
    ):
        monkeypatch.setenv(f"LAKE_{name}", f"a-real-secret-{i}")
    with pytest.raises(ValidationError, match="LAKE_API_KEYS"):
        Settings(_env_file=None)
    monkeypatch.setenv("LAKE_API_KEYS", '["a-real-api-key"]')
    with pytest.raises(ValidationError, match="LAKE_ADMIN_KEYS"):
        Settings(_env_file=None)
    monkeypatch.setenv("LAKE_ADMIN_KEYS", '["a-real-admin-key"]')
    with pytest.raises(ValidationError, match="LAKE_CLAIM_CHECK_KEYS"):
        Settings(_env_file=None)
    monkeypatch.setenv("LAKE_CLAIM_CHECK_KEYS", '["a-real-claim-key"]')
    assert Settings(_env_file=None).mode == mode


def test_an_admin_key_is_not_also_a_write_key(monkeypatch):
    monkeypatch.setenv("LAKE_API_KEYS", '["k1", "shared"]')
    monkeypatch.setenv("LAKE_ADMIN_KEYS", '["shared"]')
    with pytest.raises(ValidationError, match="both LAKE_API_KEYS and LAKE_ADMIN_KEYS"):
        Settings(_env_file=None)


def test_secrets_never_printed():
    s = Settings(_env_file=None)
    assert "lake-local-secret" not in repr(s)
    assert "lake-local-secret" not in str(s.model_dump())
