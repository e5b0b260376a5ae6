"""Training and evaluation on the lake: examples from a frozen gold data set, images from
silver, models into the registry, scores into gold and the catalog.

A data set is ``training_examples@<snapshot>`` (recorded by the gold job whenever the table
changes); its rows are read back through Trino time travel (``FOR VERSION AS OF``), so a
model always trains on exactly the rows it names, whatever arrived later.

    lake model train --minutes 14           # the latest data set -> a candidate in the registry
    lake model eval compact-v1              # its test split -> lake.gold.model_evaluations + report

    from lake.training import train_from_lake, evaluate_version
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from lake.catalog import Catalog
from lake.config import get_settings
from lake.events import utcnow
from lake.registry import check_name
from lake.tables import EVALUATIONS_DDL, EXAMPLE_SELECT, SILVER_BUCKET, TrainingExample, s3_uri

log = structlog.get_logger("lake.training")

TRAIN_JOB = "model.train"
EVAL_JOB = "model.evaluate"
DATASET = "training_examples"
_TABLE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")


class DatasetError(LookupError):
    """No usable data set; the message says what to run."""


def evaluations_table(dataset: dict) -> str:
    """``model_evaluations`` beside the data set's table (``lake.gold.model_evaluations``)."""
    return dataset["table"].rsplit(".", 1)[0] + ".model_evaluations"


def resolve_dataset(catalog: Catalog, spec: str | None = None) -> dict:
    """The catalog document of data set ``spec`` (``training_examples@<snapshot>``), or the latest."""
    doc = catalog.db.datasets.find_one({"_id": spec}) if spec else catalog.latest_dataset(DATASET)
    if doc is not None and doc.get("name") != DATASET:
        raise DatasetError(f"{spec!r} is not a {DATASET} data set")
    if doc is None:
        raise DatasetError(
            f"no data set {spec!r} in the catalog"
            if spec
            else "no training_examples data set yet: ingest captioned images and run `lake layers run`"
        )
    if not _TABLE.match(doc["table"]):
        raise DatasetError(f"data set {doc['_id']} names an odd table {doc['table']!r}")
    return doc


def as_of(dataset: dict) -> str:
    """The data set's table as of its snapshot, for a FROM clause (Iceberg time travel through Trino)."""
    return f"{dataset['table']} FOR VERSION AS OF {int(dataset['snapshot_id'])}"


def for_target(rows: Iterable[TrainingExample], target: str) -> list[TrainingExample]:
    """``first``: each image's first human caption only (one template per image); ``all``: every caption."""
    return [e for e in rows if target == "all" or e.caption_index == 0]


def read_examples(dataset: dict, splits: Iterable[str]) -> list[TrainingExample]:
    """The rows of the frozen data set in ``splits``, read by Iceberg time travel (stable order)."""
    from lake.clients import trino_query

    splits = list(splits)
    marks = ", ".join("?" * len(splits))
    rows = trino_query(
        f"SELECT {EXAMPLE_SELECT} FROM {as_of(dataset)} WHERE split IN ({marks}) ORDER BY image_id, caption_index",
        splits,
    )
    return [TrainingExample.from_row(r) for r in rows]


def fetch_silver(keys: Sequence[str], threads: int = 16) -> dict[str, bytes]:
    """The silver JPEGs by key, fetched concurrently; a missing one is an error (the data set is broken)."""
    from lake.clients import minio_client
    from lake.storage import read_object

    mc = minio_client()
    unique = sorted(set(keys))
    with ThreadPoolExecutor(threads) as pool:
        got = dict(zip(unique, pool.map(lambda k: read_object(mc, SILVER_BUCKET, k), unique)))
    missing = [k for k, v in got.items() if v is None]
    if missing:
        raise FileNotFoundError(f"{len(missing)} silver objects are missing, e.g. {s3_uri(SILVER_BUCKET, missing[0])}")
    return got  # type: ignore[return-value]


