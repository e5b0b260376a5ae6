"""Caption serving: `POST /v1/captions` images/s and p50/p99 latency at 1, 4 and 16 concurrent clients, with the
API's dynamic batching (caption_max_batch 16, caption_max_wait_ms 10) against batch-1 serving (max batch 1).

    python -m bench.serving                          # ~1 min on 2 cores -> bench/results/serving.json
    python -m bench.serving --clients 1,4 --requests 20,40 --out /tmp/serving.json
    python -m bench.serving --model-dir ~/.cache/lake/bench/compact_500steps_...   # a trained model instead

One run, no stack: the real app (`services.api.main.create_app`) with a `CaptionService` per mode runs under
uvicorn in a thread each, on free ports; httpx clients (asyncio, in a spawned child process, as remote clients
would be: they share the 2 cores but not the API's GIL; `--in-process-clients` runs them in the API process) post
the same distinct Shapes PNGs (128 px) as multipart `file`. What the stack would provide is stubbed, and the
settings point MinIO, FerretDB and Kafka at a closed port (127.0.0.1:9), so nothing left unstubbed can reach a
running stack:
- the registry: a local stub whose `get()` names one version and `fetch()` returns the saved model directory;
- the catalog (FerretDB), where the API looks up and stores each caption: a stub that stores nothing and finds
  nothing (two thread-pool hops per request remain, as in the API; the FerretDB round trips do not);
- Kafka (promotions): the consumer thread is a no-op; the model never changes during the bench;
- MinIO: `create_caption` takes `MinioDep`, used only for `image_id` requests; uploads never touch it, so the app's
  `get_minio` is overridden with None; `get_settings` is overridden with the bench's settings (its own API key).
The caption cache is off (caption_cache_size 0) and every request of a measurement is a different image;
`stack_calls` shows that no answer came from the catalog and no catalog call failed.

The model is `models.captioner.compact` with the default `CompactConfig()` (the one `lake model train` trains,
1.4 M parameters, 64 px), untrained (random weights, seed 0), tokenizer built over the images' Shapes captions. It
is built and saved in a spawned child, so the API process's RSS (psutil) before/after load is the load alone.
Random weights decode as long as any caption (up to the 23 tokens the decoder's positions allow); both modes see
the same images, so they do the same work (`captions_identical` checks it); the mean caption length is reported
(tokens = words: the tokenizer is word-level). Each measurement: a warm-up of 2 requests per client, then a fixed
number of requests (`--requests`, one per `--clients` entry); the batch-size histogram is the service's
`stats["sizes"]` over the timed requests; `api_cpu_ms_per_request` is the API process's CPU time (all threads)
over them, `client_cpu_ms_per_request` the client process's. The modes alternate per concurrency (shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
GOAL = 3.0  # batched / batch-1 images/s at the most clients
KEY = "bench-serving-key"
VERSION = "bench-compact"


def shapes_pngs(n: int, seed: int = 11) -> tuple[list[bytes], list[str]]:
    """``n`` distinct Shapes PNGs (128 px) and a caption of each."""
    from lake.datasets.shapes import generate

    seen: dict[bytes, str] = {}
    for s in generate(2 * n, seed=seed, fmt="png"):
        seen.setdefault(s.data, s.captions[0])
        if len(seen) == n:
            return list(seen), list(seen.values())
    raise RuntimeError(f"fewer than {n} distinct images")


def save_model(out: str, config, captions: list[str]) -> int:
    """An untrained compact captioner saved to ``out`` (run in a spawned child); its parameter count."""
    import torch

    from models.captioner.compact import build, parameter_count

    torch.manual_seed(0)
    model, processor = build(config, captions)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return parameter_count(model)


class LocalRegistry:
    """What CaptionService asks of lake.registry.Registry: one production version, a local directory."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir

    def get(self, spec: str) -> dict:
        return {"_id": VERSION}

    def fetch(self, version: str) -> Path:
        return self.model_dir


class NoCatalog:
    """What CaptionService asks of lake.catalog.Catalog: no stored captions, and storing keeps nothing."""

    def stored_caption(self, image_id: str, model_version: str) -> None:
        return None

    def store_caption(self, *args, **kwargs) -> None:
        pass

    def image(self, image_id: str) -> None:  # no image is in silver: gold.captions is never asked
        return None


def rss_mib() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


@contextmanager
def serve(settings, model_dir: Path):
    """(base url, service): the API app with its own CaptionService under uvicorn in a thread, model loaded."""
    import uvicorn

    from lake.config import get_settings
    from services.api.caption_service import CaptionService
    from services.api.deps import get_minio
    from services.api.main import create_app

    class Service(CaptionService):
        def _consume(self) -> None:  # no Kafka here: no promotion can come
            pass

    svc = Service(settings, registry=lambda: LocalRegistry(model_dir), catalog=NoCatalog)
    app = create_app(svc)
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[get_minio] = lambda: None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started or svc.current is None:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {svc.state}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", svc
    finally:
        server.should_exit = True
        thread.join(15)


