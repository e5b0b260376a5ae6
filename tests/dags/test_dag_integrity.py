"""Every DAG file imports cleanly in the Airflow venv, defines one DAG named after the
file, and makes no network call while being parsed (sockets are blocked)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lake.config import REPO_ROOT

AIRFLOW_PY = REPO_ROOT / ".lake" / "venvs" / "airflow" / "bin" / "python"
DAG_FILES = sorted(p for p in (REPO_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))

PROBE = r"""
import json, os, socket, sys
def no_network(*a, **k):
    raise RuntimeError("network call while parsing a DAG")
socket.socket.connect = no_network
socket.create_connection = no_network
from airflow.dag_processing.dagbag import BundleDagBag
# as the DAG processor and the task runner parse it: the bundle's folder (dags/) on sys.path
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=os.path.dirname(sys.argv[1]))
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": {d.dag_id: os.path.basename(d.fileloc) for d in bag.dags.values()}}))
"""


@pytest.fixture(scope="module")
def airflow_python(tmp_path_factory):
    if not AIRFLOW_PY.exists():
        subprocess.run([str(REPO_ROOT / "infra" / "bootstrap.sh"), "airflow"], check=True)
    return AIRFLOW_PY


def probe(airflow_python, code: str, path: Path, tmp_path, **env: str) -> dict:
    """Run ``code`` on ``path`` in the Airflow venv, on a scratch AIRFLOW_HOME (plus ``env``); its JSON line."""
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "PATH": "/usr/bin:/bin",
        **env,
    }
    res = subprocess.run(
        [str(airflow_python), "-c", code, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_integrity(airflow_python, dag_file: Path, tmp_path):
    out = probe(airflow_python, PROBE, dag_file, tmp_path)
    assert out["errors"] == {}
    assert out["dags"] == {dag_file.stem: dag_file.name}, "one DAG per file, named after the file"


def test_there_are_dags():
    assert {p.stem for p in DAG_FILES} >= {"lake_ingest", "lake_caption", "lake_retrain", "lake_index"}


def test_helpers_are_ignored_by_the_dag_processor():
    ignore = (REPO_ROOT / "dags" / ".airflowignore").read_text()
    helpers = [p.name for p in (REPO_ROOT / "dags").glob("_*.py")]
    assert helpers and all(name.replace(".", "\\.") in ignore for name in helpers)


SETTINGS_PROBE = r"""
import json, sys
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1])
ingest, retrain = bag.dags["lake_ingest"], bag.dags["lake_retrain"]
print(json.dumps({
    "interval": ingest.schedule.total_seconds(),
    "params": {k: retrain.params[k] for k in ("min_new", "minutes", "steps", "tolerance")},
    "bronze_skips_on": ingest.get_task("bronze").skip_on_exit_code,
    "silver_after": ingest.get_task("silver").trigger_rule,
    "retrain": {t.task_id: sorted(t.downstream_task_ids) for t in retrain.tasks},
    "retrain_skips": {t.task_id: t.skip_on_exit_code for t in retrain.tasks},
    "retrain_outlets": {t.task_id: [a.uri for a in t.outlets] for t in retrain.tasks if t.outlets},
    "serving_after": retrain.get_task("serving").trigger_rule,
}))
"""


def test_schedules_and_budgets_come_from_the_settings(airflow_python, tmp_path):
    """What `lake up` exports (infra/apps.py) is what the DAGs run by: the ingest interval, the retrain's
    defaults; and an idle bronze is skipped (no asset event) without holding silver back."""
    out = probe(
        airflow_python,
        SETTINGS_PROBE,
        REPO_ROOT / "dags",
        tmp_path,
        LAKE_INGEST_INTERVAL="0.5",
        LAKE_RETRAIN_MIN_NEW="7",
        LAKE_RETRAIN_MINUTES="1.5",
        LAKE_RETRAIN_STEPS="40",
        LAKE_RETRAIN_TOLERANCE="0.1",
    )
    assert out["interval"] == 30.0  # seconds
    assert out["params"] == {"min_new": 7, "minutes": 1.5, "steps": 40, "tolerance": 0.1}
    assert out["bronze_skips_on"] == [99] and out["silver_after"] == "none_failed"


def test_the_retrain_is_a_task_per_step(airflow_python, tmp_path):
    """The grid shows each step of the loop; the step the gate did not choose is skipped (a rejected
    candidate is a skipped promote); only a promotion updates the production-model asset."""
    out = probe(airflow_python, SETTINGS_PROBE, REPO_ROOT / "dags", tmp_path)
    assert out["retrain"] == {
        "check": ["train"],
        "train": ["evaluate"],
        "evaluate": ["gate"],
        "gate": ["promote", "reject"],
        "promote": ["serving"],
        "reject": ["serving"],
        "serving": [],
    }
    assert all(out["retrain_skips"][t] == [99] for t in ("check", "promote", "reject", "serving"))
    assert out["retrain_outlets"] == {"promote": ["lake://models/production"]}
    assert out["serving_after"] == "none_failed_min_one_success"


def test_the_stack_exports_the_settings_to_airflow(tmp_path):
    from infra.apps import Airflow
    from lake.config import Settings

    # explicit values: the test stack's own environment says LAKE_DAGS_LIVE=false
    on = Settings(state_dir=tmp_path, dags_live=True, ingest_interval=0.5, retrain_min_new=7)
    live = Airflow("airflow-api", on).env()
    assert live["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert (live["LAKE_INGEST_INTERVAL"], live["LAKE_RETRAIN_MIN_NEW"]) == ("0.5", "7")
    held = Airflow("airflow-api", Settings(state_dir=tmp_path, dags_live=False)).env()
    assert held["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"


def test_the_tooling_stacks_keep_their_dags_paused():
    from lake.config import tooling_stack

    assert tooling_stack("test")["LAKE_DAGS_LIVE"] == tooling_stack("bench")["LAKE_DAGS_LIVE"] == "false"
