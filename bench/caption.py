"""Batch captioning throughput: spark_jobs.gold.caption_images.transform against a bare
`Captioner.caption` (read, decode, generate) on the same model, images, batch size and cores;
and the compact model's training examples/s.

The model is the compact captioner, trained here on a Shapes set unless one is given; set and
model are cached in ~/.cache/lake/bench/, so only the first run trains (its examples/s is the
training figure, marked `cached` on later runs). Both sides read the same JPEG files (MinIO is
left out of both). The bare side is one process with torch's default threads, the model
loaded before the clock starts; the Spark side is local[cores] with the clock started after
the session is up, so it includes starting the Python workers and loading the model in each.
A second ("warm") Spark run on the same workers shows what is left once those are paid.

    python -m bench caption                   # -> bench/results/caption.json
    python -c "from bench.caption import main; main(model_dir='out/compact')"   # a model of your own
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lake.spark import local_session

RESULTS = Path(__file__).parent / "results"
CACHE = Path.home() / ".cache" / "lake" / "bench"
GOAL = 0.85
console = Console()


def shapes_folder(cache: Path, n: int, seed: int = 0) -> Path:
    """A `lake datasets shapes make` folder of ``n`` images, made once."""
    from lake.datasets.shapes import write_dataset

    folder = cache / f"shapes_s{seed}_{n}"
    if not (folder / "captions.json").is_file():  # written last: a finished set
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_dataset(tmp, n, seed=seed, progress=False)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def trained_model(cache: Path, folder: Path, steps: int, model_config=None) -> tuple[Path, dict, bool]:
    """(model dir, its train_result.json, whether it was already there): the compact captioner trained for
    ``steps`` at the default TrainConfig batch size on the folder's train split."""
    from models.captioner.compact import CompactConfig
    from models.captioner.data import read_shapes
    from models.captioner.train import TrainConfig, shapes_examples, train

    model_config = model_config or CompactConfig()
    key = hashlib.sha256(json.dumps([folder.name, steps, asdict(model_config)]).encode()).hexdigest()[:10]
    out = cache / f"compact_{steps}steps_{key}"
    cached = (out / "train_result.json").is_file()
    if not cached:
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        examples = shapes_examples(read_shapes(folder, "train"))
        console.print(f"training the compact captioner: {steps} steps on {len(examples)} examples -> {out}")
        train(examples, TrainConfig(model=model_config, steps=steps, minutes=None), tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        result = json.loads((out / "train_result.json").read_text())
        (out / "train_result.json").write_text(json.dumps({**result, "out_dir": str(out)}, indent=1))
    return out, json.loads((out / "train_result.json").read_text()), cached


def bench_images(cache: Path, n: int, seed: int = 7) -> tuple[Path, list[str], list[str]]:
    """(folder, file names, reference captions): ``n`` Shapes JPEGs (128 px) as silver holds them."""
    from lake.datasets.shapes import generate

    folder = cache / f"jpegs_s{seed}_{n}"
    samples = list(generate(n, seed=seed, fmt="jpeg"))
    names = [f"{i:06d}.jpg" for i in range(n)]
    if not (folder / "done").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name, s in zip(names, samples):
            (folder / name).write_bytes(s.data)
        (folder / "done").touch()
    return folder, names, [s.captions[0] for s in samples]


def bare(model_dir: Path, folder: Path, names: list[str], batch_size: int) -> dict:
    """Read + decode + generate in this process with torch's default threads, the model loaded (and one batch
    generated) before the clock starts."""
    import torch
    from PIL import Image

    from models.captioner import load
    from models.captioner.compact import parameter_count

    captioner = load(str(model_dir))
    captioner.caption([Image.open(folder / n) for n in names[:batch_size]], batch_size=batch_size)  # warm-up
    t = time.perf_counter()
    images = [Image.open(io.BytesIO((folder / n).read_bytes())).convert("RGB") for n in names]
    captions = captioner.caption(images, batch_size=batch_size)
    return {
        "seconds": time.perf_counter() - t,
        "captions": captions,
        "threads": torch.get_num_threads(),
        "parameters": parameter_count(captioner.model),
    }


def spark_run(spark, model_dir: Path, folder: Path, names: list[str], batch_size: int) -> tuple[float, dict, int]:
    """(seconds, caption per file name, partitions the job ran) for the job's transform over the same files,
    collected. The input is one partition, as lake.silver.images scans (30,222 images in 3 small files:
    Iceberg packs them into one split)."""
    from spark_jobs.gold.caption_images import transform

    root = str(folder)

    def fetch_factory():
        return lambda key: Path(root, key).read_bytes()

    todo = spark.createDataFrame(
        [(n.removesuffix(".jpg"), n) for n in names], "image_id string, silver_key string"
    ).coalesce(1)
    out = transform(todo, str(model_dir), "bench", fetch_factory, batch_size=batch_size)
    t = time.perf_counter()
    rows = out.collect()
    elapsed = time.perf_counter() - t
    return elapsed, {f"{r.image_id}.jpg": r.caption for r in rows}, out.rdd.getNumPartitions()


def worker_threads(spark, partitions: int) -> list[tuple[int, int]]:
    """(pid, torch intra-op threads) of the Python workers that tasks run in."""

    def threads(batches):
        import pandas as pd
        import torch

        for _ in batches:
            pass
        yield pd.DataFrame({"pid": [os.getpid()], "threads": [torch.get_num_threads()]})

    df = spark.range(partitions, numPartitions=partitions).mapInPandas(threads, "pid long, threads int")
    return sorted({(r.pid, r.threads) for r in df.collect()})


def main(
    n: int = 10000,
    batch_size: int = 32,
    steps: int = 500,
    train_images: int = 3000,
    model_dir: str | None = None,
    model_config=None,
    cache: Path = CACHE,
    results: Path = RESULTS,
) -> dict:
    """Caption ``n`` images both ways at ``batch_size`` and write ``results``/caption.json. Without ``model_dir``
    the model is the compact one (``model_config``, default CompactConfig()) trained ``steps`` steps on
    ``train_images`` Shapes images, or its cached copy."""
    import torch

    cores = os.cpu_count() or 1
    cache = Path(cache)
    training: dict = {}
    if model_dir is None:
        folder = shapes_folder(cache, train_images)
        path, tr, cached = trained_model(cache, folder, steps, model_config)
        training = {
            "examples_per_s": round(tr["images_per_s"], 1),
            "batch_size": tr["config"]["batch_size"],
            "steps": tr["steps"],
            "threads": tr["config"]["threads"] or torch.get_num_threads(),
            "final_loss": round(tr["final_loss"], 3),
            "cached": cached,
        }
    else:
        path = Path(model_dir)
    images, names, references = bench_images(cache, n)
    load_before = [round(x, 2) for x in os.getloadavg()]

    b = bare(path, images, names, batch_size)
    with local_session("bench-caption", cores) as spark:
        t_cold, got, partitions = spark_run(spark, path, images, names, batch_size)
        t_warm, got_warm, _ = spark_run(spark, path, images, names, batch_size)
        threads = worker_threads(spark, cores)
    t_bare, captions = b["seconds"], b["captions"]
    mismatches = sum(got.get(k) != c for k, c in zip(names, captions)) + sum(
        got_warm.get(k) != c for k, c in zip(names, captions)
    )
    words = [len(c.split()) for c in captions]
    result = {
        "cores": cores,
        "images": n,
        "image_size": 128,
        "batch_size": batch_size,
        "spark_partitions": {"input": 1, "job": partitions},
        "model": {"dir": str(path), "parameters": b["parameters"]},
        "training": training,
        "mean_caption_words": round(sum(words) / len(words), 2),
        "reference_caption_words": round(sum(len(c.split()) for c in references) / len(references), 2),
        "bare_images_s": round(n / t_bare, 1),
        "spark_images_s": round(n / t_cold, 1),
        "ratio": round(t_bare / t_cold, 2),
        "spark_warm_images_s": round(n / t_warm, 1),
        "warm_ratio": round(t_bare / t_warm, 2),
        "spark_start_s": round(t_cold - t_warm, 1),
        "torch_threads": {"bare": b["threads"], "spark_workers": [t for _, t in threads]},
        "captions_identical": mismatches == 0,
        "bytecode_cached": _bytecode_cached(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "caption.json").write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    if mismatches:
        console.print(f"[red]{mismatches} Spark captions differ from the bare ones[/red]")
    return result


def _bytecode_cached() -> bool:
    """Whether transformers' compiled bytecode is on disk: without it (a venv installed without compiling, with
    PYTHONDONTWRITEBYTECODE set) every Python worker compiles torch and transformers again, ~5 s of CPU each."""
    import importlib.util

    import transformers.modeling_utils as m

    return Path(importlib.util.cache_from_source(m.__file__)).is_file()


def _print(r: dict) -> None:
    table = Table(
        title=f"batch captioning, {r['images']} Shapes images, batch {r['batch_size']}, {r['cores']} cores, "
        f"{r['model']['parameters']:,} parameters (goal: Spark >= {GOAL}x bare generate)"
    )
    for col in ("figure", "value"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    table.add_row("bare generate img/s (read, decode, generate)", str(r["bare_images_s"]))
    table.add_row("Spark img/s (workers started, model loaded in each)", f"{r['spark_images_s']} ({r['ratio']}x)")
    table.add_row("Spark img/s, warm workers", f"{r['spark_warm_images_s']} ({r['warm_ratio']}x)")
    table.add_row(
        "Spark start (cold - warm run), s" + ("" if r["bytecode_cached"] else ", no .pyc for transformers"),
        str(r["spark_start_s"]),
    )
    table.add_row("Spark partitions: input / job", f"{r['spark_partitions']['input']} / {r['spark_partitions']['job']}")
    table.add_row(
        "torch threads: bare / per Spark worker",
        f"{r['torch_threads']['bare']} / {r['torch_threads']['spark_workers']}",
    )
    table.add_row("mean caption words (references)", f"{r['mean_caption_words']} ({r['reference_caption_words']})")
    table.add_row("captions identical", str(r["captions_identical"]))
    if r["training"]:
        t = r["training"]
        table.add_row(
            f"training examples/s (batch {t['batch_size']}, {t['steps']} steps{', cached' if t['cached'] else ''})",
            str(t["examples_per_s"]),
        )
    console.print(table)


if __name__ == "__main__":
    main()
