"""Query data for training pulls: `GET /v1/data/examples`, the rows of a frozen data set (or the latest),
page by page, each with a presigned URL of its normalized image in s3://silver.

    curl -H "X-API-Key: lake-local-key" 'localhost:8000/v1/data/examples?split=train&limit=500'
    curl -H "X-API-Key: lake-local-key" \\
         'localhost:8000/v1/data/examples?dataset=training_examples@<snapshot>&since=2026-11-01T00:00:00Z&after=<next>'

Rows come from `lake.gold.training_examples` as of the data set's Iceberg snapshot (time travel through
Trino, parameters bound), ordered by (image_id, caption_index); ``next`` is the cursor of the following
page (keyset paging: stable while the lake moves on, since the snapshot does not). ``since`` keeps images
first seen after a watermark. The key is required: the answer hands out signed URLs.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from services.api.deps import ApiKey, MinioDep

MAX_LIMIT = 1000
_CURSOR = re.compile(r"^([0-9a-f]{64}):(\d{1,4})$")
router = APIRouter(prefix="/v1/data", tags=["query data"])


def get_catalog():
    from lake.catalog import Catalog

    return Catalog.connect()


class ExampleRow(BaseModel):
    image_id: str
    caption: str
    caption_index: int
    split: str
    width: int | None
    height: int | None
    first_seen_at: datetime | None
    url: str = Field(description="presigned GET of the normalized JPEG in s3://silver")


class ExamplesPage(BaseModel):
    dataset: str = Field(description="the frozen data set read, training_examples@<snapshot>")
    snapshot_id: int
    rows: list[ExampleRow]
    next: str | None = Field(description="pass as `after` for the next page; null on the last one")


def read_page(dataset: dict, split: str | None, since: datetime | None, after: tuple[str, int] | None,
              limit: int) -> list[list]:
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
        params)


@router.get("/examples", response_model=ExamplesPage,
            responses={400: {"description": "a bad cursor"}, 401: {}, 404: {"description": "no such data set"}})
async def examples(
    _: ApiKey,
    mc: MinioDep,
    catalog: Annotated[object, Depends(get_catalog)],
    dataset: Annotated[str | None, Query(pattern=r"^training_examples@-?\d{1,20}$",
                                         description="training_examples@<snapshot>; default the latest")] = None,
    split: Annotated[str | None, Query(pattern="^(train|val|test)$")] = None,
    since: Annotated[datetime | None, Query(description="only images first seen after this instant")] = None,
    after: Annotated[str | None, Query(max_length=80, description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    url_ttl_s: Annotated[int, Query(ge=60, le=7 * 86400, description="lifetime of the signed URLs")] = 3600,
) -> ExamplesPage:
    from lake.training import DatasetError, resolve_dataset
    from spark_jobs.silver.normalize_images import SILVER_BUCKET

    if since is not None:
        if since.tzinfo is not None:
            since = since.astimezone(timezone.utc).replace(tzinfo=None)
        if not 1970 <= since.year <= 9999:
            raise HTTPException(400, {"reason": "bad_since", "message": "`since` must be between 1970 and 9999"})
    cursor = None
    if after is not None:
        if not (m := _CURSOR.match(after)):
            raise HTTPException(400, {"reason": "bad_cursor", "message": "`after` must be a `next` from a page"})
        cursor = (m.group(1), int(m.group(2)))
    try:
        ds = await run_in_threadpool(resolve_dataset, catalog, dataset)
    except DatasetError as e:
        raise HTTPException(404, {"reason": "not_found", "message": str(e)}) from e
    rows = await run_in_threadpool(read_page, ds, split, since, cursor, limit)
    ttl = timedelta(seconds=url_ttl_s)
    out = [ExampleRow(image_id=r[0], caption=r[1], caption_index=r[2], split=r[3], width=r[4], height=r[5],
                      first_seen_at=r[6], url=mc.presigned_get_object(SILVER_BUCKET, r[7], expires=ttl))
           for r in rows]
    nxt = f"{out[-1].image_id}:{out[-1].caption_index}" if len(out) == limit else None
    return ExamplesPage(dataset=ds["_id"], snapshot_id=ds["snapshot_id"], rows=out, next=nxt)
