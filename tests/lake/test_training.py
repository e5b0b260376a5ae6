"""Training and evaluation on a lake of the test's own (real Spark, MinIO, FerretDB, Trino):
Shapes images -> silver -> gold data set -> `lake model train` path -> registry -> evaluation
rows in model_evaluations, catalog summary, HTML report; the data set reads back unchanged
after the lake moves on."""

from __future__ import annotations

import uuid

import pytest

from lake.clients import minio_client, trino_query
from lake.datasets.shapes import generate
from lake.registry import BUCKET, Registry
from lake.storage import put_bronze
from lake.training import evaluate_version, read_examples, resolve_dataset, train_from_lake
from spark_jobs.gold import build_gold as gold
from spark_jobs.silver import normalize_images as silver
from tests.models.captioner.conftest import TINY
from tests.utils.bronze import event_row, scratch_lake, sha
from tests.utils.images import RUN

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def land(spark, lake, samples, first: int) -> None:
    for s in samples:
        put_bronze(minio_client(), sha(s.data), s.data, "image/png")
    lake.append([event_row(first + i, sha(s.data), list(s.captions)) for i, s in enumerate(samples)])
    silver.run(spark, tables=lake.silver, catalog=lake.catalog)
    gold.run(spark, tables=lake.gold, catalog=lake.catalog, with_views=False)


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    from models.captioner.compact import CompactConfig
    from models.captioner.train import TrainConfig

    name = f"t{uuid.uuid4().hex[:10]}"
    with scratch_lake(spark, name) as lake:
        land(spark, lake, list(generate(60, seed=int(RUN[6:12], 16))), 0)
        reg = Registry(lake.catalog.db, minio_client(), tmp_path_factory.mktemp("models"))
        config = TrainConfig(model=CompactConfig(**TINY), steps=8, minutes=None, batch_size=8)
        doc = train_from_lake(name=name, config=config, catalog=lake.catalog, registry=reg)
        try:
            yield lake, reg, doc
        finally:
            mc = minio_client()
            for o in mc.list_objects(BUCKET, prefix=f"{name}/", recursive=True):
                mc.remove_object(BUCKET, o.object_name)


def test_a_trained_version_is_registered_with_its_data_set(trained):
    lake, reg, doc = trained
    ds = lake.catalog.latest_dataset("training_examples")
    assert doc["_id"].endswith("-v1") and doc["stage"] == "candidate"
    assert doc["dataset"]["id"] == ds["_id"] and doc["dataset"]["snapshot_id"] == ds["snapshot_id"]
    assert doc["train"]["steps"] == 8 and doc["code_version"]
    files = {f["name"] for f in doc["files"]}
    assert {"config.json", "model.safetensors", "loss_curve.png"} <= files
    assert files <= {o.object_name.rsplit("/", 1)[1] for o in minio_client().list_objects(BUCKET, doc["prefix"])}
    run = lake.catalog.last_run("model.train")
    assert run["outputs"]["model"] == doc["_id"] and run["inputs"]["snapshot_id"] == ds["snapshot_id"]
    assert run["counts"]["examples"] == len(read_examples(ds, ["train"])) // 3  # first caption of each image


def test_evaluation_lands_in_gold_the_catalog_and_a_report(trained, tmp_path):
    lake, reg, doc = trained
    report = evaluate_version(doc["_id"], catalog=lake.catalog, registry=reg, meteor=False, report_dir=tmp_path)
    n_test = len({e.image_id for e in read_examples(resolve_dataset(lake.catalog), ["test"])})
    assert report["n"] == n_test > 0 and "CIDEr" in report["overall"]
    table = f"{lake.gold.gold}.model_evaluations"
    rows = trino_query(f"SELECT slice, metric, value, n FROM {table} WHERE model_version = ?", [doc["_id"]])
    assert ("overall", "CIDEr") in {(r[0], r[1]) for r in rows}
    assert {r[0] for r in rows} >= {"overall", *report["slices"]}
    assert reg.get(doc["_id"])["evaluation"]["overall"]["CIDEr"] == pytest.approx(report["overall"]["CIDEr"])
    assert lake.catalog.db.evaluations.count_documents({"model": doc["_id"]}) == 1
    page = (tmp_path / "index.html").read_text()
    assert doc["_id"] in page and "<img" in page and (tmp_path / "slices.png").stat().st_size > 1000
    assert report["report"].startswith(f"s3://models/{doc['prefix']}report/")


def test_the_data_set_reads_back_unchanged_after_the_lake_moves_on(spark, trained):
    lake, reg, doc = trained
    ds = resolve_dataset(lake.catalog, doc["dataset"]["id"])
    before = read_examples(ds, ["train", "val", "test"])
    land(spark, lake, list(generate(6, seed=int(RUN[6:12], 16) + 1)), 1000)
    assert lake.catalog.latest_dataset("training_examples")["_id"] != ds["_id"]
    assert read_examples(ds, ["train", "val", "test"]) == before


def test_registry_versions_stages_and_verified_copies(trained):
    lake, reg, doc = trained
    second = reg.register(
        doc["name"], reg.fetch(doc["_id"]), dataset=doc["dataset"], train=doc["train"], run_id="test", parent=doc["_id"]
    )
    assert second["_id"] == f"{doc['name']}-v2"
    reg.set_stage(doc["_id"], "production", by="test", reason="first")
    reg.set_stage(second["_id"], "production", by="test", reason="better")
    assert reg.get(f"{doc['name']}:production")["_id"] == second["_id"]
    assert reg.get(doc["_id"])["stage"] == "archived"
    local = reg.fetch(second["_id"])
    (local / "config.json").write_text("{}")  # a damaged local copy is fetched again
    assert reg.fetch(second["_id"]) == local and (local / "config.json").read_text() != "{}"


def test_no_data_set_and_unknown_versions_say_what_to_do(trained):
    from lake.catalog import Catalog
    from lake.clients import mongo_client
    from lake.registry import ModelNotFound
    from lake.training import DatasetError

    lake, reg, _ = trained
    with pytest.raises(DatasetError, match="lake layers run"):
        resolve_dataset(Catalog(mongo_client()[f"empty{uuid.uuid4().hex[:8]}"]))
    with pytest.raises(ModelNotFound, match="versions of nosuch: none"):
        reg.get("nosuch-v3")
    with pytest.raises(ModelNotFound, match="not a model version"):
        reg.get("../../etc")


def test_a_killed_registration_is_not_a_model(trained):
    from lake.registry import ModelNotFound

    lake, reg, doc = trained
    lake.catalog.db.models.insert_one(
        {"_id": f"{doc['name']}-v99", "name": doc["name"], "version": 99, "stage": "uploading"}
    )
    with pytest.raises(ModelNotFound):
        reg.get(f"{doc['name']}-v99")


def test_bad_names_and_targets_fail_before_any_training(trained):
    lake, reg, _ = trained
    with pytest.raises(ValueError, match="model name"):
        train_from_lake(name="Bad Name", catalog=lake.catalog, registry=reg)
    with pytest.raises(ValueError, match="target"):
        train_from_lake(name="ok", target="alll", catalog=lake.catalog, registry=reg)
    assert lake.catalog.db.runs.count_documents({"job": "model.train", "status": "failed"}) == 0
