"""Each Lake DAG run for real (`airflow dags test` through `lake.apps.orchestration.run_dag`, recorded in
Airflow like any run) against the running stack and the stack's own lake, then the data it produced
checked in the lake: uploads through the API -> lake_ingest -> lake_caption -> lake_retrain (nothing
new: skipped; new data: candidate, evaluation, gate decision) -> lake_index.

A tiny model under a name of its own stands in for `compact`, so the lake's production model, the
API and the captions users see are left alone; its registry entries, files and caption/evaluation
rows are removed at the end (the uploaded images stay, as any upload does).

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/dags/test_dag_runs.py
"""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest

from tests.utils.images import RUN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = f"tdag{uuid.uuid4().hex[:8]}"


def upload(n: int, seed: int) -> dict[str, str]:
    """``n`` new Shapes images with their human caption through POST /v1/images: image_id -> caption."""
    from lake.apps.serving import api_client
    from lake.datasets.shapes import generate

    out = {}
    with api_client() as api:
        for sample in generate(n, seed=seed, star="none", fmt="png"):
            r = api.post(
                "/v1/images?source=dag-test",
                files={"file": (sample.filename, io.BytesIO(sample.data))},
                data={"captions": sample.captions[:1]},
            )
            r.raise_for_status()
            assert r.json()["image_id"] == hashlib.sha256(sample.data).hexdigest()
            out[r.json()["image_id"]] = sample.captions[0]
    return out


def ids_in(table: str, ids) -> set[str]:
    """Which of ``ids`` are image ids of ``table``."""
    from lake.clients import trino_query

    ids = sorted(ids)
    marks = ", ".join("?" for _ in ids)
    rows = trino_query(f"SELECT DISTINCT image_id FROM {table} WHERE image_id IN ({marks})", ids)
    return {r[0] for r in rows}


def ran(dag_id: str, conf: dict | None = None):
    from lake.apps.orchestration import AirflowApi, run_dag

    done = run_dag(dag_id, conf, timeout=1200)
    assert done.ok, f"{dag_id} {done.state} {done.tasks}; log {done.log}:\n{done.log.read_text()[-4000:]}"
    api = AirflowApi()  # the REST API shows the run, as the UI does
    try:
        assert api.last_run(dag_id)["dag_run_id"] == done.run_id
    finally:
        api.close()
    return done


@pytest.fixture(scope="module")
def lake(stack_up, tmp_path_factory):
    """Batch A uploaded and carried through lake_ingest; a tiny model NAME-v1 registered as NAME's production,
    trained (in name) on the data set that run froze. Cleans up NAME's traces afterwards."""
    from lake.catalog import Catalog
    from lake.clients import minio_client, trino_query
    from lake.datasets.shapes import generate
    from lake.registry import BUCKET, Registry
    from models.captioner.compact import CompactConfig
    from tests.models.captioner.conftest import TINY, save_tiny_model

    seed = int(RUN[6:12], 16)
    state = {"seed": seed, "a": upload(8, seed)}
    state["ingest_a"] = ran("lake_ingest")
    cat = Catalog.connect()
    state["dataset_a"] = cat.latest_dataset("training_examples")
    reg = Registry.connect()
    try:
        model_dir = save_tiny_model(
            tmp_path_factory.mktemp("tiny"),
            CompactConfig(**TINY),
            [c for sample in generate(40, seed=7) for c in sample.captions],
        )
        ds = state["dataset_a"]
        reg.register(
            NAME,
            model_dir,
            run_id="dag-test",
            train={"steps": 0},
            dataset={
                "id": ds["_id"],
                "table": ds["table"],
                "snapshot_id": ds["snapshot_id"],
                "counts": ds.get("counts", {}),
            },
        )
        reg.set_stage(f"{NAME}-v1", "production", by="test", reason="stand-in for compact")
        yield state
    finally:
        for table in ("lake.gold.captions", "lake.gold.model_evaluations"):
            trino_query(f"DELETE FROM {table} WHERE model_version LIKE ?", [f"{NAME}-v%"])
        mc = minio_client()
        for o in mc.list_objects(BUCKET, prefix=f"{NAME}/", recursive=True):
            mc.remove_object(BUCKET, o.object_name)
        cat.db.models.delete_many({"name": NAME})
        cat.db.evaluations.delete_many({"model": {"$regex": f"^{NAME}-v"}})
        cat.db.promotions.delete_many({"model": NAME})


