"""The loop with no command typed, against the real scheduler (not `airflow dags test`): from a lake whose
production model has never seen a star, star images with their human captions arrive through the API and
the pipeline DAGs are unpaused; the scheduler runs `lake_ingest` on its interval, then, woken by assets,
`lake_caption`, `lake_index` and `lake_retrain`; the gate promotes the candidate, and the running API
answers with it and names the stars. Upload -> served seconds go to bench/results/autonomy.json.
(integration, slow: about 15 minutes on 2 cores.) The test stack's scheduled retrains are judged on
their focus slices only (`LAKE_RETRAIN_TOLERANCE=1.0`, lake/config.py says why): this tests the
scheduler carrying the loop, tests/lake/test_retrain.py the gate's judgement.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/dags/test_autonomy.py
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from lake.config import REPO_ROOT
from tests.dags.test_dag_runs import upload
from tests.utils.images import RUN

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

STAR_FREE_MINUTES = 1.5  # the stand-in production model's training budget
STARS = 200  # star images uploaded (about 160 train examples: past the test stack's min_new of 100)
WITHIN_S = 1800  # upload -> the retrain's run over
PROBES = 20  # star images never uploaded (after 1.5 minutes of training, 1 of 6 and 2 of 6 named a star in two runs)
RESULT = "bench/results/autonomy.json"


@pytest.fixture(scope="module")
def star_free(stack_up):
    """`compact`'s production is a model trained only on the lake's star-free train examples (the lake first gets
    300 star-free images through the API and `lake_ingest`); the production before it is restored afterwards."""
    from lake.apps.orchestration import run_dag
    from lake.apps.serving import wait_served
    from lake.catalog import Catalog
    from lake.registry import ModelNotFound, Registry
    from lake.retrain import promote
    from lake.training import for_target, read_examples, resolve_dataset, train_from_lake
    from models.captioner.train import TrainConfig

    reg = Registry.connect()
    try:
        previous = reg.get("compact:production")["_id"]
    except ModelNotFound:
        previous = None
    upload(300, seed=int(RUN[6:12], 16) + 7)
    assert run_dag("lake_ingest", s=stack_up, timeout=1200).ok
    ds = resolve_dataset(Catalog.connect(), None)
    examples = [e for e in for_target(read_examples(ds, ["train"]), "first") if "star" not in e.caption]
    doc = train_from_lake(dataset=ds["_id"], config=TrainConfig(minutes=STAR_FREE_MINUTES), examples=examples)
    promote(doc["_id"], by="tests/dags/test_autonomy.py", reason="a star-free production for the autonomy test")
    wait_served(doc["_id"])
    yield doc
    if previous and reg.get("compact:production")["_id"] != previous:
        promote(previous, by="tests/dags/test_autonomy.py", reason="restored after the autonomy test")


def star_uploads(folder, seed: int) -> dict[str, list[str]]:
    """``STARS`` star images with their human captions, written to ``folder``: file name -> captions."""
    from lake.datasets.coco import load_sidecar
    from lake.datasets.shapes import write_dataset

    write_dataset(folder, STARS, seed=seed, star="only", overwrite=True, progress=False)
    return load_sidecar(folder / "captions.json")


def wait_for(api, dag_id: str, since: str, until: float) -> dict | None:
    """The first run of ``dag_id`` started since ``since``, once it has ended (None if none by ``until``)."""
    while time.monotonic() < until:
        runs = api.get(f"/dags/{dag_id}/dagRuns", start_date_gte=since, order_by="start_date")["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(10)
    return None


def test_uploads_of_a_new_concept_reach_a_served_model_with_no_command(star_free, stack_up, tmp_path):
    from lake.apps.orchestration import PIPELINE, AirflowApi, pause_and_drain, set_paused
    from lake.apps.serving import ask_api, probes, upload_by_api, wait_served
    from lake.catalog import Catalog

    captions = star_uploads(tmp_path / "stars", seed=int(RUN[6:12], 16) + 11)
    before = ask_api(probes(PROBES))
    assert not any("star" in a["caption"] for a in before), [a["caption"] for a in before]  # it never saw one
    since = datetime.now(UTC).isoformat()
    start = time.monotonic()
    upload_by_api(sorted((tmp_path / "stars").glob("shape_*")), captions, "autonomy-test")
    uploaded_s = time.monotonic() - start
    api = AirflowApi(stack_up)
    try:
        before = set_paused(PIPELINE, False, stack_up)
        try:
            retrain = wait_for(api, "lake_retrain", since, start + WITHIN_S)
            assert retrain is not None, f"no lake_retrain run ended within {WITHIN_S} s of the upload"
            tasks = api.tasks("lake_retrain", retrain["dag_run_id"])
            decision = Catalog.connect().db.promotions.find_one({"production": star_free["_id"], "kind": "retrain"})
            assert retrain["state"] == "success" and tasks["promote"] == "success", (tasks, decision)
            served_s = time.monotonic() - start + wait_served(decision["candidate"], within=120)
        finally:
            pause_and_drain(PIPELINE, api)  # nothing of the scheduler's overlaps the next test
            if live := tuple(d for d, paused in before.items() if not paused):
                set_paused(live, False, stack_up)
        runs = {
            d: api.get(f"/dags/{d}/dagRuns", start_date_gte=since, order_by="start_date")["dag_runs"] for d in PIPELINE
        }
    finally:
        api.close()
    assert runs["lake_ingest"][0]["run_type"] == "scheduled"
    for dag_id in ("lake_caption", "lake_index", "lake_retrain"):
        assert runs[dag_id] and runs[dag_id][0]["run_type"] == "asset_triggered", (dag_id, runs[dag_id])
    failed = {d: [r["dag_run_id"] for r in rs if r["state"] == "failed"] for d, rs in runs.items()}
    assert not any(failed.values()), failed
    answers = ask_api(probes(PROBES))
    assert all(a["model_version"] == decision["candidate"] for a in answers)
    named = sum("star" in a["caption"] for a in answers)
    assert named >= 1, [a["caption"] for a in answers]  # the new concept, after 1.5 minutes of training
    star = next(r for r in decision["table"] if r["slice"] == "star")
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stars_uploaded": STARS,
        "upload_s": round(uploaded_s, 1),
        "upload_to_served_s": round(served_s, 1),
        "production": star_free["_id"],
        "candidate": decision["candidate"],
        "star_slice": {"production": star["production"], "candidate": star["candidate"]},
        "probes_naming_stars": f"{named}/{len(answers)}",
        "runs": {d: [(r["run_type"], r["state"]) for r in rs] for d, rs in runs.items()},
    }
    (REPO_ROOT / RESULT).write_text(json.dumps(result, indent=1) + "\n")