def post_all(url: str, blobs: list[bytes], clients: int) -> tuple[float, float, list, list]:
    """(wall s, CPU s of this process, latencies s, captions or None) of ``blobs`` posted by ``clients`` concurrent
    httpx clients, each sending its next request when its last one is answered (runs in the client process)."""
    import httpx

    async def go() -> tuple[float, float, list, list]:
        lat, caps, queue = [0.0] * len(blobs), [None] * len(blobs), iter(range(len(blobs)))
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, timeout=120, limits=limits) as c:

            async def client() -> None:
                for i in queue:  # one iterator shared by the clients: the next image goes to whoever is free
                    t = time.perf_counter()
                    r = await c.post("/v1/captions", files={"file": (f"{i}.png", blobs[i], "image/png")})
                    lat[i] = time.perf_counter() - t
                    caps[i] = r.json()["caption"] if r.status_code == 200 else None

            t, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(client() for _ in range(clients)))
            return time.perf_counter() - t, time.process_time() - cpu, lat, caps

    return asyncio.run(go())


def measure(pool, url: str, svc, warm: list[bytes], blobs: list[bytes], clients: int) -> tuple[dict, list]:
    """One row of figures (``warm`` posted first, not counted), and the captions."""
    import numpy as np
    import psutil

    run = (lambda *a: pool.submit(post_all, *a).result()) if pool else post_all
    run(url, warm, clients)
    before = Counter(svc.stats["sizes"])  # every warm-up answer is in: the batcher counts before it answers
    api = psutil.Process()
    cpu = sum(api.cpu_times()[:2])
    wall, client_cpu, lat, caps = run(url, blobs, clients)
    api_cpu = sum(api.cpu_times()[:2]) - cpu
    sizes = Counter(svc.stats["sizes"]) - before
    ms, ok, images = np.array(lat) * 1000, [c for c in caps if c is not None], sum(k * n for k, n in sizes.items())
    return {
        "clients": clients,
        "requests": len(blobs),
        "errors": len(caps) - len(ok),
        "images_per_s": round(len(blobs) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "seconds": round(wall, 2),
        "batches": sum(sizes.values()),
        "images_batched": images,
        "mean_batch": round(images / max(1, sum(sizes.values())), 2),
        "max_batch": max(sizes, default=0),
        "batch_sizes": {str(k): sizes[k] for k in sorted(sizes)},
        "mean_caption_tokens": round(sum(len(c.split()) for c in ok) / max(1, len(ok)), 2),
        "api_cpu_ms_per_request": round(api_cpu * 1000 / len(blobs), 1),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / len(blobs), 1),
        "load_1min": round(os.getloadavg()[0], 2),
    }, caps


