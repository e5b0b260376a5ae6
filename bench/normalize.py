"""Silver normalization throughput: the Spark job's transform against a bare Pillow loop
doing the same work (read bytes, lake.normalize.normalize_image) on the same cores.

Both read the images from a local folder (MinIO is left out of both, so the figure is
about the compute path and Spark's overhead, not the object store). The bare loop is a
process pool with one worker per core; Spark is local[N] with the same N, timed after a
warm-up run (JVM and Python workers started), as a running cluster would be.

    python -m bench normalize                 # -> bench/results/normalize.json
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from lake.datasets.shapes import generate
from lake.normalize import normalize_image
from lake.spark import local_session

RESULTS = Path(__file__).parent / "results"
console = Console()


def large_jpegs(n: int, seed: int = 0) -> list[bytes]:
    """1024x768 photos-like JPEGs (smooth gradients plus noise, quality 90), all distinct."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:768, 0:1024]
    out = []
    for i in range(n):
        base = np.stack([(xx * (i % 7 + 1)) % 256, (yy * (i % 5 + 1)) % 256, (xx + yy + 13 * i) % 256], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _write(folder: Path, images: list[bytes]) -> list[str]:
    ids = []
    for data in images:
        image_id = hashlib.sha256(data).hexdigest()
        (folder / image_id).write_bytes(data)
        ids.append(image_id)
    return ids


def _one(path: str) -> int:
    return len(normalize_image(Path(path).read_bytes()).jpeg)


def bare(folder: Path, ids: list[str], cores: int) -> float:
    """Seconds for a process pool (one per core) to normalize every image."""
    paths = [str(folder / i) for i in ids]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_one, paths[: cores * 2]))  # start the workers first, as Spark's are
        t = time.perf_counter()
        list(pool.map(_one, paths, chunksize=16))
        return time.perf_counter() - t


def spark_run(spark, folder: Path, ids: list[str], cores: int) -> float:
    from datetime import datetime

    from spark_jobs.silver.normalize_images import group_events, transform

    root = str(folder)

    def fetch_factory():
        def fetch(image_id: str) -> bytes | None:
            return Path(root, image_id).read_bytes()

        return fetch

    now = datetime(2026, 1, 1)
    events = spark.createDataFrame(
        [(f"e{i}", image_id, "bench", [], now) for i, image_id in enumerate(ids)],
        "event_id string, image_id string, source string, captions array<string>, ingested_at timestamp",
    )
    out = transform(group_events(events), fetch_factory, partitions=2 * cores)
    t = time.perf_counter()
    ok = out.where("ok").count()
    elapsed = time.perf_counter() - t
    assert ok == len(ids), f"{ok} of {len(ids)} normalized"
    return elapsed


def main(n: int = 1000) -> dict:
    cores = os.cpu_count() or 1
    sets = {"shapes 128x128": [s.data for s in generate(n, seed=11)], "1024x768 JPEG": large_jpegs(n, seed=5)}
    results: dict = {"cores": cores, "images": n, "sets": {}}
    conf = {"spark.sql.shuffle.partitions": str(2 * cores), "spark.sql.execution.arrow.maxRecordsPerBatch": "32"}
    with local_session("bench-normalize", cores, conf) as spark:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            warm = _write(folder, [s.data for s in generate(64, seed=99)])
            spark_run(spark, folder, warm, cores)  # JVM, Python workers, Arrow: started once
            for name, images in sets.items():
                ids = _write(folder, images)
                mb = sum(len(d) for d in images) / 2**20
                t_bare = bare(folder, ids, cores)
                t_spark = spark_run(spark, folder, ids, cores)
                results["sets"][name] = {
                    "input_mib": round(mb, 1),
                    "bare_images_s": round(n / t_bare, 1),
                    "spark_images_s": round(n / t_spark, 1),
                    "ratio": round(t_bare / t_spark, 2),
                }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "normalize.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"silver normalize, {n} images, {cores} cores (goal: Spark >= 0.7x bare Pillow)")
    for col in ("set", "input MiB", "bare Pillow img/s", "Spark img/s", "ratio"):
        table.add_column(col, justify="right" if col != "set" else "left")
    for name, r in results["sets"].items():
        table.add_row(name, str(r["input_mib"]), str(r["bare_images_s"]), str(r["spark_images_s"]), f"{r['ratio']}x")
    console.print(table)
    return results


if __name__ == "__main__":
    main()
