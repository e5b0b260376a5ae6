"""`make demo`: the stack end to end on the embedded defaults.

1. The stack is wired: a Spark job writes a small Iceberg table to MinIO and Trino
   reads the same rows back; a pymongo document is read through Trino's `catalog`.
2. Ingestion: a Shapes data set without stars (docs/shapes.md) is generated, half uploaded
   through the HTTP API and half sent as inline events by a plain Kafka producer, then
   the bronze stream lands it: one bronze object and one event row per upload.
3. Layers: Spark carries bronze through silver (normalized JPEGs, quality gate,
   catalog documents) and gold (training examples, daily aggregates, Trino views); the
   demo checks every demo image reached silver, the catalog and gold.
4. The model: a Shapes training set WITHOUT stars (docs/shapes.md's held-back concept) is
   bulk-ingested beside the demo images and carried with them; the compact captioner trains
   on the frozen gold data set (14 minutes on 2 cores), is registered, evaluated on the test
   split (per slice, into lake.gold.model_evaluations and an HTML report), and becomes the
   production model when there is none yet or it scores better than the current one.
5. The learning loop (`lake.apps.demo_loop`): star images with human captions arrive through the
   API; a gate drill (a candidate trained on shuffled captions) is rejected; the retrain
   trains v2 from v1 on the stars plus replay, the promotion gate promotes it, the running
   API swaps to it within seconds and now names the stars; `gate.png` compares v1 and v2.
6. The production model captions every silver image in Spark (lake.gold.captions).
7. Airflow runs each DAG once (`airflow dags test`, recorded like any run: lake_stack_smoke,
   lake_ingest, lake_caption, lake_retrain, lake_index; with nothing new their work tasks are
   skipped, the index is built), and the demo checks through the Airflow REST API that the
   last run of every DAG succeeded. The pipeline DAGs are paused while the demo runs and live
   at its end (`LAKE_DAGS_LIVE`): from then on the scheduler runs them by itself.

    lake up && lake demo                       # ~40 minutes, most of it training
    lake demo --star-images 0                  # without the learning loop (~28 minutes)
    lake demo --train-images 0 --no-airflow    # without the model stages and the DAG runs (~2 minutes)
    lake --verbose demo                        # with every library's log (Spark, Iceberg, GX) on the console

Each step prints its result; the libraries' logs go to .lake/logs/ (lake-cli.log, lake-spark.log,
dags/). A step that fails ends the demo with one line naming it and the cause, after the lines
those logs gained meanwhile (`--verbose`: the whole trace instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

from rich.markup import escape
from rich.table import Table

from lake.apps.reports import console, dags_table
from lake.apps.serving import upload_by_api
from lake.clients import mongo_client, trino_query
from lake.config import get_settings
from lake.logging import LIBRARY_LOG, SPARK_LOG, cause_of, is_verbose, log_path, sizes, written_since


def ingest_shapes(n: int) -> dict[str, int]:
    """Generate ``n`` Shapes images (no stars), upload them by API and Kafka, land them."""
    import base64
    import hashlib

    from lake.bus import get_producer
    from lake.datasets.coco import load_sidecar
    from lake.datasets.shapes import write_dataset
    from lake.events import ImageUploaded
    from spark_jobs.bronze import ingest_uploads

    s = get_settings()
    out = write_dataset(s.state_dir / "demo" / "shapes", n, seed=0, star="none", overwrite=True)
    captions = load_sidecar(out / "captions.json")
    files = sorted(out.glob("shape_*"))
    by_api, by_kafka = files[: n // 2], files[n // 2 :]
    upload_by_api(by_api, captions, "demo-api")
    producer = get_producer(s)
    for path in by_kafka:  # what a mobile app does: the bytes inline in the event
        data = path.read_bytes()
        ev = ImageUploaded(
            image_id=hashlib.sha256(data).hexdigest(),
            source="demo-mobile",
            content_type="image/png" if path.suffix == ".png" else "image/jpeg",
            size_bytes=len(data),
            captions=captions[path.name],
            image_b64=base64.b64encode(data).decode(),
        )
        key_, value = ev.to_kafka()
        producer.send(s.topic_uploads, key=key_, value=value)
    producer.flush()
    ingest_uploads.main()  # availableNow: drain the topic into bronze, then stop
    ids = sorted({hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    marks = ", ".join("?" * len(ids))
    ((images,),) = trino_query(  # only this run's images, so a re-run cannot pass on old rows
        f"SELECT count(DISTINCT image_id) FROM {get_settings().tables.events} WHERE image_id IN ({marks})", ids
    )
    ((events,),) = trino_query(f"SELECT count(*) FROM {get_settings().tables.events} WHERE image_id IN ({marks})", ids)
    return {"generated": n, "unique": len(ids), "events": events, "images": images, "ids": ids}


def ingest_training_set(n: int) -> dict[str, int]:
    """``n`` Shapes images WITHOUT stars (seed 1), bulk-ingested with their captions (claim-check events):
    stars are docs/shapes.md's held-back concept, brought in later by the learning loop (`lake.apps.demo_loop`)."""
    from lake.datasets.coco import load_sidecar
    from lake.datasets.shapes import write_dataset
    from lake.ingest import ingest_paths
    from spark_jobs.bronze import ingest_uploads

    s = get_settings()
    folder = s.state_dir / "demo" / "shapes-train-nostar"
    marker = folder / f".complete-{n}"
    if not marker.is_file():  # generating is deterministic: a re-run reuses the folder
        write_dataset(folder, n, seed=1, star="none", overwrite=True)
        marker.touch()
    report = ingest_paths([folder], load_sidecar(folder / "captions.json"), source="demo-bulk")
    ingest_uploads.main()
    return {"images": n, "uploaded": report.uploaded, "skipped": report.skipped}


