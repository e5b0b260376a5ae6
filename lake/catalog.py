"""The MongoDB catalog (database `lake`): what the lake holds, where, and which run put it there.

Collections:
- `images`: one document per image (`_id` = image_id): sources, sightings, first/last seen,
  the object in each layer, size, split, captions by origin, lineage (event ids, run ids).
- `datasets`: frozen data sets, e.g. `training_examples@<iceberg snapshot id>` with counts per split.
- `runs`: every job run: inputs (with the Iceberg snapshot read up to: the next run's
  watermark), outputs, counts, duration, status, error.
- `quality`: one validation result summary per gate run (the full result JSON is in MinIO).
- `models`: the model registry, one document per version (lake/registry.py).
- `evaluations`: one summary per model evaluation (the rows are in `lake.gold.model_evaluations`).
- `promotions`: every promotion gate decision, promotion by hand and rollback.
- `pipeline_runs`: Airflow's task runs (from its REST API, `lake dags record`), one per try.

    from lake.catalog import Catalog
    cat = Catalog.connect()
    with cat.run("silver.normalize_images", inputs={"bronze_snapshot": 42}) as run:
        run.counts["normalized"] = 10
    cat.last_run("silver.normalize_images", status="succeeded")
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from lake.config import Settings, get_settings
from lake.events import utcnow

log = structlog.get_logger("lake.catalog")

INDEXES: dict[str, list[tuple[str | list[tuple[str, int]], dict]]] = {
    # the API looks images up by _id; listings page by split / source / recency
    "images": [([("split", 1), ("_id", 1)], {}), ([("last_seen_at", -1)], {}), ([("sources", 1)], {})],
    "runs": [([("job", 1), ("started_at", -1)], {}), ([("status", 1)], {})],
    "datasets": [([("name", 1), ("created_at", -1)], {})],
    "quality": [([("suite", 1), ("validated_at", -1)], {})],
    "models": [([("name", 1), ("version", -1)], {}), ([("stage", 1)], {})],
    "evaluations": [([("model", 1), ("evaluated_at", -1)], {})],
    "captions": [([("model_version", 1)], {})],
    "pipeline_runs": [([("finished_at", -1)], {}), ([("state", 1)], {})],
}


UPDATE_BATCH = 16  # updates per bulk_write (see upsert_images)


# Column types Trino's MongoDB connector shows (its `_schema` collection). Declared, not
# guessed: the connector infers a collection's columns once, from whatever document it sees
# first (or none), and keeps that guess.
_TS, _S, _N = "timestamp(3)", "varchar", "bigint"
TRINO_COLUMNS: dict[str, dict[str, str]] = {
    "images": {
        "_id": _S,
        "split": _S,
        "width": _N,
        "height": _N,
        "src_format": _S,
        "src_width": _N,
        "src_height": _N,
        "bytes_out": _N,
        "phash": _S,
        "sources": "array(varchar)",
        "sightings": _N,
        "first_seen_at": _TS,
        "last_seen_at": _TS,
        "updated_at": _TS,
        "captions": "row(human array(varchar))",
        "layers": "row(bronze varchar, silver varchar)",
        "lineage": "row(run_ids array(varchar), event_ids array(varchar))",
    },
    "datasets": {"_id": _S, "name": _S, "table": _S, "snapshot_id": _N, "created_at": _TS, "run_id": _S},
    "runs": {
        "_id": _S,
        "job": _S,
        "status": _S,
        "started_at": _TS,
        "finished_at": _TS,
        "duration_s": "double",
        "error": _S,
    },
    "quality": {
        "_id": _S,
        "suite": _S,
        "run_id": _S,
        "success": "boolean",
        "rows": _N,
        "failed_rows": _N,
        "validated_at": _TS,
        "result_uri": _S,
    },
    "models": {
        "_id": _S,
        "name": _S,
        "version": _N,
        "stage": _S,
        "created_at": _TS,
        "uri": _S,
        "code_version": _S,
        "run_id": _S,
        "parent": _S,
        "dataset": "row(id varchar, snapshot_id bigint)",
    },
    "evaluations": {"_id": _S, "model": _S, "dataset": _S, "split": _S, "n": _N, "evaluated_at": _TS, "report": _S},
    "captions": {
        "_id": _S,
        "image_id": _S,
        "model_version": _S,
        "caption": _S,
        "filtered": _S,
        "source": _S,
        "created_at": _TS,
    },
    # Airflow's task runs (lake.apps.orchestration.record_task_runs); read by the view lake.gold.pipeline_runs
    "pipeline_runs": {
        "_id": _S,
        "dag_id": _S,
        "run_id": _S,
        "task_id": _S,
        "try_number": _N,
        "state": _S,
        "started_at": _TS,
        "finished_at": _TS,
        "duration_s": "double",
        "recorded_at": _TS,
    },
    # every gate decision (lake.retrain) and rollback; read by the view lake.gold.model_promotions
    "promotions": {
        "_id": _S,
        "kind": _S,
        "model": _S,
        "candidate": _S,
        "production": _S,
        "decision": _S,
        "promote": "boolean",
        "reasons": "array(varchar)",
        "table": "array(row(slice varchar, production double, candidate double, change double, "
        "focus boolean, ok boolean, n bigint))",
        "tolerance": "double",
        "focus_slices": "array(varchar)",
        "metric": _S,
        "dataset": _S,
        "since": _S,
        "new_examples": _N,
        "replay_examples": _N,
        "run_id": _S,
        "chart": _S,
        "at": _TS,
    },
}


def new_run_id(job: str) -> str:
    """Sortable and unique: `<job>-<UTC yyyymmddThhmmss>-<8 hex>`."""
    return f"{job}-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass
class Run:
    """A job run being recorded; fill ``counts`` and ``outputs`` before the block ends."""

    run_id: str
    job: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class Catalog:
    def __init__(self, db):
        self.db = db

    @classmethod
    def connect(cls, s: Settings | None = None) -> Catalog:
        from lake.clients import mongo_client

        s = s or get_settings()
        return cls(mongo_client(s)[s.mongo_db])

    def ensure_indexes(self) -> None:
        """Indexes for the look-ups, and the columns Trino shows for each collection."""
        for coll, specs in INDEXES.items():
            for keys, opts in specs:
                self.db[coll].create_index(keys, **opts)
        for coll, columns in TRINO_COLUMNS.items():
            fields = [{"name": n, "type": t, "hidden": False} for n, t in columns.items()]
            self.db["_schema"].replace_one({"table": coll}, {"table": coll, "fields": fields}, upsert=True)

    # ---- runs ------------------------------------------------------------------------------------------------------

    @contextmanager
    def run(self, job: str, inputs: dict[str, Any] | None = None) -> Iterator[Run]:
        """Record a run: `running` at the start, then `succeeded` or `failed` (with the error,
        re-raised) with counts, outputs and duration."""
        run = Run(new_run_id(job), job, dict(inputs or {}))
        started, t0 = utcnow(), time.monotonic()
        self.db.runs.insert_one(
            {"_id": run.run_id, "job": job, "status": "running", "started_at": started, "inputs": run.inputs}
        )
        status, error = "succeeded", None
        try:
            yield run
        except BaseException as e:
            status, error = "failed", f"{type(e).__name__}: {e}"[:4000]
            raise
        finally:
            self.db.runs.update_one(
                {"_id": run.run_id},
                {
                    "$set": {
                        "status": status,
                        "error": error,
                        "finished_at": utcnow(),
                        "duration_s": round(time.monotonic() - t0, 3),
                        "inputs": run.inputs,
                        "outputs": run.outputs,
                        "counts": run.counts,
                    }
                },
            )
            log.info("run recorded", run_id=run.run_id, status=status, **run.counts)

    def last_run(self, job: str, status: str | None = "succeeded", **match: Any) -> dict | None:
        """The newest run of ``job`` (with that status, and fields equal to ``match``, e.g.
        ``**{"inputs.events_table": t}``)."""
        query: dict[str, Any] = {"job": job, **match}
        if status:
            query["status"] = status
        return self.db.runs.find_one(query, sort=[("started_at", -1)])

    def runs(self, limit: int = 20) -> list[dict]:
        return list(self.db.runs.find({}, sort=[("started_at", -1)], limit=limit))

    # ---- images ----------------------------------------------------------------------------------------------------

    def upsert_images(self, docs: Iterable[dict], run_id: str, batch: int = 500, new: bool = False) -> int:
        """Write one document per image (``_id`` = image_id); ``run_id`` joins its lineage.
        Fields given replace the stored ones (dotted keys such as ``layers.silver`` touch only
        that field); lineage lists only grow. Idempotent. ``new=True`` says the images are
        probably not catalogued yet: they are inserted in bulk (several times faster than
        upserts on FerretDB), and those that were (a re-run after a crash) are upserted."""
        from pymongo import UpdateOne

        n = 0

        def updates(docs: list[dict]) -> None:
            # Small bulks: FerretDB 1.x keeps one pooled PostgreSQL connection per update of a
            # bulk until the whole command ends; a bulk larger than its pool never finishes.
            for i in range(0, len(docs), UPDATE_BATCH):
                self.db.images.bulk_write([update(d) for d in docs[i : i + UPDATE_BATCH]], ordered=False)

        def update(doc: dict) -> UpdateOne:
            doc = dict(doc)
            image_id, event_ids = doc.pop("_id"), doc.pop("event_ids", None) or []
            return UpdateOne(
                {"_id": image_id},
                {
                    "$set": {**doc, "updated_at": utcnow()},
                    "$addToSet": {"lineage.run_ids": run_id, "lineage.event_ids": {"$each": list(event_ids)}},
                },
                upsert=True,
            )

        def insert(chunk: list[dict]) -> None:
            # Look first rather than catch duplicate-key errors: FerretDB 1.x can stall on an
            # unordered insert_many that hits duplicates.
            ids = [c["_id"] for c in chunk]
            # one batch: no cursor left open on the server (FerretDB pins a connection to each)
            known = {d["_id"] for d in self.db.images.find({"_id": {"$in": ids}}, {"_id": 1}, batch_size=len(ids) + 1)}
            fresh = [_nest(d, run_id) for d in chunk if d["_id"] not in known]
            if fresh:
                self.db.images.insert_many(fresh, ordered=False)
            if known:
                updates([d for d in chunk if d["_id"] in known])

        chunk: list[dict] = []
        for doc in docs:
            chunk.append(doc)
            n += 1
            if len(chunk) >= batch:
                insert(chunk) if new else updates(chunk)
                chunk = []
        if chunk:
            insert(chunk) if new else updates(chunk)
        return n

    def image(self, image_id: str) -> dict | None:
        return self.db.images.find_one({"_id": image_id})

    # ---- captions computed outside the batch job (the API) ---------------------------------------------------------

    def stored_caption(self, image_id: str, model_version: str) -> dict | None:
        """The caption ``model_version`` already wrote for ``image_id`` (the API stores each one it computes)."""
        return self.db.captions.find_one({"_id": f"{image_id}:{model_version}"})

    def store_caption(
        self, image_id: str, model_version: str, caption: str, filtered: str | None, source: str = "api"
    ) -> None:
        """Keep a computed caption (``filtered``: the moderation reason, or None); the first one stays."""
        self.db.captions.update_one(
            {"_id": f"{image_id}:{model_version}"},
            {
                "$setOnInsert": {
                    "image_id": image_id,
                    "model_version": model_version,
                    "caption": caption,
                    "filtered": filtered,
                    "source": source,
                    "created_at": utcnow(),
                }
            },
            upsert=True,
        )

    def stored_captions(self, model_version: str) -> list[tuple[str, str]]:
        """(image_id, caption) of every caption stored for ``model_version``: the batch job reuses them."""
        return [
            (d["image_id"], d["caption"])
            for d in self.db.captions.find({"model_version": model_version}, {"image_id": 1, "caption": 1})
        ]

    # ---- datasets and quality --------------------------------------------------------------------------------------

    def record_dataset(self, name: str, table: str, snapshot_id: int, counts: dict[str, int], run_id: str) -> str:
        """A frozen data set: the table as of one Iceberg snapshot (read back with time travel)."""
        ds_id = f"{name}@{snapshot_id}"
        self.db.datasets.update_one(
            {"_id": ds_id},
            {
                "$setOnInsert": {
                    "name": name,
                    "table": table,
                    "snapshot_id": snapshot_id,
                    "counts": counts,
                    "created_at": utcnow(),
                    "run_id": run_id,
                }
            },
            upsert=True,
        )
        return ds_id

    def latest_dataset(self, name: str) -> dict | None:
        return self.db.datasets.find_one({"name": name}, sort=[("created_at", -1)])

    def record_quality(self, summary: dict) -> None:
        self.db.quality.insert_one(dict(summary))

    def quality(self, suite: str | None = None, limit: int = 10) -> list[dict]:
        return list(self.db.quality.find({"suite": suite} if suite else {}, sort=[("validated_at", -1)], limit=limit))


def _nest(doc: dict, run_id: str) -> dict:
    """A flat document with dotted keys -> the nested document a first insert stores."""
    doc = dict(doc)
    out: dict[str, Any] = {
        "lineage": {"run_ids": [run_id], "event_ids": list(doc.pop("event_ids", None) or [])},
        "updated_at": utcnow(),
    }
    for key, value in doc.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def as_datetime(value) -> datetime | None:
    """A pandas/Spark timestamp as a plain datetime (BSON stores datetimes, not Timestamps)."""
    if value is None:
        return None
    to_py = getattr(value, "to_pydatetime", None)
    return to_py() if to_py else value
