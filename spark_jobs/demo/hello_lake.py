"""Smoke job of the stack: write a small Iceberg table on MinIO, to be read by Trino.

python -m spark_jobs.demo.hello_lake --rows 100
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def transform(spark: SparkSession, rows: int) -> DataFrame:
    """Deterministic rows: id, the shape and colour it stands for, and its square."""
    shapes = F.array(*[F.lit(x) for x in ("circle", "square", "triangle", "star")])
    colours = F.array(*[F.lit(x) for x in ("red", "green", "blue", "yellow", "purple", "orange", "black")])
    return (
        spark.range(rows)
        .withColumn("shape", shapes[F.col("id") % 4])
        .withColumn("colour", colours[F.col("id") % 7])
        .withColumn("square", F.col("id") * F.col("id"))
    )


def run(spark: SparkSession, *, table: str, rows: int = 100) -> int:
    """Write ``rows`` rows to ``table`` (replacing its rows); how many it holds then."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
    # createOrReplace keeps the table's history: the old rows stay readable by snapshot.
    transform(spark, rows).writeTo(table).using("iceberg").createOrReplace()
    return spark.table(table).count()


def main(rows: int = 100, table: str | None = None) -> int:
    from lake.config import get_settings
    from lake.spark import spark_session, stop_session

    spark = spark_session("hello-lake")
    try:
        return run(spark, table=table or get_settings().tables.hello, rows=rows)
    finally:
        stop_session(spark)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--table", default=None, help="default: the lake's demo.hello")
    a = ap.parse_args()
    print(f"wrote {main(a.rows, a.table)} rows to {a.table or 'demo.hello'}")