def train_first(minutes: float) -> dict:
    """Train on the latest data set, evaluate, make it production if there is none or it scores better."""
    from lake.registry import ModelNotFound, Registry
    from lake.training import evaluate_version, train_from_lake
    from models.captioner.train import TrainConfig, progress_bar

    console.print(f"Training the compact captioner for {minutes:g} minutes on the latest gold data set...")
    with progress_bar(console) as report:
        doc = train_from_lake(config=TrainConfig(minutes=minutes), progress=report)
    with console.status(f"Evaluating {doc['_id']} on the test split..."):
        scores = evaluate_version(doc["_id"])
    reg = Registry.connect()
    cider = scores["overall"]["CIDEr"]
    try:  # `lake model retrain` gates per slice; the demo keeps the better model on the same test split
        current = reg.get("production")
        with console.status(f"Evaluating {current['_id']} on the same test split..."):
            best = evaluate_version(current["_id"], dataset=doc["dataset"]["id"], meteor=False)["overall"]["CIDEr"]
        production = current["_id"]
        if cider > best:
            production = reg.set_stage(
                doc["_id"], "production", by="lake demo", reason=f"CIDEr {cider:.3f} > {best:.3f} of {current['_id']}"
            )["_id"]
    except ModelNotFound:
        production = reg.set_stage(doc["_id"], "production", by="lake demo", reason="first model")["_id"]
    return {"model": doc, "scores": scores, "production": production}


def caption_silver() -> dict:
    """The production model captions every silver image in Spark (lake.gold.captions)."""
    from lake.registry import Registry
    from spark_jobs.gold import caption_images

    reg = Registry.connect()
    production = reg.get("production")["_id"]
    with console.status(f"Spark: captioning silver images with {production}..."):
        return {"production": production, **caption_images.main(str(reg.fetch(production)), production)}


DEMO_DAGS = ("lake_stack_smoke", "lake_ingest", "lake_caption", "lake_retrain", "lake_index")


def run_dags() -> list[dict]:
    """Each DAG once through Airflow; what the REST API then says of every DAG's last run (all must succeed)."""
    from lake.apps.orchestration import run_dag, status

    for dag_id in DEMO_DAGS:
        with console.status(f"Airflow: running {dag_id} (`lake dags run {dag_id}`)..."):
            done = run_dag(dag_id)
        console.print(
            f"Airflow {dag_id}: {done.state} in {done.seconds:.0f} s "
            f"({', '.join(f'{t} {st}' for t, st in done.tasks.items())})"
        )
        if not done.ok:
            raise SystemExit(f"the Airflow DAG {dag_id} ended {done.state}: see {done.log} or the Airflow UI")
    rows = status()
    failed = [r["dag_id"] for r in rows if r["state"] != "success"]
    if failed:
        raise SystemExit(f"the Airflow REST API shows a last run that did not succeed for {', '.join(failed)}")
    return rows


