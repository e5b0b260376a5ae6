"""POST /v1/captions: the production captioner (caption_service.py), for an upload or an image in silver.

    curl -H "X-API-Key: lake-local-key" -F file=@cat.jpg localhost:8000/v1/captions
    curl -H "X-API-Key: lake-local-key" -H "content-type: application/json" \\
         -d '{"image_id": "<sha256>"}' localhost:8000/v1/captions        # its silver JPEG

A caption the lake already holds for the image and the served version (this process's cache, the catalog,
or gold.captions for an image in silver, named by id or uploaded again) is answered with ``cached: true``
without running the model.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image, ImageOps

from lake.config import Settings
from lake.events import Reason, Rejected
from lake.images import decode
from lake.normalize import MAX_SIDE, to_rgb
from services.api import crud
from services.api.batcher import Overloaded
from services.api.bodies import read_caption_request
from services.api.caption_service import NoModel
from services.api.deps import ApiKey, CaptionsDep, MinioDep, SettingsDep
from services.api.errors import problem, refused
from services.api.schemas import CaptionPublic

router = APIRouter(prefix="/v1/captions", tags=["captions"])


def _decode(data: bytes, s: Settings) -> Image.Image:
    """The front door's checks and decoder (lake.images), then what silver does: orient, RGB.
    JPEGs decode at the smallest DCT scale still at least silver's size (the model sees far less)."""

    def draft(w: int, h: int) -> tuple[int, int]:
        scale = min(1.0, MAX_SIDE / max(w, h))
        return max(1, round(w * scale)), max(1, round(h * scale))

    try:
        img, info = decode(data, max_bytes=s.max_upload_bytes, max_pixels=s.max_image_pixels, draft=draft)
        try:
            return to_rgb(ImageOps.exif_transpose(img))
        except Rejected:
            raise
        except Exception as e:  # decodes but does not convert: still bad data
            raise Rejected(Reason.CORRUPT_IMAGE, f"{info.content_type} does not convert: {e}"[:300]) from e
    except Rejected as e:
        raise refused(e) from e


@router.post(
    "",
    summary="Caption an image: multipart `file` (or the raw bytes as the body), or an `image_id` in silver "
    '(JSON {"image_id": ...} or a form field)',
    response_model=CaptionPublic,
    responses={
        400: {},
        401: {},
        404: {"description": "no silver image with that id"},
        413: {},
        415: {},
        422: {},
        503: {"description": "no production model yet, or the queue is full (see Retry-After)"},
        504: {"description": "not captioned within caption_timeout_s"},
    },
)
async def create_caption(
    request: Request, _: ApiKey, settings: SettingsDep, mc: MinioDep, svc: CaptionsDep
) -> CaptionPublic:
    try:
        svc.require_model()  # before reading a body that could not be captioned anyway
        data, image_id = await read_caption_request(request, settings.max_upload_bytes)
        key = image_id or hashlib.sha256(data).hexdigest()  # image_id = sha256 of the uploaded bytes
        # an image named by id is in silver, an upload may be: the batch job may have captioned it (gold.captions)
        in_lake = True if image_id else None
        if hit := svc.cached(key) or await run_in_threadpool(lambda: svc.stored(key, in_lake=in_lake)):
            return CaptionPublic(caption=hit[0], model_version=hit[1], image_id=key, cached=True, filtered=hit[2])
        if image_id:
            data = await run_in_threadpool(lambda: crud.silver_jpeg(mc=mc, image_id=image_id))
            if data is None:
                raise problem(
                    404,
                    "not_found",
                    f"no image {image_id} in silver: unknown, or not normalized yet "
                    "(`lake layers run`); upload it as `file` to caption it now",
                )
        image = await run_in_threadpool(_decode, data, settings)
        caption, version, reason = await svc.caption(image, key)
        await run_in_threadpool(svc.store, key, version, caption, reason)
    except NoModel as e:
        raise problem(503, "no_model", str(e), retry_after=30) from e
    except Overloaded as e:
        raise problem(503, "overloaded", str(e), retry_after=1) from e
    except TimeoutError as e:
        raise problem(504, "timeout", f"not captioned within {settings.caption_timeout_s} s") from e
    return CaptionPublic(caption=caption, model_version=version, image_id=key, cached=False, filtered=reason)
