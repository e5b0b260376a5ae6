"""Iceberg helpers the Spark jobs share: snapshots as watermarks, incremental reads, and
MERGEs that commit only when something changed (a re-run must not add empty snapshots).

    snap = current_snapshot(spark, "lake.bronze.upload_events")
    new = read_appended(spark, "lake.bronze.upload_events", since=last_watermark, until=snap)
    n = merge_changed(spark, changed_df, "lake.gold.ingest_daily", keys=["day", "source"])
"""

from __future__ import annotations

import structlog
from pyspark.sql import DataFrame, SparkSession

log = structlog.get_logger("lake.iceberg")


def current_snapshot(spark: SparkSession, table: str) -> int | None:
    """The table's current snapshot id; None for a table never written."""
    rows = (
        spark.table(f"{table}.history")
        .where("is_current_ancestor")
        .orderBy("made_current_at", ascending=False)
        .limit(1)
        .collect()
    )
    return int(rows[0].snapshot_id) if rows else None


def read_appended(spark: SparkSession, table: str, since: int | None, until: int) -> DataFrame:
    """Rows appended after snapshot ``since`` up to ``until`` (all rows as of ``until`` when
    ``since`` is None). Falls back to the whole table as of ``until`` when ``since`` is no
    longer an ancestor (expired snapshots): callers' MERGEs are idempotent, so this is only slower."""
    reader = spark.read.format("iceberg")
    if since is None or since == until:
        df = reader.option("versionAsOf", until).load(table)
        return df.limit(0) if since == until else df
    ancestors = {
        r.snapshot_id
        for r in spark.table(f"{table}.history").where("is_current_ancestor").select("snapshot_id").collect()
    }
    if since not in ancestors:  # expired, rolled back, or the table was recreated
        log.warning("watermark is not an ancestor; reading the whole snapshot", table=table, since=since)
        return reader.option("versionAsOf", until).load(table)
    return reader.option("start-snapshot-id", since).option("end-snapshot-id", until).load(table)


def merge_changed(
    spark: SparkSession,
    source: DataFrame,
    table: str,
    keys: list[str],
    compare: list[str] | None = None,
    update: bool = True,
) -> int:
    """MERGE ``source`` into ``table`` on ``keys``, but only rows that are new or differ in
    ``compare`` (default: every source column); returns how many. Nothing to do: no commit."""
    cols = source.columns
    compare = compare or cols
    from pyspark.sql import functions as F

    src, tgt = source.select(*cols).alias("s"), spark.table(table).select(*compare).alias("t")
    same = [F.col(f"s.{c}").eqNullSafe(F.col(f"t.{c}")) for c in compare]  # null-safe: NULL = NULL here
    # A checkpoint, not a cached plan: the MERGE below changes the target this plan reads
    # (invalidating caches), and Spark 4.1 cannot plan a MERGE whose source view still
    # references a V2 table.
    changed = src.join(tgt, on=same, how="left_anti").localCheckpoint(eager=True)
    n = changed.count()
    if n == 0:
        return 0
    view = f"_changed_{abs(hash((table, id(changed))))}"
    changed.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    matched = (
        "WHEN MATCHED THEN UPDATE SET " + ", ".join(f"t.{c} = s.{c}" for c in cols if c not in keys) if update else ""
    )
    try:
        spark.sql(f"""MERGE INTO {table} t USING {view} s ON {on} {matched}
                      WHEN NOT MATCHED THEN INSERT ({", ".join(cols)}) VALUES ({", ".join("s." + c for c in cols)})""")
    finally:
        spark.catalog.dropTempView(view)
    return n