def carry_through_layers(ids: list[str]) -> dict[str, int]:
    """bronze -> silver -> gold, then count the demo images in each place."""
    from lake.apps.layers import carry
    from lake.catalog import Catalog

    carry()
    marks = ", ".join("?" * len(ids))
    ((silver,),) = trino_query(f"SELECT count(*) FROM {get_settings().tables.silver} WHERE image_id IN ({marks})", ids)
    ((gold,),) = trino_query(
        f"SELECT count(DISTINCT image_id) FROM {get_settings().tables.image_captions} "
        f"WHERE caption IS NOT NULL AND image_id IN ({marks})",
        ids,
    )
    catalogued = Catalog.connect().db.images.count_documents({"_id": {"$in": ids}, "layers.silver": {"$exists": True}})
    return {"silver": silver, "gold": gold, "catalog": catalogued}


@contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    """One step of the demo: its time into ``timings[name]``; an error ends the demo with
    ``error: demo step <name> failed: <cause>`` after the last lines the logs gained during the step
    (the whole trace into lake-cli.log). A SystemExit (a check that failed) passes as it is.

        with step("spark write", timings):
            hello_lake.main(rows)
    """
    marks = sizes([log_path(LIBRARY_LOG), log_path(SPARK_LOG)])
    t = time.monotonic()
    try:
        yield
    except Exception as e:
        if is_verbose():
            raise
        for path, lines in written_since(marks).items():  # what the libraries said meanwhile
            console.print(f"[dim]{path} ends:[/dim]")
            console.print(escape("\n".join(f"  {line}" for line in lines)), highlight=False, soft_wrap=True)
        logging.getLogger("lake.demo").error("demo step %s failed", name, exc_info=True)
        raise SystemExit(
            f"error: demo step {name} failed: {cause_of(e)}\n"
            f"  the trace is in {log_path(LIBRARY_LOG)}; `lake --verbose demo` shows everything"
        ) from None
    timings[name] = time.monotonic() - t
    console.print(f"[green]done[/green] {name} ({timings[name]:.1f} s)")


def run(
    rows: int = 1000,
    images: int = 200,
    train_images: int = 30000,
    train_minutes: float = 14.0,
    star_images: int = 3000,
    retrain_minutes: float = 5.0,
    airflow: bool = True,
) -> dict[str, float]:
    """Every step (see the module); with ``airflow``, the pipeline DAGs stay paused meanwhile (the scheduler
    would race the demo's own runs) and are live at the end (`LAKE_DAGS_LIVE`)."""
    from lake.apps.orchestration import PIPELINE, AirflowError, hold_pipeline

    s = get_settings()
    steps = partial(_steps, rows, images, train_images, train_minutes, star_images, retrain_minutes, airflow)
    if not (images and airflow):
        return steps()
    try:
        with hold_pipeline(s, say=console.print):
            timings = steps()
    except AirflowError as e:
        raise SystemExit(f"error: {e}") from None
    if s.dags_live:
        console.print(
            f"[green]live[/green]: the scheduler runs {', '.join(PIPELINE)} by themselves from now on (lake_ingest "
            f"every {s.ingest_interval:g} min, the rest when their inputs change): watch them at "
            f"{s.airflow_url}/dags or with `lake dags status`; `lake dags pause` stops them."
        )
    return timings


