"""Reading request bodies within limits: an upload (`POST /v1/images`) and a caption request
(`POST /v1/captions`), as multipart, JSON, a urlencoded form or the raw bytes. A chunked body has no
Content-Length, so every body is counted as it streams and refused once over the limit; Starlette's
multipart parser is used with one file at most and text fields that must decode.

    data, captions, tags, user_id = await read_upload(request, settings.max_upload_bytes)
    data, image_id = await read_caption_request(request, settings.max_upload_bytes)  # one of them is None
"""

from __future__ import annotations

import codecs
import json

from fastapi import HTTPException, Request
from python_multipart.multipart import parse_options_header
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


# Codecs Python calls text encodings that are not charsets: transforms of text (punycode, idna, the escape
# codecs), one that always fails (undefined), and UTF-7, whose "+ADw-" spells "<" past text filters.
_NOT_CHARSETS = frozenset({"punycode", "idna", "undefined", "unicode-escape", "raw-unicode-escape", "utf-7"})
# What a part's bytes may be wrapped in: "binary" and the identity encodings (RFC 7578 §4.7 deprecates the rest).
_IDENTITY = frozenset({b"", b"binary", b"7bit", b"8bit"})


def charset_of(content_type: bytes | str | None, default: str = "utf-8") -> str:
    """The Python codec named by a Content-Type's ``charset``; `bad_text` when it names no text encoding.

    charset_of("text/plain; charset=UTF-16")  # "utf-16"
    charset_of("multipart/form-data; charset=rot13")  # HTTPException 400 bad_text
    """
    if isinstance(content_type, str):
        content_type = content_type.encode("latin-1", "replace")
    _, params = parse_options_header(content_type or b"")
    raw = params.get(b"charset")
    if raw is None:
        return default
    name = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    if info is None or not info._is_text_encoding or info.name in _NOT_CHARSETS:
        raise problem(400, "bad_text", f"charset {name[:40]!r} is not a text encoding; send UTF-8")
    return info.name


class _StrictMultiPart(MultiPartParser):
    """Starlette's parser, except that a text field is decoded by its own part's charset (else the body's) and
    refused when it does not decode (Starlette falls back to latin-1: silent mojibake), and a part wrapped in a
    Content-Transfer-Encoding (base64, quoted-printable) is refused rather than stored still encoded."""

    def on_headers_finished(self) -> None:
        cte = dict(self._current_part.item_headers).get(b"content-transfer-encoding", b"").strip().lower()
        if cte not in _IDENTITY:
            raise MultiPartException(
                f"Content-Transfer-Encoding {cte[:20].decode('latin-1')!r} is not supported: send the bytes as they are"
            )
        super().on_headers_finished()

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is not None:
            return super().on_part_end()
        try:
            charset = charset_of(dict(part.item_headers).get(b"content-type"), self._charset)
            value = part.data.decode(charset)
        except (HTTPException, UnicodeError, LookupError):
            raise _BadText(f"form field {part.field_name!r} is not valid text in its charset") from None
        self.items.append((part.field_name, value))


async def parse_multipart(request: Request, limit: int, max_fields: int) -> FormData:
    """A multipart body of at most one file and ``max_fields`` fields, read within ``limit`` bytes."""
    charset_of(request.headers.get("content-type"))  # Starlette would fall back to latin-1 for a bad one
    parser = _StrictMultiPart(
        request.headers, limited(request, limit + MULTIPART_OVERHEAD), max_files=1, max_fields=max_fields
    )
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise problem(400, "bad_text" if isinstance(e, _BadText) else "bad_multipart", e.message) from None


def text(value: str, what: str) -> str:
    """``value`` stripped; `bad_text` for what no UTF-8 column can hold or a decoder replaced (U+FFFD), NUL, a
    lone surrogate (JSON's "\\ud800").

    text(" a cat ", "caption")  # "a cat"
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "\ufffd"
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
        return data, captions, {}, text(user, "user_id") or None if user else None
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
    return data, captions, tags, text(str(user), "user_id") or None if user else None


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
