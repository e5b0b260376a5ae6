"""One table of every benchmark figure against its raw baseline, from `bench/results/*.json`.

    python -m bench summary     ->  bench/results/<UTC date>.json + bench/results/summary.md

`make bench` runs it last; run alone, it summarises whatever the results folder holds (each row
names its file, so a figure from an older run is visible as such).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
Row = tuple[str, str, str, str]  # figure, value, raw baseline, ratio


def _stack(d: dict) -> list[Row]:
    return [
        (
            "`lake up`, existing state",
            f"{d['lake_up_existing_state_s']} s",
            f"fresh state {d['lake_up_fresh_state_s']} s",
            f"{d['ratio_existing_vs_fresh']}x",
        ),
        ("stack idle memory (PSS)", f"{d['idle_memory_total_mib'] / 1024:.1f} GiB", "", ""),
    ]


def _ingest(d: dict) -> list[Row]:
    u, s = d["upload"], d["stream"]
    return [
        (
            f"API uploads ({u['bytes_each'] // 1000} KB, {u['concurrency']} clients)",
            f"{u['api_upload_per_s']}/s",
            f"raw MinIO PUT {u['raw_minio_put_per_s']}/s",
            f"{u['ratio_api_vs_raw']}x",
        ),
        (
            f"bronze stream ({s['events']:,} events)",
            f"{s['events_per_s']} events/s",
            f"{s['job_startup_s']} s Spark start",
            "",
        ),
    ]


def _normalize(d: dict) -> list[Row]:
    return [
        (
            f"silver normalize, {name}",
            f"{v['spark_images_s']} img/s",
            f"bare Pillow {v['bare_images_s']} img/s",
            f"{v['ratio']}x",
        )
        for name, v in d["sets"].items()
    ]


def _caption(d: dict) -> list[Row]:
    return [
        (
            f"Spark batch captioning ({d['images']:,} images, batch {d['batch_size']})",
            f"{d['spark_images_s']} img/s",
            f"bare generate {d['bare_images_s']} img/s",
            f"{d['ratio']}x",
        ),
        ("  the same, workers started", f"{d['spark_warm_images_s']} img/s", "", f"{d['warm_ratio']}x"),
        ("training (batch 32)", f"{d['training']['examples_per_s']} examples/s", "", ""),
    ]


def _blip2_gpu(d: dict) -> list[Row]:
    rows = []
    for mode in d.get("modes", []):
        best = max(
            (r for r in mode.get("rows", []) if r.get("images_per_s")), key=lambda r: r["images_per_s"], default=None
        )
        if best:
            rows.append(
                (
                    f"BLIP-2 3.7 B on {d['environment']['device']}, {mode['mode']}, batch {best['batch_size']}",
                    f"{best['images_per_s']} img/s",
                    f"{best['caption_ms']} ms per batch",
                    "",
                )
            )
    return rows


def _serving(d: dict) -> list[Row]:
    runs = {(r["mode"], r["clients"]): r for r in d["runs"]}
    rows = []
    for c, ratio in d["speedup"].items():
        b, one = runs["batched", int(c)], runs["batch1", int(c)]
        rows.append(
            (
                f"caption API, dynamic batching, {c} client{'s' * (c != '1')}, p50 / p99 ms",
                f"{b['images_per_s']} img/s, {b['p50_ms']:.0f} / {b['p99_ms']:.0f}",
                f"batch-1 {one['images_per_s']} img/s, {one['p50_ms']:.0f} / {one['p99_ms']:.0f}",
                f"{ratio}x",
            )
        )
    m = d["rss_mib"]
    rows.append(
        (
            "  API process RSS, compact model loaded",
            f"{m['model_loaded']:.0f} MiB",
            f"before the load {m['before_load']:.0f} MiB",
            "",
        )
    )
    return rows


def _search(d: dict) -> list[Row]:
    from lake.search_index import NPROBE  # what the API probes

    rows = []
    for r in d["runs"]:
        shown = [("smallest nprobe at the recall goal", r["chosen"])]
        shown += [("as the API serves it", c) for c in r["curve"] if c["nprobe"] == NPROBE != r["chosen"]["nprobe"]]
        for label, c in shown:
            rows.append(
                (
                    (
                        f"caption search, {r['vectors']:,} {d['data']['kind']} vectors, {label} (nprobe "
                        f"{c['nprobe']} of {r['n_lists']} lists, recall@{d['k']} {c['recall']})"
                    ),
                    f"{c['p50_ms']} ms p50",
                    f"brute force {r['brute_force']['p50_ms']} ms",
                    f"{round(r['brute_force']['p50_ms'] / c['p50_ms'], 1)}x",
                )
            )
    return rows


def _learning_loop(d: dict) -> list[Row]:
    c = d["cider"]
    return [
        (
            f"v2 (+{d['train']['v2']['new']:,} star images) vs v1 (no stars), star-slice CIDEr",
            f"{c['v2']['star']:.2f}",
            f"v1 {c['v1']['star']:.2f}",
            f"{d['star_ratio']:.2f}x",
        ),
        (
            "  the no-star slice (forgetting)",
            f"{c['v2']['no_star']:.2f}",
            f"v1 {c['v1']['no_star']:.2f}",
            f"{c['v2']['no_star'] / c['v1']['no_star']:.3f}x",
        ),
    ]


EXTRACT: dict[str, Callable[[dict], list[Row]]] = {
    "stack": _stack,
    "ingest": _ingest,
    "normalize": _normalize,
    "caption": _caption,
    "blip2_gpu": _blip2_gpu,
    "serving": _serving,
    "search": _search,
    "learning_loop": _learning_loop,
}


def collect(results: Path = RESULTS) -> dict[str, dict]:
    """The newest result of each benchmark (``<name>.json``), by name."""
    return {n: json.loads((results / f"{n}.json").read_text()) for n in EXTRACT if (results / f"{n}.json").is_file()}


def markdown(found: dict[str, dict]) -> str:
    lines = ["| bench | figure | value | raw baseline | ratio |", "|---|---|---|---|---|"]
    for name, data in found.items():
        try:
            rows = EXTRACT[name](data)
        except (KeyError, TypeError, ValueError) as e:  # an older file's shape: say so, do not stop
            rows = [(f"unreadable ({type(e).__name__}: {e})", "", "", "")]
        lines += [f"| {name} | {f} | {v} | {b} | {r} |" for f, v, b, r in rows]
    return "\n".join(lines) + "\n"


def main(results: Path = RESULTS) -> Path:
    found = collect(results)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    (results / f"{day}.json").write_text(json.dumps(found, indent=1) + "\n")
    (results / "summary.md").write_text(markdown(found))
    print(markdown(found))
    return results / "summary.md"


if __name__ == "__main__":
    main()
