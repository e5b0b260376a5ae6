"""`make demo`: the stack end to end on the embedded defaults.

For now: a Spark job writes a small Iceberg table to MinIO and Trino reads the same
rows back; a document written with pymongo is read through Trino's `catalog`. Later
issues grow this into the whole pipeline (ingest -> silver -> gold -> model -> API).

    lake up && lake demo
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from rich.console import Console
from rich.table import Table

from lake.clients import mongo_client, trino_query
from lake.config import get_settings

console = Console()


def run(rows: int = 1000) -> dict[str, float]:
    from spark_jobs.demo import hello_lake

    s = get_settings()
    timings: dict[str, float] = {}

    t = time.monotonic()
    with console.status("Spark: writing lake.demo.hello (Iceberg on MinIO)..."):
        written = hello_lake.main(rows)
    timings["spark write"] = time.monotonic() - t

    t = time.monotonic()
    (count, total), = trino_query("SELECT count(*), sum(square) FROM lake.demo.hello")
    expected = sum(i * i for i in range(rows))
    if (count, total) != (written, expected):
        raise SystemExit(f"Trino read {count} rows (sum {total}); Spark wrote {written} (sum {expected})")
    by_shape = trino_query("SELECT shape, count(*) FROM lake.demo.hello GROUP BY shape ORDER BY shape")
    timings["trino read"] = time.monotonic() - t

    t = time.monotonic()
    doc = {"_id": "demo", "written_at": datetime.now(timezone.utc).isoformat(), "rows": written}
    with mongo_client(s) as c:
        c[s.mongo_db].demo.replace_one({"_id": "demo"}, doc, upsert=True)
    got = trino_query(f"SELECT _id, written_at, \"rows\" FROM catalog.{s.mongo_db}.demo WHERE _id = ?", ["demo"])
    if got != [[doc["_id"], doc["written_at"], written]]:
        raise SystemExit(f"Trino saw {got} in catalog.{s.mongo_db}.demo; pymongo wrote {doc}")
    timings["mongo via trino"] = time.monotonic() - t

    table = Table(title="lake.demo.hello, read back through Trino")
    table.add_column("shape")
    table.add_column("rows", justify="right")
    for shape, n in by_shape:
        table.add_row(shape, str(n))
    console.print(table)
    console.print(f"[green]ok[/green]: Spark wrote {written} rows, Trino read {count} (sum {total}); "
                  f"pymongo document read through Trino catalog `catalog`.")
    console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return timings