def train_from_lake(
    *,
    dataset: str | None = None,
    name: str = "compact",
    config=None,
    target: str = "first",
    init_from: str | None = None,
    progress: Callable | None = None,
    catalog: Catalog | None = None,
    registry=None,
    examples: Sequence[TrainingExample] | None = None,
    run_inputs: dict | None = None,
) -> dict:
    """Train on the train split of a data set and register the result as a candidate; its registry document.

    ``target``: ``first`` trains on each image's first human caption (one template per image, the
    Shapes recipe), ``all`` on every caption. ``init_from``: a registered version to start from.
    ``examples``: train on exactly these rows instead (``target`` is not applied; the version still names
    ``dataset``, which they must come from); ``run_inputs``: more fields for the run's inputs."""
    from lake.registry import Registry
    from models.captioner.train import TrainConfig, train

    check_name(name)  # everything a 14-minute run would fail on afterwards is checked first
    if target not in ("first", "all"):
        raise ValueError(f"target must be first or all, not {target!r}")
    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    ds = resolve_dataset(cat, dataset)
    config = config or TrainConfig()
    parent = reg.get(init_from)["_id"] if init_from else None
    inputs = {
        "dataset": ds["_id"],
        "table": ds["table"],
        "snapshot_id": ds["snapshot_id"],
        "target": target,
        "init_from": parent,
        **(run_inputs or {}),
    }
    with cat.run(TRAIN_JOB, inputs) as rec:
        rows = list(examples) if examples is not None else for_target(read_examples(ds, ["train"]), target)
        if not rows:
            raise DatasetError(f"data set {ds['_id']} has no training examples")
        images = fetch_silver([e.silver_key for e in rows])
        start = reg.fetch(parent) if parent else None
        out = get_settings().state_dir / "training" / rec.run_id
        result = train([(images[e.silver_key], e.caption) for e in rows], config, out, progress, init_from=start)
        summary = {k: v for k, v in asdict(result).items() if k != "out_dir"}
        try:
            doc = reg.register(
                name,
                out,
                run_id=rec.run_id,
                parent=parent,
                dataset={
                    "id": ds["_id"],
                    "table": ds["table"],
                    "snapshot_id": ds["snapshot_id"],
                    "counts": ds.get("counts", {}),
                },
                train=summary,
            )
        except BaseException:
            log.error("registering the trained model failed; it is kept for a retry", folder=str(out))
            raise
        shutil.rmtree(out, ignore_errors=True)
        rec.outputs = {"model": doc["_id"], "uri": doc["uri"]}
        rec.counts = {"examples": len(rows), "images": len(images), "steps": result.steps}
    return doc


def references_by_image(rows: Sequence[TrainingExample]) -> tuple[list[str], list[str], list[list[str]]]:
    """(image ids, silver keys, references) with each image's captions in caption order."""
    refs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    keys: dict[str, str] = {}
    for e in rows:
        refs[e.image_id].append((e.caption_index, e.caption))
        keys[e.image_id] = e.silver_key
    ids = sorted(refs)
    return ids, [keys[i] for i in ids], [[c for _, c in sorted(refs[i])] for i in ids]


def score(predictions: Sequence[str], references: Sequence[Sequence[str]], meteor: bool = True) -> dict:
    """Metrics overall and per slice; slices and attribute accuracy come from the first reference
    when it follows the Shapes template (else the image is in slice ``other``)."""
    from models.captioner.data import slices_for
    from models.captioner.evaluate import evaluate, parse_shapes_caption, shapes_accuracy

    objects = [parse_shapes_caption(r[0]) for r in references]
    report = evaluate(predictions, references, [slices_for(o) for o in objects], meteor=meteor)
    known = [i for i, o in enumerate(objects) if o]
    if known:
        report["accuracy"] = shapes_accuracy([predictions[i] for i in known], [objects[i] for i in known])
        report["accuracy_n"] = len(known)  # images whose first reference follows the Shapes template
    return report


def evaluation_rows(report: dict, *, model: dict, dataset: dict, split: str, run_id: str) -> list[list[Any]]:
    """The report as ``model_evaluations`` rows (overall, every slice, attribute accuracy)."""
    base = [model["name"], model["_id"], dataset["_id"], int(dataset["snapshot_id"]), split]
    out = []
    for slice_name, values in [("overall", {"n": report["n"], **report["overall"]}), *report["slices"].items()]:
        out += [[*base, slice_name, m, float(v), int(values["n"]), run_id] for m, v in values.items() if m != "n"]
    for attr, v in report.get("accuracy", {}).items():
        out.append([*base, "overall", f"accuracy.{attr}", float(v), int(report.get("accuracy_n", report["n"])), run_id])
    return out


