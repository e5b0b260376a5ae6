"""`GET /metrics` (Prometheus text format): request latency per route, and the caption batcher's
queue depth, batch sizes and counters, read from the service at scrape time.

    curl -s localhost:8000/metrics | grep lake_

One registry per app (tests build several apps in one process). With `api_workers > 1` each
uvicorn worker answers with its own figures (no multiprocess aggregation).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

router = APIRouter(tags=["health"])
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class CaptionCollector:
    """The batcher's own counters as Prometheus metrics (nothing is counted twice)."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        svc = getattr(self.app.state, "captions", None)
        if svc is None:
            return
        s = svc.stats
        yield GaugeMetricFamily(
            "lake_caption_queue_depth", "caption requests waiting for a batch", value=svc.batcher.qsize()
        )
        for name, key, doc in (
            ("batches", "batches", "generate() calls"),
            ("images", "images", "images captioned"),
            ("rejected_full", "rejected_full", "requests refused with 503 (queue full)"),
            ("timeouts", "timeouts", "requests answered 504"),
            ("model_swaps", "swaps", "models loaded (the first one included)"),
            ("stored_hits", "stored_hits", "answers the lake already stored (not computed)"),
            ("store_errors", "store_errors", "catalog look-ups or writes that failed"),
        ):
            yield CounterMetricFamily(f"lake_caption_{name}", doc, value=s.get(key, 0))
        filtered = CounterMetricFamily(
            "lake_captions_filtered", "captions withheld by the moderation filter", labels=["reason"]
        )
        for reason, n in sorted(s.get("filtered", {}).items()):
            filtered.add_metric([reason], n)
        yield filtered
        sizes = s.get("sizes", {})
        buckets = [(str(b), sum(n for size, n in sizes.items() if size <= b)) for b in BATCH_BUCKETS]
        buckets.append(("+Inf", sum(sizes.values())))
        yield HistogramMetricFamily(
            "lake_caption_batch_size",
            "images per generate() call",
            buckets=buckets,
            sum_value=sum(size * n for size, n in sizes.items()),
        )
        info = GaugeMetricFamily(
            "lake_caption_model_loaded", "1 for the model version being served", labels=["model_version"]
        )
        if svc.current is not None:
            info.add_metric([svc.current.version], 1)
        yield info


def install(app: FastAPI) -> None:
    """Add the latency middleware and `/metrics` to ``app``."""
    registry = CollectorRegistry()
    latency = Histogram("lake_api_request_seconds", "request latency", ["method", "route", "status"], registry=registry)
    registry.register(CaptionCollector(app))
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def timed(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")  # the template (/v1/images/{image_id}), not the raw path
        latency.labels(request.method, getattr(route, "path", "unmatched"), str(response.status_code)).observe(
            time.perf_counter() - start
        )
        return response

    app.include_router(router)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
