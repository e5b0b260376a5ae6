"""The admin routes on the real app (uvicorn, the stack's Kafka/MinIO, a scratch registry of tiny models):
only an admin key opens them, a promotion and a rollback through them change the registry, are recorded under
the key's hash and reach the serving model through `models.promoted`.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/services/api/test_admin.py
"""

from __future__ import annotations

import time

import pytest

from services.api.deps import key_id
from tests.services.api.helpers import serve, service
from tests.utils.images import ADMIN_KEY, API_KEY

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": ADMIN_KEY}


def wait_for_model(svc, version: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while svc.current is None or svc.current.version != version:
        assert time.monotonic() < deadline, f"still serving {svc.current and svc.current.version} after {within} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def admin(lake):
    svc = service(lake, caption_poll_s=300)  # only the models.promoted event can make it swap in time
    with serve(svc) as c:
        assert svc.kafka_ready.wait(30), "the models.promoted consumer did not start"
        yield c, svc


def test_only_an_admin_key_opens_admin_routes(admin):
    c, _ = admin
    assert c.get("/v1/admin/models", headers={"X-API-Key": ""}).status_code == 401
    assert c.get("/v1/admin/models", headers={"X-API-Key": "nope"}).status_code == 401
    r = c.get("/v1/admin/models", headers={"X-API-Key": API_KEY})  # a write key
    assert r.status_code == 403 and "write key" in r.json()["detail"]["message"]
    assert c.post("/v1/captions", json={"image_id": "0" * 64}, headers=ADMIN).status_code == 401  # not a write key
    assert c.get("/v1/admin/models", headers=ADMIN).status_code == 200


def test_promote_and_roll_back_through_the_api(admin, lake):
    c, svc = admin
    name, v1, v2 = lake["name"], lake["v1"], lake["v2"]
    rows = c.get("/v1/admin/models", params={"name": name}, headers=ADMIN).json()
    assert [(r["model_version"], r["stage"]) for r in rows] == [(v2, "candidate"), (v1, "production")]
    wait_for_model(svc, v1)

    r = c.post(f"/v1/admin/models/{v2}/promote", params={"reason": "on-call: v2 fixes stars"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "production" and r.json()["changed_by"] == f"api {key_id(ADMIN_KEY)}"
    assert r.json()["changed_at"].endswith(("Z", "+00:00"))  # UTC, said so
    wait_for_model(svc, v2, within=15)
    assert lake["reg"].get(v1)["stage"] == "archived"
    again = c.post(f"/v1/admin/models/{v2}/promote", headers=ADMIN)
    assert again.status_code == 409 and "already production" in again.json()["detail"]["message"]

    r = c.post(f"/v1/admin/models/{name}/rollback", params={"reason": "v2 regressed"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["model_version"] == v1, r.text
    wait_for_model(svc, v1, within=15)
    assert lake["reg"].get(v2)["stage"] == "archived"

    kinds = [(d["kind"], d["candidate"], d["reasons"]) for d in lake["reg"].db.promotions.find(sort=[("at", 1)])]
    assert kinds == [("promote", v2, ["on-call: v2 fixes stars"]), ("rollback", v1, ["v2 regressed"])]
    history = [h["by"] for d in lake["reg"].versions(name) for h in d["history"]]
    assert f"api {key_id(ADMIN_KEY)}" in history and not any(ADMIN_KEY in h for h in history)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/v1/admin/models/v99/promote", 404),
        ("post", "/v1/admin/models/nosuch/rollback", 404),
        ("post", "/v1/admin/models/..%2F..%2Fx/promote", 404),  # the decoded slashes match no route
        ("post", "/v1/admin/models/compact-v1%0A/promote", 422),
        ("get", "/v1/admin/models?name=A/B", 422),
    ],
)
def test_unknown_or_malformed_names_are_refused(admin, method, path, status):
    c, _ = admin
    r = getattr(c, method)(path, headers=ADMIN)
    assert r.status_code == status, r.text


def test_a_rollback_target_must_be_a_version_of_that_model(admin, lake):
    c, _ = admin
    before = {d["_id"]: d["stage"] for d in lake["reg"].versions(lake["name"])}
    for to in ("compact-v1", "production"):  # another model's version; a stage
        r = c.post(f"/v1/admin/models/{lake['name']}/rollback", params={"to": to}, headers=ADMIN)
        assert r.status_code in (404, 422), r.text
    assert {d["_id"]: d["stage"] for d in lake["reg"].versions(lake["name"])} == before
