"""Query data for training pulls: `GET /v1/data/examples`, the rows of a frozen data set (or the latest),
page by page, each with a presigned URL of its normalized image in the silver bucket.

    curl -H "X-API-Key: lake-local-key" 'localhost:8000/v1/data/examples?split=train&limit=500'
    curl -H "X-API-Key: lake-local-key" \\
         'localhost:8000/v1/data/examples?dataset=training_examples@<snapshot>&since=2026-11-01T00:00:00Z&after=<next>'

Rows come from gold's `training_examples` as of the data set's Iceberg snapshot (crud.example_rows);
``next`` is the cursor of the following page (keyset paging: stable while the lake moves on, since the
snapshot does not). ``since`` keeps images first seen after a watermark. The key is required: the answer
hands out signed URLs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from services.api import crud
from services.api.deps import ApiKey, CatalogDep, MinioDep
from services.api.errors import problem
from services.api.schemas import ExamplePublic, ExamplesPublic

MAX_LIMIT = 1000
_CURSOR = re.compile(r"^([0-9a-f]{64}):(\d{1,4})$")
router = APIRouter(prefix="/v1/data", tags=["query data"])


def _since(since: datetime | None) -> datetime | None:
    """``since`` as a naive UTC instant; `bad_since` outside 1970..9999 (an offset can push it past 9999 or
    before year 1, where Python has no datetime: 9999-12-31T23:59:59-23:59).

    _since(datetime(2026, 11, 1, tzinfo=UTC))  # datetime(2026, 11, 1)
    """
    if since is None:
        return None
    try:
        utc = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo is not None else since
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not 1970 <= utc.year <= 9999:
        raise problem(400, "bad_since", "`since` must be an instant between 1970 and 9999 (UTC)")
    return utc


@router.get(
    "/examples",
    response_model=ExamplesPublic,
    responses={
        400: {"description": "a bad cursor (`bad_cursor`) or `since` (`bad_since`)"},
        401: {},
        404: {"description": "no such data set"},
    },
)
async def examples(
    _: ApiKey,
    mc: MinioDep,
    catalog: CatalogDep,
    dataset: Annotated[
        str | None,
        Query(
            pattern=r"^training_examples@-?\d{1,20}$", description="training_examples@<snapshot>; default the latest"
        ),
    ] = None,
    split: Annotated[str | None, Query(pattern="^(train|val|test)$")] = None,
    since: Annotated[datetime | None, Query(description="only images first seen after this instant")] = None,
    after: Annotated[str | None, Query(max_length=80, description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    url_ttl_s: Annotated[int, Query(ge=60, le=7 * 86400, description="lifetime of the signed URLs")] = 3600,
) -> ExamplesPublic:
    from lake.training import DatasetError

    since = _since(since)
    cursor = None
    if after is not None:
        if not (m := _CURSOR.match(after)):
            raise problem(400, "bad_cursor", "`after` must be a `next` from a page")
        cursor = (m.group(1), int(m.group(2)))
    try:
        ds = await run_in_threadpool(lambda: crud.resolve_dataset(catalog=catalog, dataset=dataset))
    except DatasetError as e:
        raise problem(404, "not_found", str(e)) from e
    rows = await run_in_threadpool(
        lambda: crud.example_rows(dataset=ds, split=split, since=since, after=cursor, limit=limit)
    )
    ttl = timedelta(seconds=url_ttl_s)
    out = [
        ExamplePublic(
            image_id=r[0],
            caption=r[1],
            caption_index=r[2],
            split=r[3],
            width=r[4],
            height=r[5],
            first_seen_at=r[6],
            url=crud.presign_silver(mc=mc, key=r[7], ttl=ttl),
        )
        for r in rows
    ]
    nxt = f"{out[-1].image_id}:{out[-1].caption_index}" if len(out) == limit else None
    return ExamplesPublic(dataset=ds["_id"], snapshot_id=ds["snapshot_id"], rows=out, next=nxt)
