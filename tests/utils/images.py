"""Image factories and the bad-input corpus for the front door (API, `lake ingest`).

    from tests.utils.images import CORPUS, png, Refused
    for name, payload, expect in CORPUS: ...

A corpus entry is ``(name, payload, expect)``. ``payload`` is either bytes (send them as
the `file` part of a multipart POST /v1/images; `inspect_image` must give the same
verdict) or a callable ``payload(client: httpx.Client) -> httpx.Response`` that makes
the whole request itself. ``expect`` is ``ACCEPTED`` (the image lands in bronze) or
``Refused(status, reason)``; reason None means FastAPI's own 404/422 format.

Accepted entries carry a per-process nonce, so every test run uploads images the lake
has not seen yet (a re-run would otherwise answer 200 "seen before" instead of 201).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import random
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin

API_KEY = "lake-local-key"
ADMIN_KEY = "lake-local-admin-key"  # Settings.admin_keys in local mode: /v1/admin only
LIMIT = 16 * 2**20  # Settings.max_upload_bytes
RUN = uuid.uuid4().hex[:12]  # makes this process's good images new to the lake


# ---- factories: well-formed images ----------------------------------------------------


def _noise(w: int, h: int, seed: int | str = 0, mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, (w, h), random.Random(seed).randbytes(w * h * bands))


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png(w: int = 8, h: int = 8, colour="red", *, note: str | None = None, mode: str = "RGB") -> bytes:
    """A solid PNG; ``note`` goes into a tEXt chunk (different bytes, same pixels)."""
    info = PngImagePlugin.PngInfo()
    if note:
        info.add_text("lake-test", note)
    return _save(Image.new(mode, (w, h), colour), "PNG", pnginfo=info)


def jpeg(
    w: int = 8, h: int = 8, colour="blue", quality: int = 90, *, note: str | None = None, mode: str = "RGB", **kw
) -> bytes:
    """A solid JPEG; ``note`` goes into a COM segment. ``kw`` reaches Pillow (progressive, exif)."""
    if note:
        kw["comment"] = note.encode()
    return _save(Image.new(mode, (w, h), colour), "JPEG", quality=quality, **kw)


def jpeg_fat_header(segments: int = 25, *, note: str | None = None) -> bytes:
    """A small JPEG behind ``segments`` x 64 KiB of comment segments: its frame header
    (the size) starts past the first MiB."""
    seg = b"\xff\xfe" + struct.pack(">H", 65_535) + random_bytes(65_533, seed=3)
    data = jpeg(33, 22, note=note)
    return data[:2] + seg * segments + data[2:]


def noise_jpeg(w: int = 256, h: int = 256, seed: int | str = 0, quality: int = 90) -> bytes:
    """A JPEG of random pixels: plenty of entropy-coded data to cut short."""
    return _save(_noise(w, h, seed), "JPEG", quality=quality)


def webp(w: int = 8, h: int = 8, colour="green", *, lossless: bool = True, note: str | None = None) -> bytes:
    kw = {"xmp": note.encode()} if note else {}
    return _save(Image.new("RGB", (w, h), colour), "WEBP", lossless=lossless, **kw)


def gif(
    w: int = 8, h: int = 8, colour="yellow", *, frames: int = 1, version: str = "GIF89a", note: str | None = None
) -> bytes:
    """A GIF, animated when ``frames`` > 1; ``note`` goes into a comment extension."""
    imgs = [Image.new("RGB", (w, h), colour)] + [
        Image.new("RGB", (w, h), (40 * i % 256, 0, 0)) for i in range(1, frames)
    ]
    kw = {"comment": note.encode()} if note else {}
    data = _save(imgs[0], "GIF", save_all=frames > 1, append_images=imgs[1:], **kw)
    return version.encode() + data[6:]


def bmp(w: int = 8, h: int = 8, colour="purple") -> bytes:
    return _save(Image.new("RGB", (w, h), colour), "BMP")


def tiff(w: int = 8, h: int = 8, colour="orange", *, big_endian: bool = False, note: str | None = None) -> bytes:
    kw = {"description": note} if note else {}
    data = _save(Image.new("RGB", (w, h), colour), "TIFF", **kw)
    if big_endian:  # Pillow writes little-endian; this header-only check is all sniff needs
        return b"MM\x00*" + data[4:]
    return data


# ---- factories: bad and hostile bytes --------------------------------------------------


def truncated_jpeg(keep: float = 0.5) -> bytes:
    """A real JPEG cut off in its scan data (a failed or interrupted upload)."""
    data = noise_jpeg()
    return data[: int(len(data) * keep)]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def bomb_png(width: int = 10_000, height: int = 5_000) -> bytes:
    """A 1-bit greyscale PNG of ``width`` x ``height`` zeros: 50 megapixels in ~5 KB.
    Built chunk by chunk, so making it never allocates the image."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_flip(chunk: bytes, at: str) -> bytes:
    data = bytearray(png(16, 16, "teal"))
    i = data.index(chunk)
    n = struct.unpack(">I", data[i - 4 : i])[0]
    data[i + 4 + (n if at == "crc" else n // 2)] ^= 0xFF
    return bytes(data)


def png_bad_crc() -> bytes:
    """A PNG whose IHDR checksum is wrong (bit rot, a bad proxy). Pillow checks the CRCs
    of the chunks before the pixel data, not IDAT's: zlib's own checksum guards that."""
    return _png_flip(b"IHDR", "crc")


def png_corrupt_idat() -> bytes:
    """A PNG with a flipped byte inside its compressed pixel data."""
    return _png_flip(b"IDAT", "data")


def png_header_only() -> bytes:
    """Signature and IHDR, then nothing: no pixel data at all."""
    return png(16, 16)[:33]


def jpeg_huge_header(w: int = 65_535, h: int = 65_535) -> bytes:
    """A tiny JPEG whose frame header claims ``w`` x ``h`` (4.3 gigapixels)."""
    data = bytearray(jpeg(8, 8))
    i = data.index(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def html() -> bytes:
    return b"<!doctype html><html><body><script>alert(1)</script><img src=x></body></html>\n"


def svg() -> bytes:
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<script>alert(1)</script><rect width="10" height="10"/></svg>'
    )


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def zip_file() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("image.png", png())
    return buf.getvalue()


def exe() -> bytes:
    """A DOS/PE header."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 44


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Deterministic noise (random.Random, not os.urandom: the same bytes every run)."""
    return random.Random(seed).randbytes(n)


def jpeg_header_garbage(n: int = 4096) -> bytes:
    """A JPEG start-of-image and APP0 marker, then noise."""
    return b"\xff\xd8\xff\xe0" + random_bytes(n, seed=1)


@functools.cache
def oversize(n: int = 20 * 2**20) -> bytes:
    """Random bytes after a JPEG header: over the 16 MiB upload limit."""
    return b"\xff\xd8\xff\xe0" + random_bytes(n - 4, seed=2)


# ---- requests -------------------------------------------------------------------------

Part = tuple[str, bytes | str, str | None, str | None]  # name, value, filename, type


def multipart(parts: list[Part], boundary: str = "lake-test-boundary") -> tuple[bytes, str]:
    """Encode a multipart/form-data body by hand, so a test controls every byte
    (invalid UTF-8, NUL, odd file names, a missing or a second `file` part)."""
    out = bytearray()
    for name, value, filename, ctype in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + (value.encode() if isinstance(value, str) else value) + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _chunks(data: bytes, size: int = 2**20):
    for i in range(0, len(data), size):
        yield data[i : i + size]


@dataclass(frozen=True)
class Post:
    """A POST /v1/images. ``data`` is the `file` part (None: no file part); ``raw`` sends it
    as the whole body; ``chunked`` streams it with no Content-Length."""

    data: bytes | None = None
    filename: str = "image.png"
    content_type: str | None = "application/octet-stream"
    fields: list[tuple[str, bytes | str]] = field(default_factory=list)
    extra_parts: list[Part] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=lambda: {"X-API-Key": API_KEY})
    query: str = ""  # sent as written: percent-escapes are not re-encoded
    raw: bool = False
    chunked: bool = False
    body_type: str | None = None  # overrides the multipart Content-Type
    boundary: str = "lake-test-boundary"

    def __call__(self, client):
        headers = dict(self.headers)
        if self.raw:
            body = self.data or b""
        else:
            parts: list[Part] = [] if self.data is None else [("file", self.data, self.filename, self.content_type)]
            parts += [(k, v, None, None) for k, v in self.fields] + self.extra_parts
            body, headers["Content-Type"] = multipart(parts, self.boundary)
        if self.body_type is not None:
            headers["Content-Type"] = self.body_type
        content = _chunks(body) if self.chunked else body
        return client.post("/v1/images" + (f"?{self.query}" if self.query else ""), content=content, headers=headers)


@dataclass(frozen=True)
class Raw:
    """A POST /v1/images of ``body`` exactly as given, under ``content_type`` (bytes: sent as they are, so a
    header can hold what httpx would not encode). ``data`` is the image inside, for an accepted entry."""

    body: bytes
    content_type: str | bytes = "multipart/form-data; boundary=b"
    data: bytes | None = None

    def __call__(self, client):
        headers = {"X-API-Key": API_KEY, "Content-Type": self.content_type}
        return client.post("/v1/images", content=self.body, headers=headers)


def raw_part(name: str, value: bytes, *headers: str, filename: str | bytes | None = None) -> bytes:
    """One multipart part under boundary ``b``, with extra header lines as written."""
    if isinstance(filename, str):
        filename = filename.encode()
    disp = f'Content-Disposition: form-data; name="{name}"'.encode()
    disp += b'; filename="' + filename + b'"' if filename is not None else b""
    return b"--b\r\n" + b"\r\n".join([disp, *(h.encode() for h in headers)]) + b"\r\n\r\n" + value + b"\r\n"


@dataclass(frozen=True)
class Get:
    path: str  # appended to /v1/images/, as sent (percent-escapes stay escaped)

    def __call__(self, client):
        return client.get("/v1/images/" + self.path)


# ---- the corpus -----------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str | None  # the `detail.reason` of the JSON body; None: FastAPI's own format


ACCEPTED = "accepted"
Expect = Refused | str
Payload = bytes | Callable


def _good(kind: str, **kw) -> bytes:
    """A valid image unique to this process (a note carries the nonce)."""
    if kind == "png":
        return png(note=RUN + kw.pop("tag", ""), **kw)
    return jpeg(note=RUN + kw.pop("tag", ""), **kw)


def corpus() -> list[tuple[str, Payload, Expect]]:
    """The front door's nasty inputs, each with its expected outcome. A function, so each
    call builds fresh accepted images; `CORPUS` is this process's copy."""
    return [
        # --- bodies that are not images
        ("empty_body", Post(b"", raw=True), Refused(400, "empty")),
        ("zero_byte_file_part", b"", Refused(400, "empty")),
        ("truncated_jpeg", truncated_jpeg(), Refused(422, "corrupt_image")),
        ("html", html(), Refused(415, "not_an_image")),
        ("plain_text", b"just some text, not a picture\n", Refused(415, "not_an_image")),
        ("svg", svg(), Refused(415, "not_an_image")),
        ("pdf", pdf(), Refused(415, "not_an_image")),
        ("zip", zip_file(), Refused(415, "not_an_image")),
        ("exe_pe", exe(), Refused(415, "not_an_image")),
        ("elf", elf(), Refused(415, "not_an_image")),
        ("random_bytes", random_bytes(4096), Refused(415, "not_an_image")),
        ("jpeg_header_garbage", jpeg_header_garbage(), Refused(422, "corrupt_image")),
        ("png_bad_crc", png_bad_crc(), Refused(422, "corrupt_image")),
        ("png_corrupt_idat", png_corrupt_idat(), Refused(422, "corrupt_image")),
        ("png_header_only", png_header_only(), Refused(422, "corrupt_image")),
        ("bomb_png_50mp", bomb_png(), Refused(413, "too_many_pixels")),
        ("bomb_png_400mp", bomb_png(20_000, 20_000), Refused(413, "too_many_pixels")),  # Pillow's own guard
        ("jpeg_claims_4gp", jpeg_huge_header(), Refused(413, "too_many_pixels")),
        ("oversize_20mb", oversize(), Refused(413, "too_large")),
        ("oversize_20mb_chunked", Post(oversize(), chunked=True), Refused(413, "too_large")),
        ("oversize_20mb_raw_chunked", Post(oversize(), raw=True, chunked=True), Refused(413, "too_large")),
        # --- good images, some sent oddly
        ("png", _good("png", w=11, h=7), ACCEPTED),
        ("jpeg", _good("jpeg", w=13, h=5), ACCEPTED),
        ("jpeg_grey_progressive", _good("jpeg", w=6, h=9, mode="L", colour=128, progressive=True), ACCEPTED),
        ("webp", webp(10, 3, note=RUN), ACCEPTED),
        ("gif_animated", gif(10, 4, frames=3, note=RUN), ACCEPTED),
        ("bmp", bmp(10, 5), ACCEPTED),  # no metadata to carry a nonce: may answer 200 "seen before"
        ("tiff", tiff(10, 6, note=RUN), ACCEPTED),
        ("jpeg_header_past_1mib", jpeg_fat_header(note=RUN), ACCEPTED),
        ("png_1x1", _good("png", w=1, h=1, tag="1x1"), ACCEPTED),
        (
            "png_named_jpg_wrong_type",
            Post(_good("png", w=5, h=5, tag="jpg"), filename="photo.jpg", content_type="image/jpeg"),
            ACCEPTED,
        ),
        ("path_like_filename", Post(_good("png", w=4, h=4, tag="path"), filename="../../x.png"), ACCEPTED),
        (
            "raw_body_with_query_caption",
            Post(_good("jpeg", w=3, h=3, tag="raw"), raw=True, query="caption=a%20raw%20upload"),
            ACCEPTED,
        ),
        (
            "unicode_captions",
            Post(
                _good("png", w=6, h=6, tag="uni"),
                fields=[
                    ("captions", "café au lait, naïve façade"),
                    ("captions", "一只猫坐在垫子上 🐈"),
                    ("captions", "Ωμέγα — ünïcödé"),
                    ("tags", '{"lieu": "Genève", "emoji": "📷"}'),
                    ("user_id", "zoë"),
                ],
            ),
            ACCEPTED,
        ),
        # --- bad metadata around a good image
        ("caption_bad_utf8", Post(png(), fields=[("captions", b"caf\xe9 \xff\xfe broken")]), Refused(400, "bad_text")),
        ("caption_query_bad_utf8", Post(png(), raw=True, query="caption=%FF%FE"), Refused(400, "bad_text")),
        ("caption_huge_100k", Post(png(), fields=[("captions", "x" * 100_000)]), Refused(422, "invalid_event")),
        (
            "captions_21",
            Post(png(), fields=[("captions", f"caption {i}") for i in range(21)]),
            Refused(422, "invalid_event"),
        ),
        ("caption_nul", Post(png(), fields=[("captions", "a\x00b")]), Refused(400, "bad_text")),
        ("tags_not_json", Post(png(), fields=[("tags", "camera=x")]), Refused(400, "bad_tags")),
        ("tags_json_array", Post(png(), fields=[("tags", '["a", "b"]')]), Refused(400, "bad_tags")),
        ("tags_non_string_value", Post(png(), fields=[("tags", '{"iso": 100}')]), Refused(400, "bad_tags")),
        ("tags_deeply_nested", Post(png(), fields=[("tags", "[" * 100_000)]), Refused(400, "bad_tags")),
        ("tags_nul", Post(png(), fields=[("tags", '{"a": "b\\u0000"}')]), Refused(400, "bad_text")),
        (
            "tags_51",
            Post(png(), fields=[("tags", json.dumps({f"k{i}": "v" for i in range(51)}))]),
            Refused(422, "invalid_event"),
        ),
        ("user_id_query_nul", Post(png(), raw=True, query="user_id=a%00b"), Refused(400, "bad_text")),
        ("user_id_too_long", Post(png(), fields=[("user_id", "u" * 129)]), Refused(422, "invalid_event")),
        ("source_bad", Post(png(), query="source=../etc"), Refused(422, None)),
        # --- bad requests
        ("api_key_wrong", Post(png(), headers={"X-API-Key": "not-the-key"}), Refused(401, "unauthorized")),
        ("api_key_missing", Post(png(), headers={}), Refused(401, "unauthorized")),
        ("multipart_without_file", Post(None, fields=[("captions", "no file here")]), Refused(400, "missing_file")),
        ("file_as_plain_field", Post(None, fields=[("file", "not a file part")]), Refused(400, "missing_file")),
        (
            "multipart_second_file",
            Post(png(), extra_parts=[("file", png(3, 3), "b.png", "image/png")]),
            Refused(400, "bad_multipart"),
        ),
        ("multipart_no_boundary", Post(png(), body_type="multipart/form-data"), Refused(400, "bad_multipart")),
        (
            "multipart_garbage",
            Post(b"garbage", raw=True, body_type="multipart/form-data; boundary=zz"),
            Refused(400, "bad_multipart"),
        ),
        # --- framing: boundaries, preamble and epilogue, transfer encodings, field counts
        ("boundary_70_chars", Post(_good("png", w=3, h=4, tag="b70"), boundary="b" * 70), ACCEPTED),
        ("boundary_rfc_punctuation", Post(_good("png", w=3, h=5, tag="bp"), boundary="'()+_,-./:=?"), ACCEPTED),
        (
            "boundary_header_differs_from_body",
            Post(png(), body_type="multipart/form-data; boundary=other-boundary"),
            Refused(400, "bad_multipart"),  # the body does not start with --other-boundary
        ),
        (
            "epilogue_after_the_last_boundary",
            Raw(
                raw_part("file", _good("png", w=3, h=6, tag="epi"), filename="x.png")
                + b"--b--\r\nignored epilogue\r\n--b\r\nnot a part",
                data=_good("png", w=3, h=6, tag="epi"),
            ),
            ACCEPTED,
        ),
        (
            "preamble_before_the_first_boundary",  # RFC 2046 allows one; the parser does not: a clear 400
            Raw(b"a preamble\r\n" + raw_part("file", png(), filename="x.png") + b"--b--\r\n"),
            Refused(400, "bad_multipart"),
        ),
        (
            "lf_only_line_endings",
            Raw(raw_part("file", png(), filename="x.png").replace(b"\r\n", b"\n") + b"--b--\n"),
            Refused(400, "bad_multipart"),
        ),
        (
            "file_part_base64_transfer_encoding",
            Raw(
                raw_part("file", base64.b64encode(png()), "Content-Transfer-Encoding: base64", filename="x.png")
                + b"--b--\r\n"
            ),
            Refused(400, "bad_multipart"),
        ),
        (
            "caption_quoted_printable_transfer_encoding",
            Raw(
                raw_part("file", png(), filename="x.png")
                + raw_part("captions", b"caf=C3=A9", "Content-Transfer-Encoding: quoted-printable")
                + b"--b--\r\n"
            ),
            Refused(400, "bad_multipart"),
        ),
        ("fields_1000", Post(png(), fields=[(f"f{i}", "v") for i in range(1000)]), Refused(400, "bad_multipart")),
        # --- charsets and encodings of the text parts
        (
            "charset_rot13_body",
            Post(
                png(),
                fields=[("captions", "n png")],
                body_type="multipart/form-data; boundary=lake-test-boundary; charset=rot13",
            ),
            Refused(400, "bad_text"),
        ),
        (
            "charset_unknown_body",
            Post(png(), body_type="multipart/form-data; boundary=lake-test-boundary; charset=x-no-such-charset"),
            Refused(400, "bad_text"),
        ),
        (
            "charset_punycode_part",
            Post(png(), extra_parts=[("captions", "a cat-", None, "text/plain; charset=punycode")]),
            Refused(400, "bad_text"),
        ),
        (
            "charset_base64_part",
            Post(png(), extra_parts=[("captions", "YSBjYXQ=", None, "text/plain; charset=base64")]),
            Refused(400, "bad_text"),
        ),
        (
            "charset_utf7_script",  # "+ADw-script+AD4-" is "<script>" in UTF-7: refused, not decoded
            Post(png(), extra_parts=[("captions", "+ADw-script+AD4-", None, "text/plain; charset=utf-7")]),
            Refused(400, "bad_text"),
        ),
        (
            "caption_utf16_declared",
            Post(
                _good("png", w=4, h=5, tag="u16"),
                extra_parts=[("captions", "un chat ☕".encode("utf-16"), None, "text/plain; charset=UTF-16")],
            ),
            ACCEPTED,
        ),
        (
            "caption_utf16_undeclared",
            Post(png(), fields=[("captions", "a cat".encode("utf-16"))]),
            Refused(400, "bad_text"),
        ),
        (
            "caption_latin1_declared_bad_bytes",
            Post(png(), extra_parts=[("captions", b"\x81\x8d", None, "text/plain; charset=cp1252")]),
            Refused(400, "bad_text"),
        ),  # bytes cp1252 leaves undefined
        ("caption_cesu8_surrogate", Post(png(), fields=[("captions", b"\xed\xa0\x80")]), Refused(400, "bad_text")),
        ("caption_nul_in_multibyte", Post(png(), fields=[("captions", "é\x00é")]), Refused(400, "bad_text")),
        ("caption_overlong_utf8_slash", Post(png(), fields=[("captions", b"\xc0\xaf")]), Refused(400, "bad_text")),
        ("tags_lone_surrogate", Post(png(), fields=[("tags", '{"a": "\\ud800"}')]), Refused(400, "bad_text")),
        ("tags_json_null", Post(png(), fields=[("tags", "null")]), Refused(400, "bad_tags")),
        ("tags_json_string", Post(png(), fields=[("tags", '"camera"')]), Refused(400, "bad_tags")),
        ("tags_json_number_inf", Post(png(), fields=[("tags", "1e999")]), Refused(400, "bad_tags")),
        ("tags_json_bigint", Post(png(), fields=[("tags", "9" * 5000)]), Refused(400, "bad_tags")),
        (
            "tags_value_100k",
            Post(png(), fields=[("tags", json.dumps({"k": "v" * 100_000}))]),
            Refused(422, "invalid_event"),
        ),
        # --- file names and content types that lie or inject
        (
            "filename_header_injection",
            Raw(
                raw_part("file", _good("png", w=4, h=6, tag="crlf"), filename=b'x.png"\r\nX-Injected: 1\r\nA: "b')
                + b"--b--\r\n",
                data=_good("png", w=4, h=6, tag="crlf"),
            ),
            ACCEPTED,  # the name is never used: keys are the sha256
        ),
        ("filename_rtl_override", Post(_good("png", w=4, h=7, tag="rtl"), filename="\u202egnp.exe"), ACCEPTED),
        ("part_type_text_html", Post(_good("png", w=4, h=8, tag="html"), content_type="text/html"), ACCEPTED),
        (
            "raw_body_claims_json",
            Post(_good("jpeg", w=4, h=9, tag="rawjson"), raw=True, body_type="application/json"),
            ACCEPTED,
        ),
        (
            "multipart_sent_as_urlencoded",  # the multipart framing is then the image's bytes
            Raw(multipart([("file", png(), "x.png", "image/png")])[0], "application/x-www-form-urlencoded"),
            Refused(415, "not_an_image"),
        ),
        # --- identities
        ("user_id_bad_utf8", Post(png(), fields=[("user_id", b"\xff\xfe")]), Refused(400, "bad_text")),
        (
            "user_id_as_second_file",
            Post(png(), extra_parts=[("user_id", b"u", "u.txt", "text/plain")]),
            Refused(400, "bad_multipart"),
        ),
        ("user_id_10k", Post(png(), fields=[("user_id", "u" * 10_000)]), Refused(422, "invalid_event")),
        ("user_id_query_cesu8_surrogate", Post(png(), raw=True, query="user_id=%ED%A0%80"), Refused(400, "bad_text")),
        ("event_id_not_a_uuid", Post(png(), query="event_id=1%3B%20DROP%20TABLE"), Refused(422, None)),
        ("source_crlf_injection", Post(png(), query="source=api%0D%0AX-Injected:%201"), Refused(422, None)),
        ("get_non_hex_id", Get("not-a-hex-id"), Refused(422, None)),
        ("get_upper_hex_id", Get("A" * 64), Refused(422, None)),
        ("get_id_newline", Get("a" * 64 + "%0A"), Refused(422, None)),
        ("get_dotdot", Get("%2E%2E"), Refused(422, None)),
        ("get_path_traversal", Get("..%2F..%2Fx"), Refused(404, None)),
        ("get_unknown_id", Get("0" * 64), Refused(404, "not_found")),
    ]


CORPUS = corpus()
