"""Capacity planning: cores, GPUs, brokers and nodes per stage, storage and bandwidth for a
workload, from measured per-core figures (bench/results/*.json) or documented defaults.

    from lake.apps.capacity import Figures, Workload, plan
    p = plan(Workload(), Figures.measured(), gpu_latency_ms=2.56)
    p.uploads_s                                   # 11,574/s: 100 M users x 10 uploads a day
    [(s.name, s.need_peak, s.unit) for s in p.stages]

    lake capacity [--json]                        # the same as a table (lake/cli/capacity.py)

Pure arithmetic over two inputs; the only I/O is Figures.measured() reading the bench
results. Units are decimal (1 KB = 1,000 bytes, 1 TB = 1e12 bytes), as in the seed
figures (11,574 uploads/s x 250 KB = 2.89 GB/s); a month is 30 days.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lake.config import REPO_ROOT

DAY_S = 86_400
MONTH_DAYS = 30
CAPTION_KB = 0.2  # one gold.captions row: ids, model version, ~100 characters of text
RESULTS = REPO_ROOT / "bench" / "results"


class Workload(BaseModel):
    """What the platform must carry; the defaults are the seed question. Fields: users (int,
    100 M), uploads_per_user_day (10), image_kb (250), index_overhead (0.25: search index
    bytes per raw image byte, the seed's +25%), peak_factor (2.5: busiest hour over the
    daily average, 2-3x for a consumer app), utilisation (0.7: target busy fraction of a
    core, GPU, broker or NIC), storage_overhead (16/12: MinIO erasure coding EC:4 on a
    16-drive set), kafka_replication (3), kafka_retention_days (7: Kafka's default 168 h),
    inline_fraction (0: uploads whose bytes ride on Kafka base64-inline instead of going
    through the API as a claim-check), trino_scans_per_day (24: times each day's metadata
    is scanned, e.g. an hourly dashboard)."""

    model_config = ConfigDict(frozen=True)

    users: int = Field(100_000_000, gt=0)
    uploads_per_user_day: float = Field(10, gt=0)
    image_kb: float = Field(250, gt=0)
    index_overhead: float = Field(0.25, ge=0)
    peak_factor: float = Field(2.5, ge=1)
    utilisation: float = Field(0.7, gt=0, le=1)
    storage_overhead: float = Field(16 / 12, ge=1)
    kafka_replication: int = Field(3, ge=1)
    kafka_retention_days: float = Field(7, gt=0)
    inline_fraction: float = Field(0.0, ge=0, le=1)
    trino_scans_per_day: float = Field(24, ge=0)


class Figure(BaseModel):
    """One number and where it came from: "measured: <file> ..." or "assumed: <why>"."""

    model_config = ConfigDict(frozen=True)
    value: float
    source: str


def _assumed(value: float, why: str) -> Figure:
    return Figure(value=value, source=f"assumed: {why}")


class Figures(BaseModel):
    """Per-unit rates and sizes. ``Figures()`` is every documented default;
    ``Figures.measured()`` replaces what bench/results/*.json measured."""

    model_config = ConfigDict(frozen=True)

    api_uploads_s_core: Figure = _assumed(100, "FastAPI upload handler, about 1/5 of a raw object-store PUT")
    minio_puts_s_core: Figure = _assumed(500, "MinIO PUTs of small objects per core")
    stream_events_s_core: Figure = _assumed(300, "Spark Structured Streaming landing events in bronze")
    normalize_images_s_core: Figure = _assumed(50, "Spark + Pillow decode/orient/resize of a ~1 MP JPEG")
    silver_size_ratio: Figure = _assumed(
        0.12,
        "silver JPEG (384 px, q90, ~30 KB) / upload; lake.normalize "
        "gives 0.096 on bench/normalize.py's 330 KB 1024x768 JPEGs",
    )
    caption_cpu_images_s_core: Figure = _assumed(
        150, "compact BLIP-2 (64 px, 1.4 M params), ~300 img/s greedy batch 64 on 2 cores (models/captioner/README.md)"
    )
    gpu_latency_ms: Figure = _assumed(2.56, "the seed design: one BLIP-2 query on an A100")
    gpu_batch: Figure = _assumed(1, "the seed's figure is per query")
    index_docs_s_core: Figure = _assumed(2000, "search indexer writing ~1 KB caption+metadata documents")
    trino_scan_mb_s_core: Figure = _assumed(100, "Trino scanning Parquet on object storage")
    broker_mb_s: Figure = _assumed(200, "Kafka broker write budget (disk/NIC), replica traffic included")
    broker_disk_tb: Figure = _assumed(24, "Kafka broker log disk")
    node_cores: Figure = _assumed(32, "cores per compute node")
    node_disk_tb: Figure = _assumed(240, "object-store node: 12 x 20 TB drives")
    node_nic_gbit: Figure = _assumed(25, "NIC per node, Gbit/s")
    gpus_per_node: Figure = _assumed(8, "GPUs per GPU node")
    metadata_kb: Figure = _assumed(2, "per upload: bronze event + silver + caption rows (Parquet) + catalog doc")
    event_kb: Figure = _assumed(1, "a claim-check images.uploaded event (JSON, no image bytes)")

    @classmethod
    def measured(cls, results: Path = RESULTS, image_kb: float = 250) -> Figures:
        """Defaults, replaced by per-core figures from ``results`` where its files have them (each
        rate divided by the cores the bench recorded). For normalize, the image set nearest
        ``image_kb`` in size is used. Missing, unreadable or partial files keep the defaults."""
        got: dict[str, Figure] = {}

        def where(file: str) -> str:
            return f"bench/results/{file}" if results == RESULTS else str(results / file)

        ingest, name = _read(results / "ingest.json"), where("ingest.json")
        cores = _cores(ingest)
        if cores:
            size = _num(ingest, "upload", "bytes_each")
            at = f" ({size / 1000:.0f} KB images)" if size else ""
            if api := _num(ingest, "upload", "api_upload_per_s"):
                got["api_uploads_s_core"] = _measured(
                    api / cores, f"{name} upload.api_upload_per_s {api:g} / {cores:g} cores{at}"
                )
            if put := _num(ingest, "upload", "raw_minio_put_per_s"):
                got["minio_puts_s_core"] = _measured(
                    put / cores, f"{name} upload.raw_minio_put_per_s {put:g} / {cores:g} cores{at}"
                )
            if ev := _num(ingest, "stream", "events_per_s"):
                busy = _num(ingest, "stream", "cpu_utilisation_while_landing") or 1.0
                got["stream_events_s_core"] = _measured(
                    ev / (cores * busy), f"{name} stream.events_per_s {ev:g} / ({cores:g} cores x {busy:g} busy)"
                )
        norm, name = _read(results / "normalize.json"), where("normalize.json")
        cores, n = _cores(norm), _num(norm, "images")
        sets = {k: v for k, v in _dict(norm.get("sets")).items() if isinstance(v, dict) and _num(v, "input_mib")}
        if cores and n and sets:
            kb = {k: v["input_mib"] * 2**20 / n / 1000 for k, v in sets.items()}
            key = min(sets, key=lambda k: abs(math.log(kb[k] / image_kb)))
            s = sets[key]
            if rate := _num(s, "spark_images_s") or _num(s, "bare_images_s"):
                field = "spark_images_s" if _num(s, "spark_images_s") else "bare_images_s"
                got["normalize_images_s_core"] = _measured(
                    rate / cores, f"{name} '{key}' ({kb[key]:.0f} KB each) {field} {rate:g} / {cores:g} cores"
                )
            if out := _num(s, "output_mib"):
                got["silver_size_ratio"] = _measured(out / s["input_mib"], f"{name} '{key}' output_mib / input_mib")
        cap, name = _read(results / "caption.json"), where("caption.json")
        cores = _cores(cap)
        field = "spark_images_s" if _num(cap, "spark_images_s") else "bare_images_s"
        if cores and (rate := _num(cap, field)):
            got["caption_cpu_images_s_core"] = _measured(rate / cores, f"{name} {field} {rate:g} / {cores:g} cores")
        gpu, name = _read(results / "blip2_gpu.json"), where("blip2_gpu.json")
        device = _dict(gpu.get("environment")).get("device")
        rows = [
            (m.get("mode"), r)
            for m in gpu.get("modes") or []
            if isinstance(m, dict) and m.get("status") == "ok"
            for r in m.get("rows") or []
            if _num(r, "caption_ms") and _num(r, "batch_size")
        ]
        if rows and not gpu.get("tiny") and device not in (None, "cpu"):  # the CPU stand-in is no GPU figure
            mode, best = max(rows, key=lambda mr: mr[1]["batch_size"] / mr[1]["caption_ms"])
            got["gpu_latency_ms"] = _measured(
                best["caption_ms"],
                f"{name} {mode}, batch {best['batch_size']} on {device}: caption_ms (the best images/s)",
            )
            got["gpu_batch"] = _measured(best["batch_size"], name)
        return cls(**got)


def _measured(value: float, how: str) -> Figure:
    return Figure(value=value, source=f"measured: {how}")


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _num(d: dict, *keys: str) -> float | None:
    """d[k1][k2]... as a positive number, else None."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) and d > 0 else None


def _cores(d: dict) -> float | None:
    return _num(d, "cores") or _num(d, "cpus") or _num(d, "machine", "cpus")


class Stage(BaseModel):
    """One stage at the daily average and at peak: its load, the rate one unit sustains, how
    many units it needs at the target utilisation, the nodes at peak, and its network
    traffic at the average (MB/s in and out)."""

    name: str
    load_unit: str
    load_avg: float
    load_peak: float
    rate: float
    unit: str
    need_avg: int
    need_peak: int
    nodes_peak: int
    in_mb_s: float
    out_mb_s: float
    note: str = ""


class Storage(BaseModel):
    """Bytes added per day and per month, in TB, before and after replication."""

    name: str
    tb_day: float
    tb_month: float
    note: str = ""


class Plan(BaseModel):
    """What ``plan()`` answers; ``model_dump_json()`` is `lake capacity --json`."""

    workload: Workload
    uploads_s: float
    uploads_s_peak: float
    ingress_gb_s: float
    ingress_gb_s_peak: float
    stages: list[Stage]
    storage: list[Storage]
    storage_nodes_per_month: int
    kafka_retained_tb: float
    totals: dict[str, int]
    figures: dict[str, Figure]


def _need(load: float, rate: float, utilisation: float) -> int:
    return math.ceil(load / (rate * utilisation) - 1e-9) if load > 0 else 0


def plan(
    workload: Workload, figures: Figures, gpu_latency_ms: float | None = None, gpu_batch: int | None = None
) -> Plan:
    """Every stage's needs for ``workload`` at ``figures``' rates. ``gpu_latency_ms`` is the time of
    one BLIP-2 generate over ``gpu_batch`` images (default: the figures', i.e. 1 image)."""
    w, f = workload, figures
    if gpu_latency_ms is not None:
        f = f.model_copy(update={"gpu_latency_ms": Figure(value=gpu_latency_ms, source="given: --gpu-latency-ms")})
    if gpu_batch is not None:
        f = f.model_copy(update={"gpu_batch": Figure(value=gpu_batch, source="given: --gpu-batch")})
    v = {k: fig.value for k, fig in f}
    u = w.users * w.uploads_per_user_day / DAY_S
    peak, util, img = w.peak_factor, w.utilisation, w.image_kb / 1000  # img in MB
    silver, meta, event = img * v["silver_size_ratio"], v["metadata_kb"] / 1000, v["event_kb"] / 1000
    node_mb_s = v["node_nic_gbit"] * 1000 / 8
    stages: list[Stage] = []

    def add(
        name, load_unit, load, rate, unit="cores", per_node=v["node_cores"], in_mb=0.0, out_mb=0.0, note="", floor=0
    ):
        need_avg, need_peak = _need(load, rate, util), _need(load * peak, rate, util)
        stages.append(
            Stage(
                name=name,
                load_unit=load_unit,
                load_avg=load,
                load_peak=load * peak,
                rate=rate,
                unit=unit,
                need_avg=max(need_avg, floor),
                need_peak=max(need_peak, floor),
                nodes_peak=math.ceil(max(need_peak, floor) / per_node),
                in_mb_s=in_mb,
                out_mb_s=out_mb,
                note=note,
            )
        )

    api = u * (1 - w.inline_fraction)
    add(
        "upload API",
        "uploads/s",
        api,
        v["api_uploads_s_core"],
        in_mb=api * img,
        out_mb=api * (img + event),
        note="sniffs, hashes and PUTs each upload to bronze, then publishes its event",
    )
    kafka_in = u * (event + w.inline_fraction * img * 4 / 3)  # base64 is 4/3 of the bytes
    rf = w.kafka_replication
    retained = kafka_in * DAY_S * w.kafka_retention_days * rf / 1e6  # TB
    by_disk = math.ceil(retained / (v["broker_disk_tb"] * util))
    add(
        "Kafka brokers",
        "MB/s x RF",
        kafka_in * rf,
        v["broker_mb_s"],
        unit="brokers",
        per_node=1,
        in_mb=kafka_in,
        out_mb=kafka_in * rf,
        floor=max(rf, by_disk),
        note=f"RF {rf}, {w.kafka_retention_days:g} days kept ({retained:,.1f} TB, {by_disk:,} brokers' disks); "
        "out: replicas + one consumer",
    )
    add(
        "bronze stream",
        "events/s",
        u,
        v["stream_events_s_core"],
        in_mb=kafka_in,
        out_mb=u * (event + w.inline_fraction * img),
        note="Kafka -> bronze objects and the bronze upload_events table",
    )
    writes = (img + silver + meta) * w.storage_overhead
    add(
        "object store",
        "PUT/s",
        u * 2,
        v["minio_puts_s_core"],
        in_mb=u * writes,
        out_mb=u * (img + silver),
        note="a bronze and a silver object per upload; disk nodes under storage",
    )
    add(
        "silver normalize",
        "images/s",
        u,
        v["normalize_images_s_core"],
        in_mb=u * img,
        out_mb=u * silver,
        note="a batch job: may run at the average rate and catch up after the peak",
    )
    add(
        "captioning, CPU",
        "images/s",
        u,
        v["caption_cpu_images_s_core"],
        in_mb=u * silver,
        out_mb=u * CAPTION_KB / 1000,
        note="the compact model; a real BLIP-2 on CPU is orders of magnitude slower",
    )
    gpu_rate = v["gpu_batch"] * 1000 / v["gpu_latency_ms"]
    add(
        "captioning, GPU",
        "images/s",
        u,
        gpu_rate,
        unit="GPUs",
        per_node=v["gpus_per_node"],
        in_mb=u * silver,
        out_mb=u * CAPTION_KB / 1000,
        note=f"BLIP-2, {v['gpu_latency_ms']:g} ms per batch of {v['gpu_batch']:g}",
    )
    add(
        "search index",
        "docs/s",
        u,
        v["index_docs_s_core"],
        in_mb=u * meta,
        out_mb=u * img * w.index_overhead,
        note=f"index bytes +{w.index_overhead:.0%} of the raw bytes",
    )
    scan = u * meta * w.trino_scans_per_day
    add(
        "Trino",
        "MB/s scanned",
        scan,
        v["trino_scan_mb_s_core"],
        in_mb=scan,
        out_mb=0.0,
        note=f"each day's metadata scanned {w.trino_scans_per_day:g} times",
    )

    day = u * DAY_S / 1e6  # MB/upload x uploads/day -> TB/day
    logical = [
        ("bronze raw", img, "uploads as sent"),
        ("silver normalized", silver, f"{v['silver_size_ratio']:.3f} x raw"),
        ("gold + catalog metadata", meta, f"{v['metadata_kb']:g} KB per upload"),
        ("search index", img * w.index_overhead, f"+{w.index_overhead:.0%} of raw (the seed)"),
    ]
    storage = [Storage(name=n, tb_day=mb * day, tb_month=mb * day * MONTH_DAYS, note=note) for n, mb, note in logical]
    total = sum(s.tb_day for s in storage)
    storage.append(Storage(name="total logical", tb_day=total, tb_month=total * MONTH_DAYS))
    stored = total * w.storage_overhead
    storage.append(
        Storage(
            name="total on disk",
            tb_day=stored,
            tb_month=stored * MONTH_DAYS,
            note=f"x{w.storage_overhead:.2f} erasure coding",
        )
    )
    store = next(s for s in stages if s.name == "object store")
    nic_nodes = _need((store.in_mb_s + store.out_mb_s) * peak, node_mb_s, util)
    stages[stages.index(store)] = store.model_copy(update={"nodes_peak": max(store.nodes_peak, nic_nodes)})
    cpu = [s for s in stages if s.unit == "cores" and s.name != "captioning, CPU"]
    totals = {
        "cores_peak_gpu_captioning": sum(s.need_peak for s in cpu),
        "cores_peak_cpu_captioning": sum(s.need_peak for s in stages if s.unit == "cores"),
        "gpus_peak": sum(s.need_peak for s in stages if s.unit == "GPUs"),
        "brokers": sum(s.need_peak for s in stages if s.unit == "brokers"),
        "nodes_peak_gpu_captioning": sum(s.nodes_peak for s in stages if s.name != "captioning, CPU"),
    }
    return Plan(
        workload=w,
        uploads_s=u,
        uploads_s_peak=u * peak,
        ingress_gb_s=u * img / 1000,
        ingress_gb_s_peak=u * img * peak / 1000,
        stages=stages,
        storage=storage,
        storage_nodes_per_month=math.ceil(stored * MONTH_DAYS / (v["node_disk_tb"] * util)),
        kafka_retained_tb=retained,
        totals=totals,
        figures=dict(f),
    )
