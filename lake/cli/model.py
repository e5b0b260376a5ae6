"""Model commands: train and evaluate on the lake, the registry, and captioning a folder.

    lake model train --minutes 14            # latest training_examples data set -> compact-vN (candidate)
    lake model eval compact-v1               # test split -> lake.gold.model_evaluations + HTML report
    lake model list && lake model show production
    lake model promote compact-v1 --reason "first model"
    lake model retrain --min-new 100 --replay 1.0 --minutes 5   # new gold rows -> candidate -> gate -> promote?
    lake model rollback --reason "..."       # the previous production version is production again
    lake model caption-silver production     # Spark: silver images without its caption -> lake.gold.captions
    lake caption ./photos --out captions.json          # the production model (or --model)

Training straight from a Shapes folder, without the lake: `python -m models.captioner.train --help`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lake.apps.reports import gate_summary, gate_table, outcome
from lake.config import get_settings
from lake.tables import MODELS_BUCKET, s3_uri

console = Console()
model_app = typer.Typer(
    help=f"Train, evaluate and manage captioning models (registry: {s3_uri(MODELS_BUCKET)} + catalog).",
    no_args_is_help=True,
)


def caption_folder(
    folder: Path, captioner, batch_size: int = 32, progress: bool = True
) -> tuple[dict[str, str], dict[str, str]]:
    """({relative file name: caption}, {relative file name: why it was skipped}) for every image under ``folder``."""
    from PIL import Image
    from rich.progress import Progress

    from lake.ingest import discover

    files = discover([folder])
    captions: dict[str, str] = {}
    failed: dict[str, str] = {}
    with Progress(disable=not progress, console=console) as bar:
        task = bar.add_task("caption", total=len(files))
        for start in range(0, len(files), batch_size):
            names, images = [], []
            for path in files[start : start + batch_size]:
                name = str(path.relative_to(folder))
                try:
                    with Image.open(path) as im:
                        im.draft("RGB", (512, 512))  # large JPEGs decode at a fraction of their size
                        images.append(im.convert("RGB"))
                    names.append(name)
                except (OSError, ValueError, Image.DecompressionBombError) as e:
                    failed[name] = f"{type(e).__name__}: {e}"[:300]
            if images:
                captions.update(zip(names, captioner.caption(images, batch_size=batch_size)))
            bar.advance(task, len(files[start : start + batch_size]))
    return captions, failed


def model_path(spec: str) -> str:
    """A registry version (``compact-v2``, ``v2``, ``production``) fetched locally, or ``spec`` itself
    (a saved model directory or a hub id)."""
    from lake.registry import ModelNotFound, model_source

    try:
        return model_source(spec)
    except ModelNotFound:
        raise
    except Exception as e:  # Mongo or MinIO down: say what to do instead of a traceback
        raise ModelNotFound(
            f"the model registry is not reachable ({type(e).__name__}): start the stack with "
            f"`lake up`, or pass --model DIR"
        ) from e


def _fail(e: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {e}")
    return typer.Exit(2)


@model_app.command()
def train(
    dataset: Annotated[str | None, typer.Option(help="training_examples@<snapshot> (default: the latest).")] = None,
    name: Annotated[str, typer.Option(help="Model name in the registry.")] = "compact",
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for the steps.")] = 14.0,
    steps: Annotated[int, typer.Option(help="Step budget (0: none); whichever ends first.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr: Annotated[float, typer.Option()] = 5e-4,
    target: Annotated[str, typer.Option(help="first: each image's first caption; all: every caption.")] = "first",
    init_from: Annotated[str | None, typer.Option(help="Start from this registered version (e.g. production).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Evaluate the new version after.")] = True,
) -> None:
    """Train a captioner on a frozen gold data set and register it as a candidate."""
    from lake.training import DatasetError, train_from_lake
    from models.captioner.train import TrainConfig, progress_bar

    config = TrainConfig(minutes=minutes or None, steps=steps or None, batch_size=batch_size, lr=lr, seed=seed)
    try:
        with progress_bar(console) as report:
            doc = train_from_lake(
                dataset=dataset, name=name, config=config, target=target, init_from=init_from, progress=report
            )
    except (DatasetError, LookupError, ValueError) as e:
        raise _fail(e) from e
    t = doc["train"]
    console.print(
        f"[green]registered[/green] {doc['_id']} ({doc['uri']}) from {doc['dataset']['id']}: "
        f"{t['steps']} steps, {t['images_per_s']:.0f} examples/s, loss {t['final_loss']:.3f}"
    )
    if evaluate:
        _eval(doc["_id"], None, 0, True)


def _eval(spec: str, dataset: str | None, limit: int, meteor: bool, as_json: bool = False) -> None:
    from lake.training import DatasetError, evaluate_version
    from models.captioner.evaluate import print_report

    try:
        with console.status(f"evaluating {spec}..."):
            report = evaluate_version(spec, dataset=dataset, limit=limit, meteor=meteor)
    except (DatasetError, LookupError) as e:
        raise _fail(e) from e
    if as_json:
        print(json.dumps(report, indent=1, default=str))
        return
    print_report(report, console)
    console.print(f"rows -> model_evaluations; report {report['local_report']}/index.html ({report['report']})")


@model_app.command("eval")
def eval_(
    version: Annotated[str, typer.Argument(help="compact-vN, vN or production.")] = "production",
    dataset: Annotated[str | None, typer.Option(help="Another data set (default: the one it was trained on).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many test images (0: all).")] = 0,
    meteor: Annotated[bool, typer.Option(help="Also METEOR (java).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Caption a data set's test split with a version; BLEU/METEOR/ROUGE-L/CIDEr overall and per slice."""
    _eval(version, dataset, limit, meteor, as_json)


