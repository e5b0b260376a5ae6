"""lake.apps.capacity: the capacity calculator's arithmetic and where its figures come from (no servers).

.lake/venvs/core/bin/python -m pytest tests/lake/test_capacity.py -q
"""

from __future__ import annotations

import json
import math

import pytest

from lake.apps.capacity import RESULTS, Figure, Figures, Workload, plan


def stage(p, name):
    return next(s for s in p.stages if s.name == name)


def write(folder, name, data):
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))


INGEST = {
    "cpus": 2,
    "upload": {"bytes_each": 15692, "raw_minio_put_per_s": 1040.3, "api_upload_per_s": 234.3},
    "stream": {"events_per_s": 566.9, "cpu_utilisation_while_landing": 0.69},
}
NORMALIZE = {
    "cores": 2,
    "images": 1000,
    "sets": {
        "shapes 128x128": {"input_mib": 7.6, "bare_images_s": 1729.6, "spark_images_s": 341.5},
        "1024x768 JPEG": {"input_mib": 313.7, "bare_images_s": 140.0, "spark_images_s": 99.1},
    },
}


def test_the_seed_numbers():
    p = plan(Workload(), Figures())
    assert round(p.uploads_s) == 11_574  # 100e6 * 10 / 86,400
    assert p.ingress_gb_s == pytest.approx(2.894, abs=1e-3)  # 11,574 * 250 KB
    assert p.uploads_s_peak == pytest.approx(p.uploads_s * 2.5)
    tb = {s.name: s for s in p.storage}
    assert tb["bronze raw"].tb_day == pytest.approx(250)  # 1e9 uploads x 250 KB
    assert tb["search index"].tb_day == pytest.approx(62.5)  # +25%
    assert tb["bronze raw"].tb_month == pytest.approx(7500)
    assert tb["total on disk"].tb_day == pytest.approx(tb["total logical"].tb_day * 16 / 12)


def test_units_are_ceilinged_at_the_target_utilisation():
    f = Figures(api_uploads_s_core=Figure(value=100, source="test"))
    exact = Workload(users=70 * 86_400, uploads_per_user_day=10, peak_factor=2)  # 700 uploads/s
    api = stage(plan(exact, f), "upload API")
    assert (api.need_avg, api.need_peak) == (10, 20)  # 700 / (100 x 0.7)
    more = stage(plan(exact.model_copy(update={"users": exact.users + 8_640}), f), "upload API")  # 701/s
    assert more.need_avg == 11
    idle = stage(plan(exact.model_copy(update={"utilisation": 1.0}), f), "upload API")
    assert idle.need_avg == 7


def test_loads_and_storage_scale_linearly_with_users():
    f = Figures()
    one, two = plan(Workload(users=10_000_000), f), plan(Workload(users=20_000_000), f)
    assert two.uploads_s == pytest.approx(2 * one.uploads_s)
    for a, b in zip(one.stages, two.stages, strict=True):
        assert b.load_avg == pytest.approx(2 * a.load_avg)
        assert b.in_mb_s == pytest.approx(2 * a.in_mb_s)
        if a.name != "Kafka brokers":  # floored at the replication factor
            assert 2 * a.need_peak - 1 <= b.need_peak <= 2 * a.need_peak
    for a, b in zip(one.storage, two.storage, strict=True):
        assert b.tb_month == pytest.approx(2 * a.tb_month)


def test_gpu_path_against_cpu_path():
    p = plan(Workload(), Figures())
    gpu, cpu = stage(p, "captioning, GPU"), stage(p, "captioning, CPU")
    assert gpu.unit == "GPUs" and cpu.unit == "cores"
    assert gpu.rate == pytest.approx(1000 / 2.56)  # the seed's A100 figure, per query
    assert gpu.need_avg == math.ceil(p.uploads_s / (1000 / 2.56 * 0.7))
    assert gpu.nodes_peak == math.ceil(gpu.need_peak / 8)
    assert p.totals["gpus_peak"] == gpu.need_peak
    assert p.totals["cores_peak_cpu_captioning"] - p.totals["cores_peak_gpu_captioning"] == cpu.need_peak
    batched = plan(Workload(), Figures(), gpu_latency_ms=80, gpu_batch=32)
    assert stage(batched, "captioning, GPU").rate == pytest.approx(400)
    assert batched.figures["gpu_latency_ms"].source == "given: --gpu-latency-ms"
    slower = stage(plan(Workload(), Figures(), gpu_latency_ms=25.6), "captioning, GPU")
    assert slower.need_avg >= 10 * gpu.need_avg - 10


