"""Uploads and image look-ups. The server sniffs what the bytes are (the client's content type and file name
are ignored: keys are the sha256 of the bytes).

    curl -H "X-API-Key: lake-local-key" -F file=@cat.jpg -F captions="a cat" localhost:8000/v1/images
    curl localhost:8000/v1/images/<sha256>      # bronze's object and the image's captions
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from pydantic import ValidationError

from lake.events import Reason, Rejected
from lake.ingest import upload_bytes
from lake.tables import BRONZE_BUCKET, IMAGE_ID, s3_uri
from services.api import crud
from services.api.bodies import read_upload
from services.api.deps import ApiKey, CaptionsDep, CatalogDep, KafkaDep, MinioDep, SettingsDep
from services.api.errors import problem, refused
from services.api.schemas import ImageDetailPublic, ImagePublic

router = APIRouter(prefix="/v1/images", tags=["images"])


@router.post(
    "",
    status_code=201,
    summary="Upload an image (multipart `file`, or the raw bytes as the body)",
    responses={
        200: {"description": "Same bytes were already in the lake: a sighting was recorded"},
        400: {},
        401: {},
        413: {},
        415: {},
        422: {},
        503: {},
    },
    response_model=ImagePublic,
)
async def upload_image(
    request: Request,
    _: ApiKey,
    settings: SettingsDep,
    mc: MinioDep,
    producer: KafkaDep,
    source: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "api",
    event_id: Annotated[
        uuid.UUID | None,
        Query(
            description="A UUID the client picks once per upload and sends again on a retry "
            "(after a 503): the retry then lands once, even if the first try's event "
            "was delivered after all. Default: a new one."
        ),
    ] = None,
):
    data, captions, tags, user_id = await read_upload(request, settings.max_upload_bytes)
    try:
        up = await run_in_threadpool(
            upload_bytes,
            data,
            captions=captions,
            source=source,
            s=settings,
            mc=mc,
            producer=producer,
            user_id=user_id,
            tags=tags,
            event_id=event_id,
        )
    except Rejected as e:
        raise refused(e) from e
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:5])
        raise problem(422, Reason.INVALID_EVENT.value, msg) from e
    except KafkaError as e:
        # The bytes are safe in bronze; retrying the same upload (same event_id) completes it. The event may
        # still be delivered (the producer keeps retrying it): only the event_id keeps the retry from doubling it.
        raise HTTPException(
            503, {"reason": "bus_unavailable", "message": str(e)[:200]}, headers={"Retry-After": "5"}
        ) from e
    ev = up.event
    body = ImagePublic(
        image_id=ev.image_id,
        new=up.new,
        event_id=ev.event_id,
        content_type=ev.content_type,
        size_bytes=ev.size_bytes,
        width=up.info.width,
        height=up.info.height,
        bronze_uri=s3_uri(BRONZE_BUCKET, ev.bronze_key),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if up.new else 200)


@router.get(
    "/{image_id}",
    summary="What the lake holds about an image: its object in bronze, its captions "
    "(human ones, and the served model's if the API or the batch job computed it)",
    response_model=ImageDetailPublic,
    responses={404: {}},
)
async def get_image(
    image_id: Annotated[str, Path(pattern=IMAGE_ID.pattern)], mc: MinioDep, catalog: CatalogDep, svc: CaptionsDep
) -> ImageDetailPublic:
    image = await run_in_threadpool(lambda: crud.bronze_image(mc=mc, image_id=image_id))
    if image is None:
        raise problem(404, "not_found", f"no image {image_id}")
    model = await run_in_threadpool(svc.known, image_id)
    captions = await run_in_threadpool(lambda: crud.image_captions(catalog=catalog, image_id=image_id, model=model))
    return ImageDetailPublic(**image.model_dump(), captions=captions)
