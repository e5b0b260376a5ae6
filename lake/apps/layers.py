"""The medallion layers at a glance, and one call that carries bronze through silver to gold.

from lake.apps.layers import status, carry
status()        # {"counts": {...}, "lag": {...}, "runs": [...]}
carry()         # silver then gold in one Spark session: {"silver": {...}, "gold": {...}}
"""

from __future__ import annotations

from typing import Any

from lake.config import Settings, get_settings
from lake.tables import Tables

JOBS = ("silver.normalize_images", "gold.build")


ORDER = (
    "bronze events",
    "bronze images",
    "rejected events",
    "silver images",
    "quarantined images",
    "gold training examples",
    "gold model captions",
)


def lag_sql(t: Tables) -> str:
    """Images bronze has that silver has neither normalized nor quarantined."""
    return f"""
        SELECT count(DISTINCT e.image_id) FROM {t.events} e
        WHERE NOT EXISTS (SELECT 1 FROM {t.silver} s WHERE s.image_id = e.image_id)
          AND NOT EXISTS (SELECT 1 FROM {t.quarantine} q WHERE q.image_id = e.image_id)"""


def status(s: Settings | None = None) -> dict[str, Any]:
    from trino.exceptions import TrinoUserError

    from lake.catalog import Catalog
    from lake.clients import trino_query
    from spark_jobs.gold.build_gold import views

    s = s or get_settings()
    out: dict[str, Any] = {"counts": {}, "lag": {}, "runs": [], "problems": []}
    try:
        # the layer_counts view's own SELECT, so it works before gold has created the view
        got = dict(trino_query(views(s.tables)["layer_counts"], s=s))
        out["counts"] = {name: got[name] for name in ORDER}
        ((lag,),) = trino_query(lag_sql(s.tables), s=s)
        out["lag"] = {"images_waiting_for_silver": lag}
    except TrinoUserError as e:  # a fresh lake: the jobs create their tables on first run
        out["problems"].append(f"tables missing ({e.message}); run `lake layers run`")
    cat = Catalog.connect(s)
    for job in JOBS:
        last = cat.last_run(job, status=None)
        if last:
            out["runs"].append(
                {k: last.get(k) for k in ("job", "status", "started_at", "duration_s", "counts", "error", "_id")}
            )
    return out


def carry(silver: bool = True, gold: bool = True, max_side: int = 384) -> dict[str, dict[str, int]]:
    """Bronze -> silver -> gold in one Spark session (what `lake layers run` and the DAG do)."""
    from lake.spark import spark_session, stop_session
    from spark_jobs.gold import build_gold
    from spark_jobs.silver import normalize_images

    s = get_settings()
    spark = spark_session("lake-layers", **{"spark.sql.execution.arrow.maxRecordsPerBatch": "32"})
    result: dict[str, dict[str, int]] = {}
    try:
        if silver:
            result["silver"] = normalize_images.run(spark, max_side=max_side, max_pixels=s.max_image_pixels)
        if gold:
            result["gold"] = build_gold.run(spark)
    finally:
        stop_session(spark)
    return result