def main(argv: list[str] | None = None, *, model_config=None) -> dict:
    """Run the bench (``model_config``: a CompactConfig other than the default, e.g. a tiny one in tests)."""
    p = argparse.ArgumentParser(
        prog="python -m bench.serving",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--clients", default="1,4,16", help="comma list of concurrent clients (default 1,4,16)")
    p.add_argument("--requests", default="100,200,400", help="timed requests per --clients entry (default 100,200,400)")
    p.add_argument(
        "--max-batch", type=int, default=None, help="batched mode's caption_max_batch (default: settings, 16)"
    )
    p.add_argument(
        "--max-wait-ms", type=float, default=None, help="batched mode's caption_max_wait_ms (default: settings, 10)"
    )
    p.add_argument("--model-dir", type=Path, default=None, help="a saved captioner instead of an untrained compact one")
    p.add_argument(
        "--in-process-clients",
        action="store_true",
        help="run the clients in the API process (sharing its GIL) instead of a child process",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "serving.json", help="JSON file (default %(default)s)")
    a = p.parse_args(argv)
    clients = [int(c) for c in a.clients.split(",")]
    requests = [int(n) for n in a.requests.split(",")]
    if len(requests) != len(clients):
        p.error("--requests needs one number per --clients entry")

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch
    from pydantic import SecretStr
    from transformers import Blip2ForConditionalGeneration, Blip2Processor  # noqa: F401 -- imported before RSS

    from lake.config import Settings
    from models.captioner.compact import CompactConfig

    load_before = [round(x, 2) for x in os.getloadavg()]
    warm_n = 2 * max(clients)
    blobs, refs = shapes_pngs(max(requests) + warm_n)
    warm, blobs = blobs[:warm_n], blobs[warm_n:]
    config = model_config or CompactConfig()
    with ExitStack() as stack:
        pool = stack.enter_context(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")))
        if a.model_dir is None:
            model_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serving-")))
            parameters = pool.submit(save_model, str(model_dir), config, refs).result()
        else:
            model_dir, parameters = a.model_dir.expanduser(), None
        closed = "127.0.0.1:9"  # nothing listens: a store the bench forgot to stub fails, it is not written to
        base = Settings(
            mode="local",
            caption_model=VERSION,
            caption_cache_size=0,
            caption_poll_s=3600,
            api_keys=[SecretStr(KEY)],
            kafka_bootstrap=closed,
            s3_endpoint=f"http://{closed}",
            mongo_uri=f"mongodb://{closed}/?serverSelectionTimeoutMS=500",
        )
        batched = base.model_copy(
            update={
                "caption_max_batch": a.max_batch or base.caption_max_batch,
                "caption_max_wait_ms": base.caption_max_wait_ms if a.max_wait_ms is None else a.max_wait_ms,
            }
        )
        modes = {"batched": batched, "batch1": base.model_copy(update={"caption_max_batch": 1})}
        rss = {"before_load": rss_mib()}
        servers = {}
        for name, settings in modes.items():
            servers[name] = stack.enter_context(serve(settings, model_dir))
            rss.setdefault("model_loaded", rss_mib())  # one model, as an API process holds
        rss["both_services_loaded"] = rss_mib()
        if parameters is None:
            parameters = sum(p.numel() for p in servers["batched"][1].current.captioner.model.parameters())
        runs, same = [], {}
        for c, n in zip(clients, requests):
            caps = {}
            for name, (url, svc) in servers.items():
                row, caps[name] = measure(None if a.in_process_clients else pool, url, svc, warm[: 2 * c], blobs[:n], c)
                runs.append({"mode": name, **row})
                print(
                    f"{name:8s} {c:3d} clients: {row['images_per_s']:7.1f} img/s  p50 {row['p50_ms']:7.1f} ms  "
                    f"p99 {row['p99_ms']:7.1f} ms  mean batch {row['mean_batch']}",
                    flush=True,
                )
            same[str(c)] = round(sum(x == y for x, y in zip(caps["batched"], caps["batch1"])) / n, 3)
        rss["after_bench"] = rss_mib()
        stack_calls = {
            name: {k: svc.stats.get(k, 0) for k in ("stored_hits", "store_errors")}
            for name, (_, svc) in servers.items()
        }

    tput = {(r["mode"], r["clients"]): r["images_per_s"] for r in runs}
    speedup = {str(c): round(tput["batched", c] / tput["batch1", c], 2) for c in clients}
    s = batched
    result = {
        "benchmark": "serving",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "clients_process": "the API process" if a.in_process_clients else "a child process",
        "model": {
            "config": asdict(config) if a.model_dir is None else None,
            "parameters": parameters,
            "weights": "random (untrained, seed 0)" if a.model_dir is None else str(model_dir),
        },
        "images": {"count": len(blobs), "warm_up": warm_n, "distinct": True, "format": "png", "side": 128},
        "settings": {
            "max_batch": s.caption_max_batch,
            "max_wait_ms": s.caption_max_wait_ms,
            "cache_size": 0,
            "queue_size": s.caption_queue_size,
            "timeout_s": s.caption_timeout_s,
        },
        "runs": runs,
        "speedup": speedup,
        "goal": GOAL,
        "goal_clients": max(clients),
        "goal_met": speedup[str(max(clients))] >= GOAL,
        "captions_identical": same,
        "stack_calls": stack_calls,
        "rss_mib": rss,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    return result


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"POST /v1/captions, {r['model']['parameters']:,} parameters, {r['cores']} cores, cache off "
        f"(goal: batched >= {r['goal']}x batch-1 at {r['goal_clients']} clients)"
    )
    for col in (
        "clients",
        "mode",
        "img/s",
        "p50 ms",
        "p99 ms",
        "mean batch",
        "batch sizes",
        "API CPU ms/req",
        "speedup",
    ):
        table.add_column(col, justify="right")
    for row in r["runs"]:
        table.add_row(
            str(row["clients"]),
            row["mode"],
            str(row["images_per_s"]),
            str(row["p50_ms"]),
            str(row["p99_ms"]),
            str(row["mean_batch"]),
            " ".join(f"{k}:{v}" for k, v in row["batch_sizes"].items()),
            str(row["api_cpu_ms_per_request"]),
            f"{r['speedup'][str(row['clients'])]}x" if row["mode"] == "batched" else "",
        )
    Console(width=140).print(table)
    m = r["rss_mib"]
    print(
        f"RSS MiB: {m['before_load']} before load, {m['model_loaded']} with the model "
        f"(+{m['model_loaded'] - m['before_load']:.1f}), "
        f"{m['after_bench']} after the bench; load average {r['load_average_before']} -> {r['load_average_after']}"
    )


if __name__ == "__main__":
    main()
