"""Reading request bodies within limits: an upload (`POST /v1/images`) and a caption request
(`POST /v1/captions`), as multipart, JSON, a urlencoded form or the raw bytes. A chunked body has no
Content-Length, so every body is counted as it streams and refused once over the limit; Starlette's
multipart parser is used with one file at most and text fields that must decode.

    data, captions, tags, user_id = await read_upload(request, settings.max_upload_bytes)
    data, image_id = await read_caption_request(request, settings.max_upload_bytes)  # one of them is None
"""

from __future__ import annotations

import json

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from lake.events import Reason
from lake.tables import IMAGE_ID
from services.api.errors import problem

MULTIPART_OVERHEAD = 64 * 1024
JSON_LIMIT = 64 * 1024


async def limited(request: Request, limit: int):
    """The body's chunks, refused once over ``limit``."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise problem(413, Reason.TOO_LARGE, f"body over {limit} bytes")
        yield chunk


def check_length(request: Request, limit: int) -> None:
    """Refuse a declared Content-Length over the limit before reading anything."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise problem(413, Reason.TOO_LARGE, f"body of {length} bytes; the limit is {limit}")


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


async def parse_multipart(request: Request, limit: int, max_fields: int) -> FormData:
    """A multipart body of at most one file and ``max_fields`` fields, read within ``limit`` bytes."""
    parser = _StrictMultiPart(
        request.headers, limited(request, limit + MULTIPART_OVERHEAD), max_files=1, max_fields=max_fields
    )
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise problem(400, "bad_text" if isinstance(e, _BadText) else "bad_multipart", e.message) from None


def text(value: str, what: str) -> str:
    if "\ufffd" in value or "\x00" in value:
        raise problem(400, "bad_text", f"{what} must be valid UTF-8 text without NUL characters")
    return value.strip()


async def read_file(upload: object, limit: int, missing: str) -> bytes:
    """The bytes of the multipart ``file`` part, at most ``limit`` of them."""
    if not isinstance(upload, UploadFile):
        raise problem(400, "missing_file", missing)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise problem(413, Reason.TOO_LARGE, f"file over {limit} bytes")
    return data


# ---- POST /v1/images -------------------------------------------------------------------------------------------


async def read_upload(request: Request, limit: int) -> tuple[bytes, list[str], dict[str, str], str | None]:
    """(bytes, captions, tags, user_id) of an upload: multipart, or the raw bytes with query parameters."""
    check_length(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        captions = [text(c, "caption") for c in request.query_params.getlist("caption")]
        data = b"".join([chunk async for chunk in limited(request, limit)])
        user = request.query_params.get("user_id")
        return data, captions, {}, text(user, "user_id") if user else None
    form = await parse_multipart(request, limit, max_fields=64)
    try:
        return await _read_form(form, limit)
    finally:
        await form.close()


async def _read_form(form: FormData, limit: int) -> tuple[bytes, list[str], dict[str, str], str | None]:
    data = await read_file(form.get("file"), limit, "multipart body needs a `file` part with the image")
    captions = [text(str(c), "caption") for c in form.getlist("captions") if str(c).strip()]
    tags: dict[str, str] = {}
    if raw_tags := form.get("tags"):
        try:
            tags = json.loads(str(raw_tags))
            assert isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
        except (ValueError, AssertionError, RecursionError):
            raise problem(400, "bad_tags", 'tags must be a JSON object of strings, e.g. {"camera": "x"}') from None
        for t in [*tags, *tags.values()]:  # same rule as captions; tags are kept as sent
            text(t, "tag")
    user = form.get("user_id")
    return data, captions, tags, text(str(user), "user_id") if user else None


# ---- POST /v1/captions -----------------------------------------------------------------------------------------


def image_id_of(value: object) -> str:
    if not isinstance(value, str) or not IMAGE_ID.fullmatch(value.strip()):
        raise problem(400, "bad_image_id", "image_id must be 64 lower-case hex digits (the sha256 of the image)")
    return value.strip()


async def read_caption_request(request: Request, limit: int) -> tuple[bytes | None, str | None]:
    """(image bytes, None) or (None, image_id), from multipart, JSON, a urlencoded form or a raw body."""
    ctype = request.headers.get("content-type", "")
    check_length(request, limit)
    if ctype.startswith("application/json"):
        body = b"".join([c async for c in limited(request, JSON_LIMIT)])
        try:
            doc = json.loads(body)
        except ValueError:
            raise problem(400, "bad_json", 'the body is not JSON: send {"image_id": "<sha256>"}') from None
        if not isinstance(doc, dict) or "image_id" not in doc:
            raise problem(400, "bad_json", 'JSON body needs "image_id"; upload new images as multipart `file`')
        return None, image_id_of(doc["image_id"])
    if ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form(max_files=0, max_fields=8)
        return None, image_id_of(form.get("image_id"))
    if not ctype.startswith("multipart/form-data"):
        return b"".join([c async for c in limited(request, limit)]), None
    form = await parse_multipart(request, limit, max_fields=8)
    try:
        upload, image_id = form.get("file"), form.get("image_id")
        if (upload is None) == (image_id is None):
            raise problem(400, "missing_file", "send either a `file` part with the image or an `image_id` field")
        if image_id is not None:
            return None, image_id_of(image_id)
        return await read_file(upload, limit, "`file` must be a file part with the image bytes"), None
    finally:
        await form.close()
