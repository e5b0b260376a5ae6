"""Checking image bytes at the front door: sniff the real format (never trust the
client's content type), guard against decompression bombs, and make sure it decodes.

    from lake.images import inspect_image
    info = inspect_image(data)      # ImageInfo(content_type, width, height), or raises Rejected
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from lake.events import Reason, Rejected

# Magic numbers of the formats Lake accepts, longest prefixes first.
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, ctype in _MAGIC:
        if data.startswith(magic):
            return ctype
    return None


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the start of an image file (the header is enough), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(head)).size
    except Exception:  # noqa: BLE001 -- Pillow raises many types for bad data; None says so
        return None


def decode(
    data: bytes, *, max_bytes: int, max_pixels: int, draft: Callable[[int, int], tuple[int, int]] | None = None
) -> tuple[Image.Image, ImageInfo]:
    """Check and decode ``data``: (the loaded image, its sniffed type and stored size).

    ``draft(width, height)`` gives the smallest size a JPEG may be decoded at (libjpeg
    scales by 1/2, 1/4 or 1/8 while decoding: far cheaper than decoding in full).
    Raises Rejected with the reason (empty, too_large, not_an_image, too_many_pixels,
    corrupt_image).
    """
    if not data:
        raise Rejected(Reason.EMPTY, "no bytes")
    if len(data) > max_bytes:
        raise Rejected(Reason.TOO_LARGE, f"{len(data)} bytes; the limit is {max_bytes}")
    ctype = sniff(data)
    if ctype is None:
        raise Rejected(Reason.NOT_AN_IMAGE, "not a JPEG, PNG, WebP, GIF, BMP or TIFF file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data": metadata, not pixels
            img = Image.open(io.BytesIO(data))  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise Rejected(
                    Reason.TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels; the limit is {max_pixels}"
                )
            if ctype == "image/jpeg" and draft is not None:
                img.draft(img.mode, draft(width, height))
            img.load()  # a truncated or corrupt file fails here
    except Rejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Rejected(Reason.TOO_MANY_PIXELS, str(e)) from e
    except UnidentifiedImageError as e:  # its text names a Python object, not the problem
        raise Rejected(Reason.CORRUPT_IMAGE, f"{ctype} header does not parse") from e
    except Exception as e:  # Pillow raises many types for bad data
        raise Rejected(Reason.CORRUPT_IMAGE, f"{ctype} does not decode: {e}"[:300]) from e
    return img, ImageInfo(ctype, width, height)


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Validate ``data`` as an image Lake will keep; raise Rejected with the reason."""
    # Decoding at 1/8 scale is enough to prove a JPEG is whole.
    return decode(
        data, max_bytes=max_bytes, max_pixels=max_pixels, draft=lambda w, h: (max(1, w // 8), max(1, h // 8))
    )[1]
