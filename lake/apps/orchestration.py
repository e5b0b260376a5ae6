"""Airflow from Lake's side: run a DAG for real, and read what the Airflow REST API says of each DAG.

    lake dags run lake_ingest                         # `airflow dags test`: every task, in order, now
    lake dags run lake_caption --conf '{"model": "compact-v3"}'
    lake dags status                                  # last run of every DAG (REST API)
    lake dags pause lake_retrain                      # the scheduler leaves it alone; `unpause` resumes it
    lake dags record                                  # Airflow's finished task runs -> catalog.lake.pipeline_runs

The pipeline DAGs (`PIPELINE`) are live by default (`LAKE_DAGS_LIVE`): Airflow creates them unpaused and
the scheduler runs them by themselves. `hold_pipeline` pauses them while a command drives the pipeline
itself (the demo) and waits for the runs in flight, then gives them back.

A run here is `airflow dags test` in the Airflow venv with the stack's Airflow settings: the
tasks run the same commands the scheduler would run, against the same stack, and the run is
recorded in Airflow's database, so the UI and `/api/v2/dags/<id>/dagRuns` show it
(`triggered_by: test`). It does not need the DAG to be unpaused and schedules nothing
downstream of it (asset events of a paused DAG's consumers wait until it is unpaused).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from lake.config import Settings, get_settings

# The DAGs that carry data through the lake; lake_stack_smoke is a check, run by hand.
PIPELINE = ("lake_ingest", "lake_caption", "lake_index", "lake_retrain")


class AirflowError(RuntimeError):
    """Airflow is not reachable, refused the login, or a run could not start."""


@dataclass
class DagRun:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    tasks: dict[str, str] = field(default_factory=dict)  # task_id -> state
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.state == "success"


class AirflowApi:
    """A logged-in client of the Airflow 3 REST API (token from /auth/token, as the UI gets one)."""

    def __init__(self, s: Settings | None = None, timeout: float = 30.0):
        from infra.apps import ui_password

        s = s or get_settings()
        self.http = httpx.Client(base_url=s.airflow_url, timeout=timeout)
        try:
            r = self.http.post("/auth/token", json={"username": s.airflow_user, "password": ui_password(s, "airflow")})
        except httpx.HTTPError as e:
            raise AirflowError(f"Airflow is not reachable on :{s.airflow_port} ({e}): run `lake up`") from e
        if r.status_code != 201:
            raise AirflowError(f"Airflow refused the login of {s.airflow_user!r}: HTTP {r.status_code} {r.text[:200]}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, **params) -> dict:
        r = self.http.get(f"/api/v2{path}", params=params)
        r.raise_for_status()
        return r.json()

    def set_paused(self, dag_id: str, paused: bool) -> None:
        r = self.http.patch(f"/api/v2/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": paused})
        if r.status_code == 404:
            raise AirflowError(f"Airflow knows no DAG {dag_id!r} (yet: its file is parsed within 30 s of `lake up`)")
        r.raise_for_status()

    def running(self, dag_ids: tuple[str, ...]) -> list[dict]:
        """Runs in flight (a queued run of a paused DAG waits until it is unpaused: not one of them; a
        running one stops where it is, its next tasks unscheduled)."""
        got = self.get("/dags/~/dagRuns", state=["running"], limit=100)["dag_runs"]
        return [r for r in got if r["dag_id"] in dag_ids]

    def active_tasks(self, dag_ids: tuple[str, ...]) -> list[dict]:
        """Task instances of ``dag_ids`` running or queued to run."""
        got = self.get("/dags/~/dagRuns/~/taskInstances", state=["running", "queued"], limit=100)["task_instances"]
        return [t for t in got if t["dag_id"] in dag_ids]

    def dags(self) -> list[dict]:
        return self.get("/dags", limit=100, order_by="dag_id")["dags"]

    def last_run(self, dag_id: str) -> dict | None:
        runs = self.get(f"/dags/{dag_id}/dagRuns", limit=1, order_by="-start_date")["dag_runs"]
        return runs[0] if runs else None

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str]:
        got = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]
        return {t["task_id"]: t["state"] for t in got}

    def finished_tasks(self, since: datetime | None = None, page: int = 100) -> list[dict]:
        """Every task instance of every DAG that ended at or after ``since`` (all of them without), oldest first."""
        params: dict = {"limit": page, "order_by": "end_date"}
        if since is not None:
            params["end_date_gte"] = since.isoformat()
        out: list[dict] = []
        while True:
            got = self.get("/dags/~/dagRuns/~/taskInstances", **params, offset=len(out))
            out += got["task_instances"]
            if not got["task_instances"] or len(out) >= got["total_entries"]:
                return [t for t in out if t.get("end_date")]

    def tries(self, ti: dict) -> list[dict]:
        """Every try of one task instance (the latest one too)."""
        mapped = f"/{ti['map_index']}" if ti.get("map_index", -1) >= 0 else ""
        return self.get(f"/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}{mapped}/tries")[
            "task_instances"
        ]

    def import_errors(self) -> list[dict]:
        return self.get("/importErrors", limit=100)["import_errors"]

    def close(self) -> None:
        self.http.close()


def status(s: Settings | None = None) -> list[dict]:
    """Every DAG Airflow knows: paused or not, and its last run (state, start, end, duration, who)."""
    api = AirflowApi(s)
    try:
        out = []
        for d in api.dags():
            run = api.last_run(d["dag_id"]) or {}
            out.append(
                {
                    "dag_id": d["dag_id"],
                    "paused": d["is_paused"],
                    "schedule": d.get("timetable_summary"),
                    "last_run": run.get("dag_run_id"),
                    "state": run.get("state"),
                    "start": run.get("start_date"),
                    "end": run.get("end_date"),
                    "duration_s": run.get("duration"),
                    "triggered_by": run.get("triggered_by"),
                }
            )
        return out
    finally:
        api.close()


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def task_run(ti: dict) -> dict:
    """A task instance of the REST API as a `pipeline_runs` document (one per try)."""
    return {
        "_id": f"{ti['dag_id']}/{ti['dag_run_id']}/{ti['task_id']}/{ti.get('map_index', -1)}/{ti['try_number']}",
        "dag_id": ti["dag_id"],
        "run_id": ti["dag_run_id"],
        "task_id": ti["task_id"],
        "try_number": ti["try_number"],
        "state": ti["state"],
        "started_at": _when(ti.get("start_date")),
        "finished_at": _when(ti.get("end_date")),
        "duration_s": ti.get("duration"),
    }


def record_task_runs(s: Settings | None = None, catalog=None, overlap: timedelta = timedelta(minutes=10)) -> int:
    """Copy Airflow's finished task runs into the catalog's `pipeline_runs` (read by `lake.gold.pipeline_runs`):
    those that ended since the last one recorded, less ``overlap`` (an upsert per try: a re-run records nothing
    twice). How many documents were written."""
    from pymongo import ReplaceOne

    from lake.catalog import Catalog
    from lake.events import utcnow

    s = s or get_settings()
    cat = catalog or Catalog.connect(s)
    last = cat.db.pipeline_runs.find_one({}, sort=[("finished_at", -1)])
    since = last["finished_at"].replace(tzinfo=UTC) - overlap if last else None
    api = AirflowApi(s)
    try:
        docs = []
        for ti in api.finished_tasks(since):
            # the endpoint has a task's latest try only: earlier ones (failed, then retried) from its tries
            tries = [ti] if ti["try_number"] <= 1 else api.tries(ti)
            docs += [task_run({**ti, **t}) for t in tries if t.get("end_date")]
    finally:
        api.close()
    now = utcnow()
    if docs:
        cat.db.pipeline_runs.bulk_write(
            [ReplaceOne({"_id": d["_id"]}, {**d, "recorded_at": now}, upsert=True) for d in docs]
        )
    return len(docs)


def set_paused(dag_ids: tuple[str, ...], paused: bool, s: Settings | None = None) -> dict[str, bool]:
    """Pause or unpause ``dag_ids``; each one's paused state before."""
    api = AirflowApi(s)
    try:
        known = {d["dag_id"]: d["is_paused"] for d in api.dags()}
        for dag_id in dag_ids:
            api.set_paused(dag_id, paused)
        return {d: known.get(d, True) for d in dag_ids}
    finally:
        api.close()


