"""Uploads and image look-ups. The server sniffs what the bytes are (the client's
content type and file name are ignored: keys are the sha256 of the bytes)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from minio import Minio
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from lake.events import IMAGE_ID, ImagePublic, Reason, Rejected, bronze_key
from lake.images import image_size
from lake.ingest import upload_bytes
from lake.storage import BRONZE, NOT_FOUND, read_object
from services.api.deps import ApiKey, KafkaDep, MinioDep, SettingsDep

router = APIRouter(prefix="/v1/images", tags=["images"])

STATUS = {Reason.EMPTY: 400, Reason.TOO_LARGE: 413, Reason.TOO_MANY_PIXELS: 413, Reason.NOT_AN_IMAGE: 415,
          Reason.CORRUPT_IMAGE: 422}
MULTIPART_OVERHEAD = 64 * 1024
HEADER_BYTES = 2**20  # enough for any image header short of pathological metadata


def _problem(status: int, reason: str, detail: str) -> HTTPException:
    return HTTPException(status, {"reason": reason, "message": detail})


async def _limited(request: Request, limit: int):
    """The body's chunks, refused once over ``limit``: a chunked body has no Content-Length."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise _problem(413, Reason.TOO_LARGE, f"body over {limit} bytes")
        yield chunk


class _BadText(MultiPartException):
    pass


class _StrictMultiPart(MultiPartParser):
    """Starlette's parser, except that a text field which does not decode is refused:
    Starlette falls back to latin-1, which turns bad bytes into silent mojibake."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                part.data.decode(self._charset)
            except UnicodeDecodeError:
                raise _BadText(f"form field {part.field_name!r} is not valid {self._charset} text") from None
        super().on_part_end()


def _text(value: str, what: str) -> str:
    if "\ufffd" in value or "\x00" in value:
        raise _problem(400, "bad_text", f"{what} must be valid UTF-8 text without NUL characters")
    return value.strip()


async def _read_upload(request: Request, limit: int) -> tuple[bytes, list[str], dict[str, str], str | None]:
    ctype = request.headers.get("content-type", "")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise _problem(413, Reason.TOO_LARGE, f"body of {length} bytes; the limit is {limit}")
    if not ctype.startswith("multipart/form-data"):
        captions = [_text(c, "caption") for c in request.query_params.getlist("caption")]
        data = b"".join([chunk async for chunk in _limited(request, limit)])
        user = request.query_params.get("user_id")
        return data, captions, {}, _text(user, "user_id") if user else None
    form = await parse_multipart(request, limit, max_fields=64)
    try:
        return await _read_form(form, limit)
    finally:
        await form.close()



async def parse_multipart(request: Request, limit: int, max_fields: int):
    """A multipart body of at most one file and ``max_fields`` fields, read within ``limit`` bytes."""
    parser = _StrictMultiPart(request.headers, _limited(request, limit + MULTIPART_OVERHEAD), max_files=1,
                              max_fields=max_fields)
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise _problem(400, "bad_text" if isinstance(e, _BadText) else "bad_multipart", e.message) from None

async def _read_form(form: FormData, limit: int) -> tuple[bytes, list[str], dict[str, str], str | None]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise _problem(400, "missing_file", "multipart body needs a `file` part with the image")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise _problem(413, Reason.TOO_LARGE, f"file over {limit} bytes")
    captions = [_text(str(c), "caption") for c in form.getlist("captions") if str(c).strip()]
    tags: dict[str, str] = {}
    if raw_tags := form.get("tags"):
        try:
            tags = json.loads(str(raw_tags))
            assert isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
        except (ValueError, AssertionError, RecursionError):
            raise _problem(400, "bad_tags", 'tags must be a JSON object of strings, e.g. {"camera": "x"}') from None
        for text in [*tags, *tags.values()]:  # same rule as captions; tags are kept as sent
            _text(text, "tag")
    user = form.get("user_id")
    return data, captions, tags, _text(str(user), "user_id") if user else None


@router.post(
    "",
    status_code=201,
    summary="Upload an image (multipart `file`, or the raw bytes as the body)",
    responses={200: {"description": "Same bytes were already in the lake: a sighting was recorded"},
               400: {}, 401: {}, 413: {}, 415: {}, 422: {}, 503: {}},
    response_model=ImagePublic,
)
async def upload_image(request: Request, _: ApiKey, settings: SettingsDep, mc: MinioDep, producer: KafkaDep,
                       source: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "api",
                       event_id: Annotated[uuid.UUID | None, Query(
                           description="A UUID the client picks once per upload and sends again on a retry "
                                       "(after a 503): the retry then lands once, even if the first try's event "
                                       "was delivered after all. Default: a new one.")] = None):
    data, captions, tags, user_id = await _read_upload(request, settings.max_upload_bytes)
    try:
        up = await run_in_threadpool(upload_bytes, data, captions=captions, source=source, s=settings,
                                     mc=mc, producer=producer, user_id=user_id, tags=tags, event_id=event_id)
    except Rejected as e:
        raise _problem(STATUS.get(e.reason, 400), e.reason.value, e.message) from e
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:5])
        raise _problem(422, Reason.INVALID_EVENT.value, msg) from e
    except KafkaError as e:
        # The bytes are safe in bronze; retrying the same upload (same event_id) completes it. The event may
        # still be delivered (the producer keeps retrying it): only the event_id keeps the retry from doubling it.
        raise HTTPException(503, {"reason": "bus_unavailable", "message": str(e)[:200]},
                            headers={"Retry-After": "5"}) from e
    ev = up.event
    body = ImagePublic(image_id=ev.image_id, new=up.new, event_id=ev.event_id, content_type=ev.content_type,
                       size_bytes=ev.size_bytes, width=up.info.width, height=up.info.height,
                       bronze_uri=f"s3://{BRONZE}/{ev.bronze_key}")
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if up.new else 200)


@router.get("/{image_id}", summary="What the lake holds about an image", response_model=ImagePublic,
            responses={404: {}})
def get_image(image_id: Annotated[str, Path(pattern=IMAGE_ID.pattern)], mc: MinioDep) -> ImagePublic:
    from minio.error import S3Error

    key = bronze_key(image_id)
    try:
        st = mc.stat_object(BRONZE, key)
    except S3Error as e:
        if e.code in NOT_FOUND:
            raise HTTPException(404, {"reason": "not_found", "message": f"no image {image_id}"}) from e
        raise
    width, height = _header_size(mc, key, st.size) or (None, None)
    return ImagePublic(image_id=image_id, content_type=st.content_type or "application/octet-stream",
                       size_bytes=st.size, width=width, height=height, bronze_uri=f"s3://{BRONZE}/{key}")


def _header_size(mc: Minio, key: str, total: int) -> tuple[int, int] | None:
    """(width, height) read from the stored bytes; the first MiB holds any ordinary header.
    (Until the catalog records dimensions, the object is the only place that knows them.)"""
    size = image_size(read_object(mc, BRONZE, key, length=min(total, HEADER_BYTES)) or b"")
    if size is None and total > HEADER_BYTES:
        size = image_size(read_object(mc, BRONZE, key) or b"")
    return size