def _steps(
    rows: int, images: int, train_images: int, train_minutes: float, star_images: int, retrain_minutes: float, airflow
) -> dict[str, float]:
    from spark_jobs.demo import hello_lake

    s = get_settings()
    timings: dict[str, float] = {}

    with step("spark write", timings), console.status(f"Spark: writing {s.tables.hello} (Iceberg on MinIO)..."):
        written = hello_lake.main(rows)

    with step("trino read", timings):
        ((count, total),) = trino_query(f"SELECT count(*), sum(square) FROM {s.tables.hello}")
        expected = sum(i * i for i in range(rows))
        if (count, total) != (written, expected):
            raise SystemExit(f"Trino read {count} rows (sum {total}); Spark wrote {written} (sum {expected})")
        by_shape = trino_query(f"SELECT shape, count(*) FROM {s.tables.hello} GROUP BY shape ORDER BY shape")

    with step("mongo via trino", timings):
        doc = {"_id": "demo", "written_at": datetime.now(UTC).isoformat(), "rows": written}
        with mongo_client(s) as c:
            c[s.mongo_db].demo.replace_one({"_id": "demo"}, doc, upsert=True)
        got = trino_query(f'SELECT _id, written_at, "rows" FROM {s.tables.catalog}.demo WHERE _id = ?', ["demo"])
        if got != [[doc["_id"], doc["written_at"], written]]:
            raise SystemExit(f"Trino saw {got} in catalog.{s.mongo_db}.demo; pymongo wrote {doc}")

    landed: dict = {}
    if images:  # 0: only the stack check (what the Airflow smoke DAG runs)
        with (
            step("ingest", timings),
            console.status(f"Ingest: {images} Shapes images through the API and Kafka, streamed into bronze..."),
        ):
            landed = ingest_shapes(images)
        if landed["images"] < landed["unique"]:
            raise SystemExit(f"bronze holds {landed['images']} of the {landed['unique']} demo images")
        if train_images:
            with (
                step("training set", timings),
                console.status(f"Ingest: a {train_images}-image Shapes training set (bulk, claim-check events)..."),
            ):
                training_set = ingest_training_set(train_images)
            console.print(f"training set: {training_set}")

        with (
            step("silver+gold", timings),
            console.status("Spark: bronze -> silver -> gold (quality gates, catalog, Trino views)..."),
        ):
            layers = carry_through_layers(landed["ids"])
        if min(layers.values()) < landed["unique"]:
            raise SystemExit(
                f"of {landed['unique']} demo images, silver has {layers['silver']}, gold "
                f"{layers['gold']}, the catalog {layers['catalog']}: see `lake layers status`"
            )

    model: dict = {}
    loop: dict = {}
    if images and train_images:
        with step("model", timings):
            model = train_first(train_minutes)
        overall = model["scores"]["overall"]
        if overall["CIDEr"] < 6.0:
            console.print(
                f"[yellow]warning[/yellow]: CIDEr {overall['CIDEr']:.2f} is under 6.0: was the CPU "
                "shared while training? (`lake model train --steps 8500 --minutes 0` trains to a fixed "
                "point whatever the load)"
            )
        if star_images:
            from lake.apps import demo_loop

            with step("learning loop", timings):
                # the drill only has to be rejected: it never trains longer than the retrain
                loop = demo_loop.run(star_images, retrain_minutes, drill_minutes=min(1.5, retrain_minutes))
        with step("caption silver", timings):
            model["captioned"] = caption_silver()
    dags: list[dict] = []
    if images and airflow:
        with step("airflow", timings):
            dags = run_dags()

    table = Table(title=f"{get_settings().tables.hello}, read back through Trino")
    table.add_column("shape")
    table.add_column("rows", justify="right")
    for shape, n in by_shape:
        table.add_row(shape, str(n))
    console.print(table)
    console.print(
        f"[green]ok[/green]: Spark wrote {written} rows, Trino read {count} (sum {total}); "
        f"pymongo document read through Trino catalog `catalog`."
    )
    if landed:
        console.print(
            f"[green]ok[/green]: {images} Shapes images (no stars) landed in bronze; "
            f"{landed['events']} upload events so far (re-runs add sightings, not copies)."
        )
        console.print(
            f"[green]ok[/green]: all {landed['unique']} in silver, the MongoDB catalog and "
            f"{get_settings().tables.image_captions}; `lake layers status` and `lake quality report` show the rest."
        )
    if model:
        from models.captioner.evaluate import print_report

        print_report(model["scores"], console)
        console.print(
            f"[green]ok[/green]: {model['model']['_id']} trained on {model['model']['dataset']['id']} "
            f"({model['model']['train']['steps']} steps), CIDEr {model['scores']['overall']['CIDEr']:.2f}; "
            f"report {model['scores']['local_report']}/index.html; "
            f"{model['captioned']['captioned']} silver images captioned into {get_settings().tables.captions} by "
            f"{model['captioned']['production']}."
        )
    if loop:
        demo_loop.print_summary(loop, console)
    if dags:
        console.print(dags_table(dags))
        console.print(
            "[green]ok[/green]: the Airflow REST API shows the last run of every DAG succeeded "
            f"({s.airflow_url}, `lake dags status`)."
        )
    console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return timings