def pause_and_drain(dag_ids: tuple[str, ...], api: AirflowApi, timeout: float = 1800, say=print) -> None:
    """Pause ``dag_ids`` and wait until none of their tasks runs. The scheduler does not go on with a run of
    a paused DAG, so a DAG with a run that was in flight before the pause is unpaused again until that run is
    over (its `max_active_runs=1` starts no second one meanwhile), then paused. A run the scheduler started in
    that window (the next interval came due) is not waited for: it stops after the tasks it had started, and
    goes on when the DAG is unpaused; otherwise a DAG whose runs take its interval would never drain."""
    for dag_id in dag_ids:
        api.set_paused(dag_id, True)
    deadline = time.monotonic() + timeout
    waited: set[str] = set()
    while True:
        busy = [r for r in api.running(dag_ids) if r["dag_run_id"] not in waited]
        if not busy:
            break
        ids = {r["dag_run_id"] for r in busy}
        waited |= ids
        say(f"waiting for the scheduler's runs in flight: {', '.join(sorted(ids))}")
        for dag_id in {r["dag_id"] for r in busy}:
            api.set_paused(dag_id, False)
        while any(r["dag_run_id"] in ids for r in api.running(dag_ids)):
            if time.monotonic() > deadline:
                raise AirflowError(f"runs still in flight after {timeout:.0f} s: see the Airflow UI")
            time.sleep(2)
        for dag_id in {r["dag_id"] for r in busy}:
            api.set_paused(dag_id, True)
        waited |= {r["dag_run_id"] for r in api.running(dag_ids)}  # started while unpaused: they stop where they are
    while api.active_tasks(dag_ids):  # the tasks such a run had started finish
        if time.monotonic() > deadline:
            raise AirflowError(f"tasks still running after {timeout:.0f} s: see the Airflow UI")
        time.sleep(2)


