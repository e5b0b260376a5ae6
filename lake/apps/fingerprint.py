"""A fingerprint of a lake: what `make test` and `make bench` must leave exactly as they found it.

With its servers running: every Iceberg table's row count and current snapshot, every bucket's object
count, every catalog collection's document count, every topic's end offsets and Airflow's DAG runs
(asked for, and the scheduler's: while those ran, the lake's own DAGs may have changed the rest, `compare`).
With them stopped: every file of its state dir (path, size, mtime; the venvs, the tooling's stacks, logs
and pid files aside) and of a PostgreSQL cluster kept outside it.

    lake fingerprint --json > before.json   # infra/test.sh does this around the tests, on the user's lake
    lake fingerprint --compare before.json  # exit 1 and the differences if anything changed
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lake.config import Settings

# Not the lake's data: the checkout's venvs, the tooling's own stacks, logs and pid files.
SKIP = frozenset({"venvs", "stacks", "logs", "run"})


def files(root: Path, skip: frozenset[str] = SKIP) -> dict[str, dict]:
    """Per top-level entry of ``root``: its file count and a digest of (path, size, mtime) of each file."""
    out: dict[str, dict] = {}
    if not root.is_dir():
        return out
    for top in sorted(p for p in root.iterdir() if p.name not in skip):
        paths = sorted(p for p in ([top] if top.is_file() else top.rglob("*")) if p.is_file() and not p.is_symlink())
        h = hashlib.sha256()
        for p in paths:
            st = p.lstat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        out[top.name] = {"files": len(paths), "digest": h.hexdigest()[:16]}
    return out


def tables(s: Settings) -> dict[str, dict]:
    """``schema.table`` -> row count and current snapshot id, for every Iceberg table (views aside)."""
    from trino.exceptions import TrinoQueryError

    from lake.clients import no_tables_yet, trino_query

    cat = s.iceberg_catalog
    try:
        names = trino_query(
            f"SELECT table_schema, table_name FROM {cat}.information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('information_schema', 'system') ORDER BY 1, 2",
            s=s,
        )
    except TrinoQueryError as e:
        if not no_tables_yet(e):  # a brand-new lake: no tables
            raise
        return {}
    out = {}
    for schema, name in names:
        t = f'{cat}."{schema}"."{name}"'
        (rows,) = trino_query(f"SELECT count(*) FROM {t}", s=s)[0]
        snap = trino_query(
            f'SELECT snapshot_id FROM {cat}."{schema}"."{name}$snapshots" ORDER BY committed_at DESC LIMIT 1', s=s
        )
        out[f"{schema}.{name}"] = {"rows": rows, "snapshot": snap[0][0] if snap else None}
    return out


def buckets(s: Settings) -> dict[str, int]:
    from lake.clients import minio_client

    mc = minio_client(s)
    return {b.name: sum(1 for _ in mc.list_objects(b.name, recursive=True)) for b in mc.list_buckets()}


def collections(s: Settings) -> dict[str, int]:
    from lake.clients import mongo_client

    db = mongo_client(s)[s.mongo_db]
    return {c: db[c].count_documents({}) for c in sorted(db.list_collection_names())}


def topics(s: Settings) -> dict[str, int]:
    """Topic -> the sum of its partitions' end offsets (internal topics aside)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=30000)
    try:
        out = {}
        for topic in sorted(t for t in consumer.topics() if not t.startswith("__")):
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            out[topic] = sum(consumer.end_offsets(parts).values())
        return out
    finally:
        consumer.close()


# Runs the lake's own scheduler starts (its DAGs are live, `LAKE_DAGS_LIVE`); any other run was asked for.
SCHEDULER_RUNS = ("scheduled", "asset_triggered", "asset_materialization")
# What the scheduler's runs write: while they ran, a change there may be the lake's own.
SCHEDULER_WRITES = ("tables", "buckets", "collections", "topics")


def dag_runs(s: Settings) -> dict[str, int]:
    """Airflow's DAG runs: those asked for (by hand, `airflow dags test`, the REST API) and the scheduler's."""
    from lake.apps.orchestration import AirflowApi

    api = AirflowApi(s)
    try:
        total = api.get("/dags/~/dagRuns", limit=1)["total_entries"]
        scheduler = api.get("/dags/~/dagRuns", limit=1, run_type=list(SCHEDULER_RUNS))["total_entries"]
        return {"asked": total - scheduler, "scheduler": scheduler}
    finally:
        api.close()


PARTS = {"tables": tables, "buckets": buckets, "collections": collections, "topics": topics, "dag_runs": dag_runs}
# Which server each part needs (infra.stack's service names).
NEEDS = {"tables": "trino", "buckets": "minio", "collections": "ferretdb", "topics": "kafka", "dag_runs": "airflow-api"}


def fingerprint(s: Settings) -> dict:
    """The lake's fingerprint: of its servers' contents when they run, else of its files (see the module)."""
    from infra import stack
    from infra.services import Postgres

    rows = stack.status(s)  # one look: each status probes every server's health
    up = {r.name for r in rows if r.state == "healthy"}
    if not any(r.pid for r in rows):
        out = {"state": "stopped", "files": files(s.state_dir)}
        pg = Postgres("postgres", s).base
        if not pg.is_relative_to(s.state_dir):
            out["postgres_outside"] = files(pg.parent, frozenset())
        return out
    return {"state": "running", **{name: part(s) for name, part in PARTS.items() if NEEDS[name] in up}}


def compare(before: dict, after: dict) -> tuple[list[str], list[str], int]:
    """What differs between two fingerprints of a lake: (the changes nothing explains, those its own
    scheduler may have made, how many runs the scheduler started in between). A live lake changes by
    itself: while its scheduler ran, changes to what its DAGs write are the lake's, not the tooling's;
    a DAG run asked for, or any change while the scheduler was idle, is never explained away."""
    diff = differences(before, after)
    ran = (after.get("dag_runs") or {}).get("scheduler", 0) - (before.get("dag_runs") or {}).get("scheduler", 0)
    if ran <= 0:
        return diff, [], 0
    own = [d for d in diff if d.startswith(("dag_runs.scheduler:", *(f"{p}." for p in SCHEDULER_WRITES)))]
    return [d for d in diff if d not in own], own, ran


def differences(before: dict, after: dict, path: str = "") -> list[str]:
    """Human lines naming what differs between two fingerprints (empty: the same)."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for k in sorted(before.keys() | after.keys(), key=str):
            where = f"{path}.{k}" if path else str(k)
            if k not in after:
                lines.append(f"{where}: gone (was {before[k]})")
            elif k not in before:
                lines.append(f"{where}: new ({after[k]})")
            else:
                lines += differences(before[k], after[k], where)
        return lines
    return [] if before == after else [f"{path}: {before} -> {after}"]
