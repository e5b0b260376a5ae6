"""Ingestion throughput, against the running stack.

1. Upload: the API's POST /v1/images against a raw MinIO PUT of same-sized images,
   at the same client concurrency, in one process (the raw PUT is the baseline).
2. Stream: Kafka -> bronze events/s for ~16 KB inline images, with the job's start-up
   (measured on an empty topic) taken out, and the job's CPU use to say what bounds it.

    python -m bench ingest   ->  bench/results/ingest.json
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from kafka import KafkaProducer
from kafka.admin import NewTopic
from PIL import Image
from rich.console import Console
from rich.table import Table

from lake.clients import kafka_admin, minio_client, trino_query
from lake.config import REPO_ROOT, get_settings
from lake.tables import BRONZE_BUCKET

RESULTS = Path(__file__).parent / "results"
console = Console()


def images_16k(n: int, seed: int) -> list[bytes]:
    """Distinct incompressible PNGs of about 16 KB (72x72 RGB noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        b = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(b, "PNG", compress_level=1)
        out.append(b.getvalue())
    return out


def _rate(fn, items, concurrency: int) -> float:
    with ThreadPoolExecutor(concurrency) as pool:
        t = time.perf_counter()
        list(pool.map(fn, items))
        return len(items) / (time.perf_counter() - t)


def upload_bench(n: int = 600, concurrency: int = 8) -> dict:
    s = get_settings()
    mc = minio_client(s)
    raw_imgs, api_imgs = images_16k(n, seed=int(time.time())), images_16k(n, seed=int(time.time()) + 1)

    def raw_put(data: bytes) -> None:
        mc.put_object(BRONZE_BUCKET, f"bench/{uuid.uuid4()}", io.BytesIO(data), len(data), content_type="image/png")

    client = httpx.Client(
        base_url=f"http://{s.host}:{s.api_port}",
        timeout=60,
        headers={"X-API-Key": s.api_keys[0].get_secret_value()},
        limits=httpx.Limits(max_connections=concurrency),
    )

    def api_post(data: bytes) -> None:
        r = client.post("/v1/images?source=bench", content=data, headers={"Content-Type": "image/png"})
        r.raise_for_status()

    raw_put(raw_imgs[0]), api_post(api_imgs[0])  # warm connections
    raw = _rate(raw_put, raw_imgs[1:], concurrency)
    api = _rate(api_post, api_imgs[1:], concurrency)
    for o in mc.list_objects(BRONZE_BUCKET, prefix="bench/"):
        mc.remove_object(BRONZE_BUCKET, o.object_name)
    return {
        "images": n,
        "bytes_each": sum(map(len, api_imgs)) // n,
        "concurrency": concurrency,
        "raw_minio_put_per_s": round(raw, 1),
        "api_upload_per_s": round(api, 1),
        "ratio_api_vs_raw": round(api / raw, 2),
    }


def _run_job(topic: str, checkpoint: str, namespace: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the job's process tree)."""
    env = {**os.environ, "LAKE_TOPIC_UPLOADS": topic, "LAKE_TOPIC_UPLOADS_DLQ": f"{topic}.dlq"}
    t = time.perf_counter()
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spark_jobs.bronze.ingest_uploads",
            "--checkpoint",
            checkpoint,
            "--namespace",
            namespace,
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ps = psutil.Process(p.pid)
    cpu: dict[int, float] = {}
    while p.poll() is None:
        for q in [ps, *ps.children(recursive=True)]:
            try:
                c = q.cpu_times()
                cpu[q.pid] = c.user + c.system + c.children_user + c.children_system
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)
    if p.returncode:
        raise RuntimeError(f"the stream job failed (exit {p.returncode})")
    return time.perf_counter() - t, sum(cpu.values())


def stream_bench(n: int = 10000) -> dict:
    """The bronze job over ``n`` inline events in a scratch lane (topic, namespace, checkpoint of its own,
    dropped afterwards): the users' tables get nothing, and every run starts from empty tables."""
    from lake.apps.scratch import drop_lane, scratch_namespace

    s = get_settings()
    namespace = scratch_namespace("bench", s)
    topic = f"bench-{namespace.rsplit('_', 1)[1]}"
    checkpoints = s.checkpoint_uri(f"bench/{topic}") + "/"
    sent: list[str] = []
    with kafka_admin(s) as admin:
        admin.create_topics([NewTopic(topic, 3, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    try:
        empty_wall, empty_cpu = _run_job(topic, checkpoints + "empty", namespace)
        producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=20)
        for data in images_16k(n, seed=time.time_ns() % 2**32):  # bytes no one else has: removed below
            image_id = hashlib.sha256(data).hexdigest()
            ev = {
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "image_id": image_id,
                "source": "bench",
                "content_type": "image/png",
                "size_bytes": len(data),
                "image_b64": base64.b64encode(data).decode(),
            }
            producer.send(topic, value=json.dumps(ev).encode())
            sent.append(image_id)
        producer.flush()
        wall, cpu = _run_job(topic, checkpoints + "full", namespace)
        ((landed,),) = trino_query(f"SELECT count(*) FROM {namespace}.upload_events")
    finally:
        drop_lane(s, topic, namespace, checkpoints, image_ids=sent)  # the job put the inline bytes in bronze
    busy = (cpu - empty_cpu) / ((wall - empty_wall) * (os.cpu_count() or 1))
    return {
        "events": n,
        "landed": landed,
        "job_wall_s": round(wall, 1),
        "job_startup_s": round(empty_wall, 1),
        "events_per_s": round(n / (wall - empty_wall), 1),
        "cpu_utilisation_while_landing": round(busy, 2),
        "tables": "a scratch namespace, empty at the start",
    }


def main() -> dict:
    up = upload_bench()
    st = stream_bench()
    result = {"when": time.strftime("%FT%TZ", time.gmtime()), "cpus": os.cpu_count(), "upload": up, "stream": st}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    t = Table(title="bench: ingest")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row(f"raw MinIO PUT, {up['bytes_each']} B, {up['concurrency']} clients", f"{up['raw_minio_put_per_s']}/s")
    t.add_row("API POST /v1/images, same", f"{up['api_upload_per_s']}/s ({up['ratio_api_vs_raw']}x raw)")
    t.add_row(f"stream Kafka->bronze, {st['events']} inline events", f"{st['events_per_s']} events/s")
    t.add_row("  job start-up (excluded)", f"{st['job_startup_s']} s")
    t.add_row("  CPU utilisation while landing", f"{st['cpu_utilisation_while_landing']:.0%} of all cores")
    console.print(t)
    return result
