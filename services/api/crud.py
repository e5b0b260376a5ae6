"""The storage and catalog calls the routes make, as keyword-only functions (the routes only speak HTTP).
Each takes the client it needs (from deps.py) and returns plain data or a public schema.

    from services.api import crud
    crud.bronze_image(mc=mc, image_id=i)                   # ImagePublic, or None when bronze has no such image
    crud.image_captions(catalog=cat, image_id=i, model=svc.known(i))
    crud.example_rows(dataset=ds, split="train", since=None, after=None, limit=100)
    crud.event_rows(tables=settings.tables, event_id=str(e))   # ([landed rows], [refused rows]), as dicts
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from lake.images import image_size
from lake.storage import NOT_FOUND, read_object
from lake.tables import BRONZE_BUCKET, SILVER_BUCKET, bronze_key, s3_uri, silver_key
from services.api.schemas import ImageCaptionPublic, ImagePublic

log = structlog.get_logger("lake.api")

HEADER_BYTES = 2**20  # enough for any image header short of pathological metadata

# ---- images ----------------------------------------------------------------------------------------------------


def bronze_image(*, mc: Any, image_id: str) -> ImagePublic | None:
    """What bronze holds of an image (type, size, dimensions), or None when it holds no such image."""
    from minio.error import S3Error

    key = bronze_key(image_id)
    try:
        st = mc.stat_object(BRONZE_BUCKET, key)
    except S3Error as e:
        if e.code in NOT_FOUND:
            return None
        raise
    width, height = _header_size(mc, key, st.size) or (None, None)
    return ImagePublic(
        image_id=image_id,
        content_type=st.content_type or "application/octet-stream",
        size_bytes=st.size,
        width=width,
        height=height,
        bronze_uri=s3_uri(BRONZE_BUCKET, key),
    )


def _header_size(mc: Any, key: str, total: int) -> tuple[int, int] | None:
    """(width, height) read from the stored bytes; the first MiB holds any ordinary header.
    (Until the catalog records dimensions, the object is the only place that knows them.)"""
    size = image_size(read_object(mc, BRONZE_BUCKET, key, length=min(total, HEADER_BYTES)) or b"")
    if size is None and total > HEADER_BYTES:
        size = image_size(read_object(mc, BRONZE_BUCKET, key) or b"")
    return size


def silver_jpeg(*, mc: Any, image_id: str) -> bytes | None:
    """The image's normalized JPEG, or None when silver does not have it (yet)."""
    return read_object(mc, SILVER_BUCKET, silver_key(image_id))


def image_captions(
    *, catalog: Any, image_id: str, model: tuple[str, str, str | None] | None
) -> list[ImageCaptionPublic]:
    """The human captions the catalog holds for the image, then ``model`` (caption, version, filter reason):
    the served model's, see CaptionService.known. An unreachable catalog leaves the human ones out."""
    from pymongo.errors import PyMongoError

    from lake.captions import human_captions

    try:
        human = human_captions(catalog=catalog, image_id=image_id)
    except PyMongoError as e:  # the image is still described from bronze
        log.warning("human captions look-up failed", image_id=image_id, error=str(e)[:200])
        human = []
    out = [ImageCaptionPublic(caption=c, origin="human") for c in human]
    if model is not None:
        out.append(ImageCaptionPublic(caption=model[0], origin="model", model_version=model[1], filtered=model[2]))
    return out


# ---- training examples -----------------------------------------------------------------------------------------


def resolve_dataset(*, catalog: Any, dataset: str | None) -> dict:
    """The catalog's record of a frozen data set (the latest when ``dataset`` is None); DatasetError if none."""
    from lake.training import resolve_dataset

    return resolve_dataset(catalog, dataset)


def example_rows(
    *, dataset: dict, split: str | None, since: datetime | None, after: tuple[str, int] | None, limit: int
) -> list[list]:
    """One page of the data set's rows as of its Iceberg snapshot (time travel through Trino, parameters bound),
    ordered by (image_id, caption_index), after the cursor ``after``."""
    from lake.clients import trino_query
    from lake.training import as_of

    where, params = ["1 = 1"], []
    if split:
        where.append("split = ?")
        params.append(split)
    if since:
        where.append("first_seen_at > ?")
        params.append(since)
    if after:
        where.append("(image_id > ? OR (image_id = ? AND caption_index > ?))")
        params += [after[0], after[0], after[1]]
    return trino_query(
        f"SELECT image_id, caption, caption_index, split, width, height, first_seen_at, silver_key "
        f"FROM {as_of(dataset)} WHERE {' AND '.join(where)} ORDER BY image_id, caption_index LIMIT {int(limit)}",
        params,
    )


def presign_silver(*, mc: Any, key: str, ttl: timedelta) -> str:
    """A presigned GET of an object in the silver bucket."""
    return mc.presigned_get_object(SILVER_BUCKET, key, expires=ttl)


# ---- events ----------------------------------------------------------------------------------------------------

LANDED_COLUMNS = ("event_id", "image_id", "ingested_at")
REFUSED_COLUMNS = ("event_id", "reason", "error", "rejected_at", "image_id", "user_id", "source")


def event_rows(*, tables: Any, event_id: str, limit: int = 20) -> tuple[list[dict], list[dict]]:
    """What bronze holds of an event: its landed rows (``tables.events``) and its refusals (``tables.rejected``),
    newest first, through Trino with the id bound. ``SELECT *``, then the columns the table has of
    LANDED_COLUMNS / REFUSED_COLUMNS: a table made before a column was added still answers (without it)."""
    landed = _rows(tables.events, event_id, LANDED_COLUMNS, "ingested_at", limit)
    refused = _rows(tables.rejected, event_id, REFUSED_COLUMNS, "rejected_at", limit)
    return landed, refused


def _rows(table: str, event_id: str, columns: tuple[str, ...], newest: str, limit: int) -> list[dict]:
    from trino.exceptions import TrinoUserError

    from lake.clients import no_tables_yet, trino_connection

    with trino_connection() as conn:
        cur = conn.cursor()
        try:
            # table names come from the settings, never from the request; ORDER BY needs the column: "*" has it
            cur.execute(
                f"SELECT * FROM {table} WHERE event_id = ? ORDER BY {newest} DESC LIMIT {int(limit)}", [event_id]
            )
            rows = cur.fetchall()
        except TrinoUserError as e:
            if no_tables_yet(e):  # a lake whose stream has not run yet
                return []
            raise
        names = [d[0] for d in cur.description]
    return [{c: r[names.index(c)] for c in columns if c in names} for r in rows]


# ---- models ----------------------------------------------------------------------------------------------------


def model_versions(*, registry: Any, name: str | None) -> list[dict]:
    """Every registered version (of ``name``), newest first; a registration still uploading is not one."""
    return [d for d in registry.versions(name) if d["stage"] != "uploading"]


# ---- readiness -------------------------------------------------------------------------------------------------


def ping_object_store(*, settings: Any) -> None:
    """Every bucket of the lake exists (RuntimeError naming the missing ones)."""
    from lake.clients import minio_client
    from lake.tables import BUCKETS

    mc = minio_client(settings)
    missing = [b for b in BUCKETS if not mc.bucket_exists(b)]
    if missing:
        raise RuntimeError(f"missing buckets {missing}")


def ping_catalog(*, settings: Any) -> None:
    """The catalog answers, through a client of its own with a short timeout (a probe must not wait on the
    shared client's), for the settings the probe is given."""
    from lake.clients import mongo_client

    with mongo_client(settings, timeout_ms=2000) as c:
        c.admin.command("ping")