@contextmanager
def hold_pipeline(s: Settings | None = None, parse_timeout: float = 180, drain_timeout: float = 1800, say=print):
    """Pause the pipeline DAGs while the caller drives the pipeline itself, once Airflow has parsed them (a
    DAG parsed later would start unpaused) and their runs in flight are over (`pause_and_drain`); then
    unpause them if the lake is live, else give each its state from before. Yields the DAGs that were
    unpaused."""
    s = s or get_settings()
    api = AirflowApi(s)
    try:
        deadline = time.monotonic() + parse_timeout
        while not set(PIPELINE) <= (before := {d["dag_id"]: d["is_paused"] for d in api.dags()}).keys():
            if time.monotonic() > deadline:
                raise AirflowError(f"Airflow has not parsed {', '.join(PIPELINE)} after {parse_timeout:.0f} s")
            time.sleep(2)
        pause_and_drain(PIPELINE, api, drain_timeout, say)
    finally:
        api.close()
    was_live = [d for d in PIPELINE if not before[d]]
    ok = False
    try:
        yield was_live
        ok = True
    finally:
        live = PIPELINE if s.dags_live and ok else was_live
        set_paused(tuple(live), False, s)


def run_dag(dag_id: str, conf: dict | None = None, s: Settings | None = None, timeout: float = 3600) -> DagRun:
    """Run every task of ``dag_id`` now with `airflow dags test` (log under .lake/logs/dags/); the run as the
    REST API records it, with each task's state."""
    from infra.apps import Airflow

    s = s or get_settings()
    api = AirflowApi(s)  # fails early, with the reason, when Airflow is down
    try:
        airflow = Airflow("airflow-api", s)
        log = s.log_dir / "dags" / f"{dag_id}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(airflow.venv / "bin" / "airflow"), "dags", "test", dag_id]
        if conf:
            argv += ["--conf", json.dumps(conf)]
        start = time.monotonic()
        with log.open("w") as out:
            try:
                subprocess.run(
                    argv,
                    env={**os.environ, **airflow.env()},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as e:
                raise AirflowError(f"{dag_id} still running after {timeout:.0f} s; see {log}") from e
        seconds = time.monotonic() - start
        run = api.last_run(dag_id)
        if run is None or run.get("triggered_by") != "test":
            raise AirflowError(f"`airflow dags test {dag_id}` recorded no run; see {log}")
        return DagRun(dag_id, run["dag_run_id"], run["state"], seconds, api.tasks(dag_id, run["dag_run_id"]), log)
    finally:
        api.close()