@model_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered version: stage, data set, CIDEr."""
    from lake.registry import Registry

    docs = Registry.connect().versions()
    if as_json:
        print(json.dumps(docs, indent=1, default=str))
        return
    table = Table(title="models")
    for col in ("version", "stage", "dataset", "created", "steps", "CIDEr", "code"):
        table.add_column(col)
    for d in docs:
        ev = d.get("evaluation") or {}
        table.add_row(
            d["_id"],
            d["stage"],
            d["dataset"]["id"],
            f"{d['created_at']:%Y-%m-%d %H:%M}",
            str(d["train"].get("steps", "")),
            f"{ev['overall']['CIDEr']:.3f}" if ev else "-",
            d.get("code_version", ""),
        )
    console.print(table)


@model_app.command()
def show(version: Annotated[str, typer.Argument(help="compact-vN, vN or production.")] = "production") -> None:
    """One version's registry document (JSON)."""
    from lake.registry import ModelNotFound, Registry

    try:
        print(json.dumps(Registry.connect().get(version), indent=1, default=str))
    except ModelNotFound as e:
        raise _fail(e) from e


@model_app.command("caption-silver")
def caption_silver(
    version: Annotated[str, typer.Argument(help="compact-vN, vN or production.")] = "production",
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Images per generate() call.")] = 32,
    limit: Annotated[
        int, typer.Option(min=0, help="At most this many images, newest first (0: all): a sample to try a version on.")
    ] = 0,
) -> None:
    """Spark: caption every silver image that has no caption from VERSION yet (-> lake.gold.captions)."""
    from lake.registry import ModelNotFound, Registry
    from spark_jobs.gold import caption_images

    try:
        doc = Registry.connect().get(version)
    except ModelNotFound as e:
        if version == "production":  # a fresh lake: nothing to do yet; exit 99 = skipped in Airflow
            console.print(f"no production model yet, nothing captioned: {e}")
            raise typer.Exit(99) from e
        raise _fail(e) from e
    counts = caption_images.main(doc["_id"], doc["_id"], batch_size, limit or None)  # executors fetch the version
    console.print(f"{counts['captioned']} silver images captioned by {doc['_id']} -> {get_settings().tables.captions}")


