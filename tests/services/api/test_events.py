"""GET /v1/events/{event_id} against real Trino and Iceberg: an event that landed, one the stream refused (with
the columns rejected_events has today, and with the identity columns it gains), one that landed and was then
refused as a reused id, and one not seen. The tables are a namespace of the test's own, made through Trino.

    .lake/venvs/core/bin/python -m pytest -q tests/services/api/test_events.py -p no:cacheprovider
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.utils.images import API_KEY

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 30, 12, 0, 0)
LANDED, REFUSED, BOTH, OLD_REFUSED, UNSEEN = (str(uuid.uuid4()) for _ in range(5))
IMAGE = "ab" * 32


@pytest.fixture(scope="module")
def tables(stack_up, unique_ns):
    """upload_events and rejected_events under a namespace of the module's own; ``old`` has rejected_events
    as it is made before the identity columns (image_id, user_id, source) were added."""
    from lake.clients import trino_query

    made = {}
    for kind in ("new", "old"):
        ns = f"{stack_up.iceberg_catalog}.{unique_ns}{kind}"
        t = stack_up.tables.under(ns)
        trino_query(f"CREATE SCHEMA {ns}")
        trino_query(f"CREATE TABLE {t.events} (event_id varchar, image_id varchar, ingested_at timestamp(6))")
        extra = ", image_id varchar, user_id varchar, source varchar" if kind == "new" else ""
        trino_query(
            f"CREATE TABLE {t.rejected} (kafka_topic varchar, kafka_partition integer, kafka_offset bigint, "
            f"event_id varchar, reason varchar, error varchar, rejected_at timestamp(6){extra})"
        )
        made[kind] = t
    new, old = made["new"], made["old"]
    trino_query(f"INSERT INTO {new.events} VALUES (?, ?, ?), (?, ?, ?)", [LANDED, IMAGE, T, BOTH, IMAGE, T])
    trino_query(
        f"INSERT INTO {new.rejected} VALUES ('t', 0, 1, ?, 'untrusted_claim_check', 'bad signature', ?, ?, 'u1', 'x'),"
        " ('t', 0, 2, ?, 'event_id_reused', 'other content', ?, NULL, NULL, NULL)",
        [REFUSED, T, IMAGE, BOTH, T],
    )
    trino_query(
        f"INSERT INTO {old.rejected} VALUES ('t', 0, 1, ?, 'invalid_event', 'captions: too many', ?)", [OLD_REFUSED, T]
    )
    try:
        yield made
    finally:
        for t in made.values():
            for name in (t.events, t.rejected):
                trino_query(f"DROP TABLE IF EXISTS {name}")
            trino_query(f"DROP SCHEMA IF EXISTS {t.events.rsplit('.', 1)[0]}")


@pytest.fixture(scope="module")
def unique_ns():
    return f"t{uuid.uuid4().hex[:10]}"


def client_on(tables) -> TestClient:
    from services.api.deps import get_tables
    from services.api.main import create_app

    app = create_app()
    app.dependency_overrides[get_tables] = lambda: tables
    return TestClient(app, headers={"X-API-Key": API_KEY})  # no lifespan: no captioner needed


def test_landed_refused_both_and_unseen(tables):
    c = client_on(tables["new"])
    r = c.get(f"/v1/events/{LANDED}")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "event_id": LANDED,
        "status": "landed",
        "image_id": IMAGE,
        "ingested_at": T.isoformat(),
        "refusals": [],
    }
    r = c.get(f"/v1/events/{REFUSED.upper()}")  # any spelling of the UUID
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["image_id"], body["ingested_at"]) == ("refused", None, None)
    assert body["refusals"] == [
        {
            "reason": "untrusted_claim_check",
            "error": "bad signature",
            "rejected_at": T.isoformat(),
            "image_id": IMAGE,
            "user_id": "u1",
            "source": "x",
        }
    ]
    r = c.get(f"/v1/events/{BOTH}")
    assert r.status_code == 200 and r.json()["status"] == "landed", r.text
    assert [x["reason"] for x in r.json()["refusals"]] == ["event_id_reused"]
    r = c.get(f"/v1/events/{UNSEEN}")
    assert r.status_code == 404, r.text
    assert r.json()["detail"]["reason"] == "not_seen" and r.headers["retry-after"]


def test_a_rejected_table_without_the_identity_columns_still_answers(tables):
    r = client_on(tables["old"]).get(f"/v1/events/{OLD_REFUSED}")
    assert r.status_code == 200, r.text
    (refusal,) = r.json()["refusals"]
    assert refusal["reason"] == "invalid_event" and refusal["image_id"] is None and refusal["user_id"] is None


def test_a_lake_without_bronze_tables_yet_is_not_seen(stack_up, unique_ns):
    r = client_on(stack_up.tables.under(f"{stack_up.iceberg_catalog}.{unique_ns}none")).get(f"/v1/events/{LANDED}")
    assert r.status_code == 404 and r.json()["detail"]["reason"] == "not_seen", r.text


def test_a_write_key_is_required(tables):
    c = client_on(tables["new"])
    assert c.get(f"/v1/events/{LANDED}", headers={"X-API-Key": ""}).status_code == 401
    assert c.get(f"/v1/events/{LANDED}", headers={"X-API-Key": "not-a-key"}).status_code == 401
    assert c.get("/v1/events/not-a-uuid").status_code == 422
