"""What became of an upload event: `GET /v1/events/{event_id}` (write key), landed in bronze, refused by the
stream (with the reason), or not seen yet. The event_id is the one POST /v1/images answered, or the one a
producer put in an event it sent to Kafka itself.

    curl -H "X-API-Key: lake-local-key" localhost:8000/v1/events/<event_id>

Read from bronze's Iceberg tables through Trino (crud.event_rows): an event the stream has not processed yet is
404 ``not_seen``, which becomes an answer once the stream's next micro-batch has run (retry after a few seconds).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from services.api import crud
from services.api.deps import ApiKey, TablesDep
from services.api.errors import problem
from services.api.schemas import EventPublic, EventRefusalPublic

RETRY_AFTER = 5  # seconds: about a micro-batch of the bronze stream
router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get(
    "/{event_id}",
    summary="Whether an upload event landed in bronze (image_id, ingested_at) or was refused (reason, error); "
    "404 `not_seen` while the stream has neither (not processed yet, or never sent): retry after Retry-After",
    response_model=EventPublic,
    responses={
        401: {},
        404: {"description": "`not_seen`: neither landed nor refused yet"},
        422: {"description": "event_id is not a UUID"},
        503: {"description": "`catalog_unavailable`: Trino did not answer"},
    },
)
async def get_event(
    _: ApiKey, tables: TablesDep, event_id: Annotated[uuid.UUID, Path(description="the event's UUID")]
) -> EventPublic:
    from trino.exceptions import HttpError, InternalError, OperationalError

    try:
        landed, refused = await run_in_threadpool(lambda: crud.event_rows(tables=tables, event_id=str(event_id)))
    except (OperationalError, InternalError, HttpError, OSError) as e:  # Trino down or failing, not a bad query
        raise problem(503, "catalog_unavailable", f"could not read bronze: {e}"[:300], retry_after=RETRY_AFTER) from e
    if not landed and not refused:
        raise problem(
            404,
            "not_seen",
            f"event {event_id} has neither landed nor been refused: the stream has not processed it yet "
            "(retry in a few seconds), or it was never sent",
            retry_after=RETRY_AFTER,
        )
    first = landed[0] if landed else {}
    return EventPublic(
        event_id=event_id,
        status="landed" if landed else "refused",
        image_id=first.get("image_id"),
        ingested_at=first.get("ingested_at"),
        refusals=[EventRefusalPublic(**{k: v for k, v in r.items() if k != "event_id"}) for r in refused],
    )
