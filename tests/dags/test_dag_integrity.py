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


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_integrity(airflow_python, dag_file: Path, tmp_path):
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "PATH": "/usr/bin:/bin",
    }
    res = subprocess.run(
        [str(airflow_python), "-c", PROBE, str(dag_file)], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert out["dags"] == {dag_file.stem: dag_file.name}, "one DAG per file, named after the file"


def test_there_are_dags():
    assert {p.stem for p in DAG_FILES} >= {"lake_ingest", "lake_caption", "lake_retrain", "lake_index"}


def test_helpers_are_ignored_by_the_dag_processor():
    ignore = (REPO_ROOT / "dags" / ".airflowignore").read_text()
    helpers = [p.name for p in (REPO_ROOT / "dags").glob("_*.py")]
    assert helpers and all(name.replace(".", "\\.") in ignore for name in helpers)
