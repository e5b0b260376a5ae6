"""Stack start-up time and idle memory.

Measures, in one process, on the bench's own stack (`lake env bench`; never the user's lake),
`lake up` from a fresh state dir (servers installed, cache warm: the first `make demo` on a machine
that has run it before) against `lake up`
over existing state (every later `make demo`), then the idle memory (PSS) of each
server after a settle period, and the demo's own timings.

    python -m bench stack   ->  bench/results/stack.json
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra import stack
from lake.config import get_settings

RESULTS = Path(__file__).parent / "results"
console = Console()


def _timed_up(s) -> float:
    t = time.monotonic()
    stack.up(s)
    return time.monotonic() - t


def main(settle_s: float = 30.0) -> dict:
    from lake.apps import demo

    s = get_settings()
    if s.is_user_lake:  # it wipes the state dir it runs on: only ever the bench's own (`make bench`)
        raise SystemExit('error: the stack benchmark runs on its own stack: `make bench`, or eval "$(lake env bench)"')
    stack.down(s)
    # Fresh state: wipe data, logs and app metadata (not the venvs or the download cache).
    for sub in ("airflow", "conf", "data", "logs", "run", "superset", "postgres"):
        shutil.rmtree(s.state_dir / sub, ignore_errors=True)
    fresh = _timed_up(s)
    stack.down(s)
    warm = _timed_up(s)
    time.sleep(settle_s)
    rows = stack.status(s)
    demo_t = demo.run(1000)
    mem = {r.name: round(r.mem_mb, 1) for r in rows}
    result = {
        "when": time.strftime("%FT%TZ", time.gmtime()),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "lake_up_fresh_state_s": round(fresh, 1),
        "lake_up_existing_state_s": round(warm, 1),
        "ratio_existing_vs_fresh": round(warm / fresh, 2),
        "idle_memory_pss_mib": mem,
        "idle_memory_total_mib": round(sum(mem.values()), 1),
        "demo_s": {k: round(v, 1) for k, v in demo_t.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stack.json").write_text(json.dumps(result, indent=2) + "\n")
    t = Table(title="bench: stack")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("lake up, fresh state", f"{fresh:.1f} s")
    t.add_row("lake up, existing state (second make demo)", f"{warm:.1f} s  ({warm / fresh:.2f}x of fresh)")
    for name, mb in mem.items():
        t.add_row(f"idle PSS {name}", f"{mb:.0f} MiB")
    t.add_row("idle PSS, whole stack", f"{result['idle_memory_total_mib']:.0f} MiB")
    console.print(t)
    return result
