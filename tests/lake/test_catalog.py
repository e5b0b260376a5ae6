"""lake.catalog: document shaping (pure) and the collections on the real MongoDB-protocol server."""

from __future__ import annotations

import re

import pytest

from lake.catalog import Catalog, _nest, new_run_id


def test_run_ids_sort_by_time_and_are_unique():
    a, b = new_run_id("silver.normalize_images"), new_run_id("silver.normalize_images")
    assert re.fullmatch(r"silver\.normalize_images-\d{8}T\d{6}-[0-9a-f]{8}", a) and a != b


def test_nest_turns_dotted_keys_into_documents():
    doc = _nest(
        {"_id": "x", "layers.silver": "s3://s/x", "captions.human": ["a"], "split": "train", "event_ids": ["e1"]}, "r1"
    )
    assert doc["layers"] == {"silver": "s3://s/x"} and doc["captions"] == {"human": ["a"]}
    assert doc["lineage"] == {"run_ids": ["r1"], "event_ids": ["e1"]} and doc["_id"] == "x"


@pytest.fixture
def cat(stack_up, unique):
    from lake.clients import mongo_client

    yield Catalog(mongo_client()[unique])
    mongo_client().drop_database(unique)


@pytest.mark.integration
def test_images_insert_then_upsert_grow_lineage(cat):
    docs = [
        {"_id": f"{i:064x}", "split": "train", "layers.silver": f"s3://silver/{i}", "event_ids": [f"e{i}"]}
        for i in range(5)
    ]
    assert cat.upsert_images(docs, "r1", new=True) == 5
    again = [dict(d, **{"captions.human": ["x"], "event_ids": ["e9"]}) for d in docs[:2]]
    cat.upsert_images(again, "r2", new=True)  # already there: upserted, not duplicated
    d0 = cat.image(docs[0]["_id"])
    assert d0["lineage"] == {"run_ids": ["r1", "r2"], "event_ids": ["e0", "e9"]}
    assert d0["captions"] == {"human": ["x"]} and d0["layers"] == {"silver": "s3://silver/0"}
    assert cat.db.images.count_documents({}) == 5


@pytest.mark.integration
def test_runs_record_success_and_failure(cat):
    with cat.run("job.a", {"snapshot": 1}) as run:
        run.counts["n"] = 3
    with pytest.raises(ZeroDivisionError), cat.run("job.a", {"snapshot": 2}):
        1 / 0  # noqa: B018
    ok, failed = cat.last_run("job.a"), cat.last_run("job.a", status="failed")
    assert ok["counts"] == {"n": 3} and ok["inputs"] == {"snapshot": 1} and ok["duration_s"] >= 0
    assert failed["error"].startswith("ZeroDivisionError") and failed["inputs"] == {"snapshot": 2}
    cat.ensure_indexes()
    assert any("job" in str(ix["key"]) for ix in cat.db.runs.list_indexes())
