"""Bronze test data written straight into Iceberg tables of a test's own (no Kafka): event
rows in the `upload_events` schema, and the awkward image formats silver must handle."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from lake.catalog import Catalog
from lake.clients import mongo_client
from lake.tables import Tables, bronze_key
from tests.utils.images import RUN

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def formats() -> dict[str, bytes]:
    """The awkward inputs silver must get right (each made unique to this test run)."""
    tag = RUN.encode()
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = Image.new("RGB", (40, 20), (220, 30, 30))
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    grey16 = Image.fromarray(np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (8, 1)))
    return {
        "rotated_exif_jpeg": save(rotated, "JPEG", quality=95, exif=exif.tobytes(), comment=tag),
        "cmyk_jpeg": save(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG", quality=95, comment=tag),
        "palette_png_transparent": save(pal, "PNG", transparency=0, pnginfo=note(tag)),
        "png_16_bit": save(grey16, "PNG", pnginfo=note(tag)),
        "greyscale": save(Image.new("L", (12, 9), 128), "PNG", pnginfo=note(tag)),
        "webp": save(Image.new("RGB", (10, 10), (30, 170, 50)), "WEBP", lossless=True, exif=tag),
        "one_pixel": save(Image.new("RGB", (1, 1), (0, 0, 0)), "PNG", pnginfo=note(tag)),
    }


def note(tag: bytes):
    info = PngInfo()
    info.add_text("run", tag.decode())
    return info


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_row(i: int, image_id: str, captions=None, source="api", at=T0) -> dict:
    return dict(
        event_id=f"{RUN}-{i:04d}",
        image_id=image_id,
        source=source,
        content_type="image/png",
        size_bytes=1,
        client_uploaded_at=at,
        user_id=None,
        captions=captions or [],
        tags={},
        bronze_key=bronze_key(image_id),
        delivery="claim_check",
        kafka_topic="test",
        kafka_partition=0,
        kafka_offset=i,
        kafka_timestamp=at,
        ingested_at=at,
        batch_id=0,
        fingerprint=None,
    )


@dataclass
class Scratch:
    """A lake of a test's own: every table under the Iceberg namespace lake.<name>, catalog database <name>."""

    tables: Tables
    catalog: Catalog
    append: Callable[[list[dict]], None]  # event rows -> appended to the events table

    @property
    def silver(self) -> Tables:  # what the silver job is given
        return self.tables

    @property
    def gold(self) -> Tables:  # what the gold and captioning jobs are given
        return self.tables


@contextmanager
def scratch_lake(spark, name: str) -> Iterator[Scratch]:
    from lake.config import get_settings
    from lake.tables import ensure_tables
    from spark_jobs.gold import build_gold

    ns = f"lake.{name}"
    # the views read the catalog through Trino too (runs, promotions): this lake's own database
    tables = replace(get_settings().tables.under(ns), catalog=f"catalog.{name}")
    ensure_tables(spark, tables, "bronze")
    schema = spark.table(tables.events).schema

    def append(events: list[dict]) -> None:
        spark.createDataFrame(events, schema).writeTo(tables.events).append()

    try:
        yield Scratch(tables, Catalog(mongo_client()[name]), append)
    finally:
        from lake.clients import trino_query

        for view in build_gold.views(tables):
            trino_query(f"DROP VIEW IF EXISTS {ns}.{view}")
        for table in spark.sql(f"SHOW TABLES IN {ns}").collect():
            spark.sql(f"DROP TABLE IF EXISTS {ns}.{table.tableName} PURGE")
        spark.sql(f"DROP NAMESPACE IF EXISTS {ns}")
        mongo_client().drop_database(name)
