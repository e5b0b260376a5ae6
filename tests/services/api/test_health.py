"""services/api health routes against the running stack, and with a store down."""

import pytest
from fastapi.testclient import TestClient

from lake.config import Settings, get_settings
from services.api.main import app

pytestmark = pytest.mark.integration


def test_healthz_and_readyz(stack_up):
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"object_store": "ok", "catalog": "ok"}


def test_readyz_names_the_unreachable_store(stack_up):
    app.dependency_overrides[get_settings] = lambda: Settings(_env_file=None, mongo_port=1)
    try:
        with TestClient(app) as c:
            r = c.get("/readyz")
    finally:
        app.dependency_overrides.clear()
    assert r.status_code == 503
    assert r.json()["checks"]["object_store"] == "ok"
    assert r.json()["checks"]["catalog"].startswith("error:")


def test_openapi_documents_health():
    with TestClient(app) as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz"} <= set(paths)