def test_lake_ingest_carries_uploads_through_every_layer(lake):
    done, ids = lake["ingest_a"], lake["a"]
    assert done.tasks == {t: "success" for t in ("bronze", "silver", "gold", "quality_report", "record")}
    assert ids_in("lake.bronze.upload_events", ids) == set(ids)
    assert ids_in("lake.silver.images", ids) == set(ids)
    assert ids_in("lake.gold.training_examples", ids) == set(ids)  # the gate passed them all
    assert lake["dataset_a"]["counts"], "gold froze a data set"


def test_lake_caption_captions_with_the_chosen_version(lake):
    from lake.clients import trino_query

    done = ran("lake_caption", {"model": f"{NAME}-v1", "limit": 5})
    assert done.tasks == {"caption": "success"}
    rows = trino_query("SELECT image_id, caption FROM lake.gold.captions WHERE model_version = ?", [f"{NAME}-v1"])
    assert len(rows) == 5 and all(isinstance(c, str) for _, c in rows)  # untrained: any text, maybe empty
    # the newest first: all five from the last batch silver normalized (batch A, maybe with earlier uploads)
    newest = trino_query("SELECT max(normalized_at) FROM lake.silver.images")[0][0]
    captioned = [i for i, _ in rows]
    assert ids_in("lake.silver.images", captioned) == set(captioned)
    marks = ", ".join("?" for _ in captioned)
    stamps = trino_query(
        f"SELECT DISTINCT normalized_at FROM lake.silver.images WHERE image_id IN ({marks})", captioned
    )
    assert stamps == [[newest]]


def test_lake_retrain_skips_when_nothing_is_new(lake):
    done = ran("lake_retrain", {"model": NAME, "min_new": 1})
    assert set(done.tasks) == {"check", "train", "evaluate", "gate", "promote", "reject", "serving"}
    assert set(done.tasks.values()) == {"skipped"}


def test_lake_retrain_trains_evaluates_and_gates_new_data(lake):
    from lake.catalog import Catalog
    from lake.clients import trino_query
    from lake.registry import Registry

    b = upload(8, lake["seed"] + 1)
    ran("lake_ingest")
    done = ran("lake_retrain", {"model": NAME, "min_new": 1, "minutes": 1.0, "steps": 2})
    assert all(done.tasks[t] == "success" for t in ("check", "train", "evaluate", "gate")), done.tasks
    decision = Catalog.connect().db.promotions.find_one({"candidate": f"{NAME}-v2"})
    assert decision and decision["decision"] in ("promote", "reject") and decision["reasons"]
    chosen, other = ("promote", "reject") if decision["decision"] == "promote" else ("reject", "promote")
    assert done.tasks[chosen] == "success" and done.tasks[other] == "skipped"
    assert done.tasks["serving"] in ("success", "skipped")  # skipped on a lake with no production `compact` yet
    stage = Registry.connect().get(f"{NAME}-v2")["stage"]
    assert stage == ("production" if chosen == "promote" else "rejected")
    assert decision["production"] == f"{NAME}-v1" and decision["new_examples"] >= 1
    assert ids_in("lake.gold.training_examples", b) == set(b)
    versions = {
        r[0]
        for r in trino_query(
            "SELECT DISTINCT model_version FROM lake.gold.model_evaluations WHERE model_version LIKE ?", [f"{NAME}-v%"]
        )
    }
    assert versions == {f"{NAME}-v1", f"{NAME}-v2"}  # candidate and production on the same test split


def test_lake_index_publishes_a_new_version(lake):
    from lake.clients import minio_client
    from lake.search_index import read_pointer

    before = read_pointer(minio_client())
    done = ran("lake_index")
    after = read_pointer(minio_client())
    if done.tasks == {"index": "skipped"}:  # another run indexed these captions already
        assert after == before
    else:
        assert done.tasks == {"index": "success"}
        assert after["version"] > (before or {"version": 0})["version"] and after["size"] > 0