@model_app.command()
def promote(
    version: Annotated[str, typer.Argument(help="compact-vN or vN.")],
    reason: Annotated[str, typer.Option(help="Recorded with the stage change.")] = "promoted by hand",
) -> None:
    """Make a version the production model (the previous one is archived; the running API swaps to it)."""
    from lake.retrain import promote as run_promote

    try:
        doc = run_promote(version, reason=reason)
    except LookupError as e:
        raise _fail(e) from e
    console.print(f"[green]{doc['_id']}[/green] is production")


@contextmanager
def training_bar():
    """A progress callback for training whose bar opens with the first step (none when nothing trains)."""
    from models.captioner.train import progress_bar

    with ExitStack() as stack:
        bars: list = []

        def report(p) -> None:
            if not bars:
                bars.append(stack.enter_context(progress_bar(console)))
            bars[0](p)

        yield report


STEPS = ("all", "check", "train", "evaluate", "gate", "promote", "reject")


@model_app.command()
def retrain(
    name: Annotated[str, typer.Option(help="Model name in the registry.")] = "compact",
    min_new: Annotated[int, typer.Option(help="Do nothing below this many new train examples.")] = 100,
    replay: Annotated[float, typer.Option(min=0, help="Older examples replayed, times the new count.")] = 1.0,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for the steps.")] = 5.0,
    steps: Annotated[int, typer.Option(help="Step budget (0: none); whichever ends first.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr: Annotated[float, typer.Option()] = 2e-4,
    tolerance: Annotated[float, typer.Option(min=0, help="Largest relative CIDEr drop allowed on any slice.")] = 0.05,
    focus_slice: Annotated[
        list[str] | None,
        typer.Option(
            help="A slice that must improve (repeatable; default: those over-represented among the new examples)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    drill: Annotated[
        bool,
        typer.Option(
            help="Gate drill: train on the same examples with shuffled captions; the gate must reject it "
            "(never promoted; exit 1 if the gate would have passed it)."
        ),
    ] = False,
    idle_exit_code: Annotated[
        int,
        typer.Option(
            help="Exit code when there is nothing to do (Airflow's lake_retrain uses 99: the task shows skipped)."
        ),
    ] = 0,
    step: Annotated[
        str,
        typer.Option(
            help="One step of the loop, as Airflow's lake_retrain runs them: check (is one due?), train (prints "
            "the candidate), evaluate, gate (records the decision), promote or reject (applies it, or exits with "
            "the idle exit code when the gate decided the other way). Default: all of them."
        ),
    ] = "all",
    candidate: Annotated[
        str | None, typer.Option(help="The candidate of the evaluate/gate/promote/reject steps (compact-vN).")
    ] = None,
) -> None:
    """Warm-start the production model on new gold examples plus a replay sample; promote it if the gate holds."""
    from lake import retrain as loop
    from lake.training import DatasetError
    from models.captioner.train import TrainConfig

    if step not in STEPS:
        raise _fail(ValueError(f"--step must be one of {', '.join(STEPS)}"))
    if step in STEPS[3:] and not candidate:
        raise _fail(ValueError(f"--step {step} needs --candidate"))
    config = TrainConfig(minutes=minutes or None, steps=steps or None, batch_size=batch_size, lr=lr, seed=seed)
    train = dict(replay=replay, config=config, tolerance=tolerance, focus=focus_slice or None, seed=seed, drill=drill)
    try:
        if step in ("check", "train"):
            plan = loop.plan(name=name, min_new=min_new)
            console.print(plan.summary()["message"])
            if not plan.due:
                raise typer.Exit(idle_exit_code)
            if step == "train":
                with training_bar() as report:
                    cand = loop.train_candidate(plan, **train, progress=report)
                print(cand["_id"])  # after the bar's last frame: the last line is Airflow's XCom for the next steps
            return
        if step == "evaluate":
            for m, r in loop.evaluate_candidate(candidate).items():
                console.print(f"{m}: CIDEr {r['overall']['CIDEr']:.3f} on {r['n']} test images")
            return
        if step in ("promote", "reject"):
            decision = loop.decision_of(candidate)
            if decision["decision"] != step:
                console.print(f"{candidate}: the gate decided to {decision['decision']}, not to {step}")
                raise typer.Exit(idle_exit_code)
            console.print(f"{candidate} is {loop.conclude(decision)}: {'; '.join(decision['reasons'])}")
            return
        if step == "gate":
            out = loop.decide(candidate)
        else:
            with training_bar() as report:
                out = loop.retrain(name=name, min_new=min_new, **train, progress=report)
    except (DatasetError, LookupError, ValueError) as e:
        raise _fail(e) from e
    if out["status"] == "nothing to do":
        console.print(out["message"])
        raise typer.Exit(idle_exit_code)
    console.print(f"{out['new_examples']} new + {out['replay_examples']} replayed examples since {out['since']}")
    console.print(gate_table(out))
    console.print(outcome(out))
    console.print(f"chart: {out['chart']}")
    if step == "gate":  # the last line: Airflow's XCom, the decision and the table in one JSON value
        print(json.dumps(gate_summary(out), separators=(",", ":")))
    if out["status"] == "drill failed":
        raise typer.Exit(1)


@model_app.command()
def serving(
    wait: Annotated[float, typer.Option(help="Seconds to wait for the API to answer with the model.")] = 60.0,
    idle_exit_code: Annotated[
        int, typer.Option(help="Exit code when there is no such model yet (Airflow's lake_retrain uses 99: skipped).")
    ] = 0,
) -> None:
    """Check that the running API captions with the model it is configured to serve (LAKE_CAPTION_MODEL, by default
    the production version: it swaps on `models.promoted`)."""
    from lake.apps.serving import wait_served
    from lake.config import get_settings
    from lake.registry import ModelNotFound, Registry

    spec = get_settings().caption_model
    try:
        version = Registry.connect().get(spec)["_id"]
    except ModelNotFound as e:
        console.print(f"nothing to check: {e}")
        raise typer.Exit(idle_exit_code) from e
    seconds = wait_served(version, within=wait)
    console.print(f"the API serves {version} ({spec}; answered in {seconds:.1f} s)")


@model_app.command()
def rollback(
    name: Annotated[str, typer.Option(help="Model name in the registry.")] = "compact",
    to: Annotated[
        str | None, typer.Option(help="This version (default: the last one archived from production).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Recorded with the stage changes.")] = "rolled back by hand",
) -> None:
    """Make the previous production version production again (the current one is archived)."""
    from lake.retrain import rollback as run_rollback

    try:
        doc = run_rollback(name=name, to=to, reason=reason)
    except LookupError as e:
        raise _fail(e) from e
    console.print(f"[green]{doc['_id']}[/green] is production again ({reason})")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")

    @app.command()
    def caption(
        folder: Annotated[
            Path, typer.Argument(help="A folder of images (searched recursively).", exists=True, file_okay=False)
        ],
        out: Annotated[Path, typer.Option("--out", help="Where to write {file name: caption} as JSON.")],
        model: Annotated[
            str,
            typer.Option(help="A registered version (production, compact-v2), a saved model directory, or a hub id."),
        ] = "production",
        dtype: Annotated[str, typer.Option(help="fp32, bf16 (CPU or GPU) or fp16 (GPU).")] = "fp32",
        batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Images per generate() call.")] = 32,
    ) -> None:
        """Caption every image in FOLDER with a model and write the captions to a JSON file."""
        from models.captioner import CaptionerError, load

        try:
            captioner = load(model_path(model), dtype=dtype)
        except (CaptionerError, LookupError) as e:
            raise _fail(e) from e
        captions, failed = caption_folder(folder, captioner, batch_size)
        out.write_text(json.dumps(captions, indent=1, ensure_ascii=False) + "\n")
        console.print(f"{len(captions)} captions -> {out}")
        for name, why in failed.items():
            console.print(f"[yellow]skipped[/yellow] {name}: {why}")
        if failed:
            raise typer.Exit(1)
