"""Silver normalization, as pure functions over bytes and text (no I/O): one image in,
one canonical JPEG out, plus its perceptual hash; human captions cleaned.

    from lake.normalize import normalize_image, clean_caption, hamming
    n = normalize_image(data)             # Normalized(jpeg, width, height, ...), or raises Rejected
    hamming(n.phash, other.phash) <= 6    # near duplicates
    clean_caption("  A  Red\tCircle ")    # 'a red circle'

The output is a function of the input bytes and the parameters only: the same upload
always gives the same JPEG (same sha256_out), so re-running silver rewrites nothing new.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps

from lake.datasets.shapes import split_of
from lake.events import Reason, Rejected
from lake.images import decode

__all__ = ["Normalized", "normalize_image", "to_rgb", "phash", "hamming", "clean_caption", "split_of"]

MAX_SIDE = 384
MAX_PIXELS = 40_000_000  # Settings.max_image_pixels
QUALITY = 90
CAPTION_CHARS = 300
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Normalized:
    jpeg: bytes  # baseline JPEG, RGB, no metadata
    width: int  # of the JPEG
    height: int
    src_format: str  # the sniffed content type of the input, e.g. image/png
    src_width: int  # of the input as displayed (after EXIF orientation)
    src_height: int
    phash: str  # 16 hex digits, see phash()
    sha256_out: str  # hex sha256 of ``jpeg``


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) with the longest side at most ``max_side``, aspect kept, never upscaled."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orient(img: Image.Image) -> tuple[Image.Image, bool]:
    """The image as it should be displayed (EXIF orientation applied), and whether its axes swapped."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": handled below, not worth a log line per image
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            return ImageOps.exif_transpose(img), orientation in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 -- a broken EXIF block is metadata damage, not a bad image
        return img, False


def _eight_bit(img: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits (I;16*, I, F) scaled to L; Pillow's convert() would clip at 255."""
    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        a = a / 257.0
    else:
        lo, hi = float(np.nanmin(a)) if a.size else 0.0, float(np.nanmax(a)) if a.size else 0.0
        if lo < 0 or hi > 65535:
            a = (a - lo) * (255.0 / (hi - lo or 1.0))
        elif hi > 255:  # 16-bit data in a 32-bit mode (what older Pillows gave for 16-bit PNGs)
            a = a / 257.0
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8), "L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: alpha, palette transparency and PNG colour keys flattened onto white."""
    if img.mode.startswith("I") or img.mode == "F":
        return _eight_bit(img).convert("RGB")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or ("transparency" in img.info and img.mode in ("P", "L", "RGB")):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", img.size, WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")  # 1, L, P, CMYK (Adobe inversion already undone by the decoder), YCbCr ...
    except ValueError as e:
        raise Rejected(Reason.CORRUPT_IMAGE, f"cannot convert mode {img.mode} to RGB") from e


def normalize_image(
    data: bytes, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS, quality: int = QUALITY
) -> Normalized:
    """Validate, decode, orient, make RGB, shrink to ``max_side`` and re-encode ``data`` as JPEG.

    Raises Rejected (empty, not_an_image, corrupt_image, too_many_pixels), the codes of
    the front door (lake.images.inspect_image).
    """
    # Orientation only swaps axes, so the target in stored axes is _fit() of the stored size;
    # JPEGs decode at the smallest DCT scale still >= it, and LANCZOS finishes the job.
    img, info = decode(data, max_bytes=len(data), max_pixels=max_pixels, draft=lambda w, h: _fit(w, h, max_side))
    ctype, src_width, src_height = info.content_type, info.width, info.height
    try:
        img, swapped = _orient(img)
        if swapped:
            src_width, src_height = src_height, src_width
        img = to_rgb(img)
        size = _fit(src_width, src_height, max_side)
        if img.size != size:
            img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    except Rejected:
        raise
    except Exception as e:  # noqa: BLE001 -- a file that decodes but fails later is still bad data
        raise Rejected(Reason.CORRUPT_IMAGE, f"{ctype} does not convert: {e}"[:300]) from e
    img.info = {}  # Pillow copies comments and the like from info into the JPEG: write pixels only
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True, progressive=False)
    jpeg = buf.getvalue()
    return Normalized(
        jpeg, img.width, img.height, ctype, src_width, src_height, phash(img), hashlib.sha256(jpeg).hexdigest()
    )


# ---- perceptual hash --------------------------------------------------------------------------------------------

_N = 32


def _dct_matrix(n: int) -> np.ndarray:
    """Unnormalised DCT-II (scipy.fftpack.dct's default): X[k] = 2 sum_i x[i] cos(pi k (2i + 1) / 2n)."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT = _dct_matrix(_N)


def phash(img: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 hex digits (bit 63 = coefficient (0, 0), row-major).

    Greyscale, LANCZOS to 32x32, 2-D DCT-II, the top-left 8x8 (lowest) frequencies; a bit
    is set where the coefficient is above the median of the 63 AC ones (the DC term, the
    mean brightness, would shift the threshold). The bits are those of imagehash.phash
    except that its median also counts DC. Robust to resizing and re-encoding; compare
    with hamming().
    """
    grey = np.asarray(img.convert("L").resize((_N, _N), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    """How many of the 64 bits of two phash() values differ."""
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths: {a!r}, {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()


# ---- captions ---------------------------------------------------------------------------------------------------

_DROP = {"Cc", "Cf", "Cs"}  # control, format (zero-width, bidi overrides), lone surrogates (not UTF-8)


def clean_caption(text: str | None, max_chars: int = CAPTION_CHARS) -> str | None:
    """Trimmed, NFC, lower-case, one space between words, no control or invisible format
    characters, at most ``max_chars`` (cut at a word boundary); None when nothing is left."""
    if not text:
        return None
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) not in _DROP)
    text = " ".join(text.lower().split())
    if len(text) > max_chars:
        cut = text[: max_chars + 1]  # one more: if it is a space, the cut falls between two words
        space = cut.rfind(" ")
        text = (cut[:space] if space > 0 else cut[:max_chars]).rstrip()
    return text or None