def ensure_evaluations_table(table: str | None = None) -> None:
    """Create ``model_evaluations`` (the lake's, by default) through Trino, which writes it."""
    from lake.clients import trino_query

    trino_query(EVALUATIONS_DDL.format(table=table or get_settings().tables.model_evaluations))


def write_evaluations(table: str, rows: list[list[Any]], evaluated_at: str) -> int:
    """Replace the rows of the same (model version, data set, split): a re-evaluation does not add a copy."""
    from lake.clients import trino_query

    ensure_evaluations_table(table)
    for version, dataset, split in sorted({(r[1], r[2], r[4]) for r in rows}):
        trino_query(
            f"DELETE FROM {table} WHERE model_version = ? AND dataset = ? AND split = ?", [version, dataset, split]
        )
    for start in range(0, len(rows), 100):
        chunk = rows[start : start + 100]
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, from_iso8601_timestamp(?), ?)" for _ in chunk)
        trino_query(f"INSERT INTO {table} VALUES {values}", [x for r in chunk for x in (*r[:-1], evaluated_at, r[-1])])
    return len(rows)


def report_folder(version: str) -> Path:
    """Where `evaluate_version` writes a version's evaluation report by default (``.lake/reports/<version>``)."""
    return get_settings().state_dir / "reports" / version


def evaluate_version(
    spec: str,
    *,
    dataset: str | None = None,
    split: str = "test",
    limit: int = 0,
    meteor: bool = True,
    batch_size: int = 64,
    catalog: Catalog | None = None,
    registry=None,
    report_dir: Path | None = None,
) -> dict:
    """Caption ``split`` of the version's own data set (or ``dataset``) and score it: rows into
    ``model_evaluations``, a summary into the catalog, an HTML/PNG report locally and in MinIO."""
    import io

    from PIL import Image

    from lake.model_report import write_report
    from lake.registry import Registry
    from models.captioner import load

    cat = catalog or Catalog.connect()
    reg = registry or Registry.connect(db=cat.db)
    model = reg.get(spec)
    ds = resolve_dataset(cat, dataset or model["dataset"]["id"])
    with cat.run(EVAL_JOB, {"model": model["_id"], "dataset": ds["_id"], "split": split}) as rec:
        ids, keys, refs = references_by_image(read_examples(ds, [split]))
        ids, keys, refs = ids[: limit or None], keys[: limit or None], refs[: limit or None]
        if not ids:
            raise DatasetError(f"data set {ds['_id']} has no {split} images")
        data = fetch_silver(keys)
        images = [Image.open(io.BytesIO(data[k])).convert("RGB") for k in keys]
        model_dir = reg.fetch(model["_id"])
        captioner = load(model_dir)
        predictions = captioner.caption(images, batch_size=batch_size)
        report = score(predictions, refs, meteor=meteor)
        report["per_image"] = dict(zip(ids, report["per_image"]))  # by image id: the gate pairs two models by it
        evaluated_at = utcnow()
        table = evaluations_table(ds)
        rows = evaluation_rows(report, model=model, dataset=ds, split=split, run_id=rec.run_id)
        folder = report_dir or report_folder(model["_id"])
        write_report(report, model, ds, list(zip(ids, images, predictions, refs)), folder, model_dir)
        summary = {
            "dataset": ds["_id"],
            "split": split,
            "n": report["n"],
            "limit": limit,
            "overall": report["overall"],
            "slices": report["slices"],
            "accuracy": report.get("accuracy", {}),
            "run_id": rec.run_id,
            "evaluated_at": evaluated_at,
            "report": reg.put_report(model["_id"], folder),
            "table": table,
        }
        if not limit:  # a sample is not the version's score; the rows and the report still are written
            write_evaluations(table, rows, evaluated_at.isoformat())
            if ds["_id"] == model["dataset"]["id"] and split == "test":
                reg.record(model["_id"], "evaluation", summary)  # the version's own score, what `model list` shows
        per_image = {"per_image": report["per_image"]}  # in the catalog's evaluation, not the registry's summary
        cat.db.evaluations.insert_one({"_id": rec.run_id, "model": model["_id"], **summary, **per_image})
        rec.outputs = {"table": table, "report": summary["report"], "local_report": str(folder / "index.html")}
        rec.counts = {"images": len(ids), "rows": len(rows)}
    report.update(model=model["_id"], dataset=ds["_id"], report=summary["report"], local_report=str(folder))
    return report
