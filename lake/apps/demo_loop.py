"""`make demo`'s learning loop: the production model has never seen a star (docs/shapes.md's held-back
concept); star images with human captions arrive through the API; a gate drill (a candidate trained
on shuffled captions) is rejected; `lake model retrain` trains v2 from v1 on the stars plus a replay
sample, the promotion gate promotes it, the running API swaps to it within seconds and now says "star".

    lake demo                                   # steps 1-6, this is step 5
    python -c "from lake.apps.demo_loop import run; run(3000, 5.0)"      # on a lake whose production has no stars

Each retrain leaves ``gate.png`` (production vs candidate per slice) beside the candidate's report.
On a lake that already learned the stars (a second `make demo`), the retrain has nothing new and says so.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from lake.apps.reports import console, gate_table, outcome
from lake.apps.serving import ask_api, probes, upload_by_api, wait_served
from lake.config import get_settings

STAR_SEED = 2  # the star uploads (the first training set is seed 1, the demo images seed 0)


def upload_stars(n: int) -> dict:
    """``n`` star images (seed 2) with their human captions through POST /v1/images, landed in bronze and
    carried to gold (a new frozen data set)."""
    from lake.apps.layers import carry
    from lake.datasets.coco import load_sidecar
    from lake.datasets.shapes import write_dataset
    from spark_jobs.bronze import ingest_uploads

    folder = get_settings().state_dir / "demo" / "stars"
    marker = folder / f".complete-{n}"
    if not marker.is_file():
        write_dataset(folder, n, seed=STAR_SEED, star="only", overwrite=True, progress=False)
        marker.touch()
    t = time.monotonic()
    upload_by_api(sorted(folder.glob("shape_*")), load_sidecar(folder / "captions.json"), "demo-stars")
    uploaded_s = time.monotonic() - t
    ingest_uploads.main()
    carry()
    return {"images": n, "upload_s": uploaded_s}


def run(star_images: int = 3000, minutes: float = 5.0, drill_minutes: float = 1.5) -> dict:
    from lake.registry import Registry
    from lake.retrain import retrain
    from models.captioner.train import TrainConfig, progress_bar

    v1 = Registry.connect().get("production")["_id"]
    wait_served(v1)
    probe = probes()
    before = ask_api(probe)
    with console.status(f"Learning loop: {star_images} star images with captions through the API -> gold..."):
        stars = upload_stars(star_images)
    console.print(f"Gate drill: a candidate trained {drill_minutes:g} min on the same examples, captions shuffled...")
    with progress_bar(console) as report:
        drill = retrain(min_new=100, config=TrainConfig(minutes=drill_minutes, lr=2e-4), drill=True, progress=report)
    console.print(f"Retrain: {v1} warm-started on the new examples + replay for {minutes:g} min...")
    with progress_bar(console) as report:
        out = retrain(min_new=100, config=TrainConfig(minutes=minutes, lr=2e-4), progress=report)
    swap_s = wait_served(out["candidate"]) if out["status"] == "promoted" else None
    after = ask_api(probe)
    return {
        "v1": v1,
        "stars": stars,
        "drill": drill,
        "retrain": out,
        "swap_s": swap_s,
        "probes": [
            (p[2], b["caption"], b["model_version"], a["caption"], a["model_version"])
            for p, b, a in zip(probe, before, after)
        ],
    }


def print_summary(loop: dict, out: Console | None = None) -> None:
    out = out or console
    drill, ret = loop["drill"], loop["retrain"]
    if ret["status"] == "nothing to do":
        out.print(f"learning loop: {ret['message']} (the stars were learned by an earlier run)")
        return
    out.print(gate_table(ret, drill))
    out.print(f"gate drill: {outcome(drill, most=2)} (the table's drill column)")
    out.print(f"retrain ({ret['new_examples']} new + {ret['replay_examples']} replayed examples): {outcome(ret)}")
    if loop["swap_s"] is not None:
        out.print(
            f"the running API serves {ret['candidate']} {loop['swap_s']:.1f} s after the retrain returned "
            "(its last step announces the promotion on models.promoted)"
        )
    probes_t = Table(title="star images the lake never saw, captioned by the running API before and after")
    for col in ("human caption", "before", "after"):
        probes_t.add_column(col)
    for ref, b, bv, a, av in loop["probes"]:
        probes_t.add_row(ref, f"{b} ({bv})", f"{a} ({av})")
    out.print(probes_t)
    out.print(f"v1 vs v2 per slice: {ret['chart']}")
    if ret["status"] != "promoted" or drill["status"] != "drill passed":
        out.print(
            "[yellow]warning[/yellow]: the loop did not go as designed (v2 promoted, drill rejected): was "
            "the CPU shared while training? `lake model retrain --steps 3300 --minutes 0` trains a fixed "
            "number of steps"
        )