def test_kafka_brokers_follow_inline_bytes():
    claim = stage(plan(Workload(), Figures()), "Kafka brokers")
    assert claim.need_peak == 3  # small events: the replication factor is the floor
    inline = stage(plan(Workload(inline_fraction=1.0), Figures()), "Kafka brokers")
    written = 11_574.07 * (0.001 + 0.25 * 4 / 3) * 3  # MB/s: base64 is 4/3 of the bytes, RF 3
    by_throughput = math.ceil(written * 2.5 / (200 * 0.7))  # at peak, 200 MB/s per broker, 70% busy
    by_disk = math.ceil(written * 86_400 * 7 / 1e6 / (24 * 0.7))  # 7 days kept on 24 TB brokers
    assert by_disk > by_throughput
    assert inline.need_peak == by_disk
    assert stage(plan(Workload(inline_fraction=1.0), Figures()), "upload API").load_avg == 0


def test_figures_from_bench_results(tmp_path):
    write(tmp_path, "ingest.json", INGEST)
    write(tmp_path, "normalize.json", NORMALIZE)
    f = Figures.measured(tmp_path)
    assert f.api_uploads_s_core.value == pytest.approx(117.15)
    assert f.api_uploads_s_core.source.startswith(f"measured: {tmp_path / 'ingest.json'} upload.api_upload_per_s")
    assert f.minio_puts_s_core.value == pytest.approx(520.15)
    assert f.stream_events_s_core.value == pytest.approx(566.9 / (2 * 0.69))
    assert f.normalize_images_s_core.value == pytest.approx(49.55)  # the set nearest 250 KB
    assert "1024x768" in f.normalize_images_s_core.source
    assert Figures.measured(tmp_path, image_kb=8).normalize_images_s_core.value == pytest.approx(170.75)
    for name in ("caption_cpu_images_s_core", "gpu_latency_ms", "silver_size_ratio", "trino_scan_mb_s_core"):
        assert getattr(f, name).source.startswith("assumed: "), name


def test_missing_partial_and_broken_files_fall_back(tmp_path):
    assert Figures.measured(tmp_path) == Figures()
    write(tmp_path, "ingest.json", {"cpus": 2, "upload": {"api_upload_per_s": 200}})  # no stream, no PUT figure
    write(tmp_path, "normalize.json", "{not json")
    write(tmp_path, "caption.json", {"bare_images_s": 300})  # no cores: cannot divide
    write(tmp_path, "blip2_gpu.json", [1, 2])
    f = Figures.measured(tmp_path)
    assert f.api_uploads_s_core.value == 100 and f.api_uploads_s_core.source.startswith("measured")
    assert f.stream_events_s_core == Figures().stream_events_s_core
    assert f.minio_puts_s_core == Figures().minio_puts_s_core
    assert f.normalize_images_s_core == Figures().normalize_images_s_core
    assert f.caption_cpu_images_s_core == Figures().caption_cpu_images_s_core
    assert f.gpu_latency_ms == Figures().gpu_latency_ms
    wrong = {"cores": 2, "images": 5, "sets": [1], "environment": "x", "modes": [{"status": "ok", "rows": [None]}]}
    for name in ("ingest.json", "normalize.json", "caption.json", "blip2_gpu.json"):  # right JSON, wrong shapes
        write(tmp_path, name, wrong)
    assert Figures.measured(tmp_path) == Figures()


def test_caption_and_gpu_files_when_they_appear(tmp_path):
    write(tmp_path, "caption.json", {"cores": 4, "bare_images_s": 800, "spark_images_s": 600})
    rows = [
        {"batch_size": 1, "caption_ms": 50.0},
        {"batch_size": 16, "caption_ms": 20.0},
        {"batch_size": 64, "error": "OutOfMemoryError"},
    ]
    gpu = {
        "tiny": False,
        "environment": {"device": "NVIDIA H100 80GB HBM3"},
        "modes": [{"mode": "fp16", "status": "ok", "rows": rows}, {"mode": "fp16+8bit", "status": "error", "rows": []}],
    }
    write(tmp_path, "blip2_gpu.json", gpu)
    write(
        tmp_path,
        "normalize.json",
        {"cores": 2, "images": 10, "sets": {"a": {"input_mib": 2.0, "output_mib": 0.25, "spark_images_s": 10}}},
    )
    f = Figures.measured(tmp_path)
    assert f.caption_cpu_images_s_core.value == 150 and "spark_images_s" in f.caption_cpu_images_s_core.source
    assert f.gpu_latency_ms.value == pytest.approx(20) and "fp16, batch 16 on NVIDIA H100" in f.gpu_latency_ms.source
    assert f.gpu_batch.value == 16
    assert f.silver_size_ratio.value == pytest.approx(0.125)
    assert stage(plan(Workload(), f), "captioning, GPU").rate == pytest.approx(800)
    write(tmp_path, "blip2_gpu.json", gpu | {"environment": {"device": "cpu"}})  # the --tiny stand-in
    assert Figures.measured(tmp_path).gpu_latency_ms == Figures().gpu_latency_ms


@pytest.mark.skipif(not (RESULTS / "ingest.json").exists(), reason="no bench results in this checkout")
def test_the_checked_in_bench_results_are_read():
    assert Figures.measured().api_uploads_s_core.source.startswith("measured: bench/results/ingest.json ")
