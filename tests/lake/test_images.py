"""lake/images.py: sniff for every format, inspect_image's verdict on every bytes-only
entry of the bad-input corpus, the pixel and size limits, and image_size. No servers."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lake.events import Reason, Rejected
from lake.images import ImageInfo, image_size, inspect_image, sniff
from tests.utils import images as f
from tests.utils.images import ACCEPTED, CORPUS, LIMIT

PIXELS = 40_000_000  # Settings.max_image_pixels
BYTES_ONLY = [(name, data, expect) for name, data, expect in CORPUS if isinstance(data, bytes)]


def verdict(data: bytes, *, max_bytes: int = LIMIT, max_pixels: int = PIXELS) -> ImageInfo | Reason:
    try:
        return inspect_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    except Rejected as e:
        assert e.message and len(e.message) <= 300 and "object at 0x" not in e.message, e.message
        return e.reason


@pytest.mark.parametrize("name,data,expect", BYTES_ONLY, ids=[c[0] for c in BYTES_ONLY])
def test_corpus_bytes(name, data, expect):
    got = verdict(data)
    if expect == ACCEPTED:
        img = Image.open(io.BytesIO(data))
        assert isinstance(got, ImageInfo), got
        assert (got.width, got.height) == img.size
        assert got.content_type == f"image/{img.format.lower()}"
    else:
        assert got == Reason(expect.reason)


def test_corpus_is_big_enough_and_named_uniquely():
    names = [c[0] for c in CORPUS]
    assert len(names) == len(set(names)) >= 20
    assert len(BYTES_ONLY) >= 15


@pytest.mark.parametrize(
    "data,ctype",
    [
        (f.png(), "image/png"),
        (f.jpeg(), "image/jpeg"),
        (f.jpeg(mode="CMYK", colour=(0, 0, 0, 255)), "image/jpeg"),
        (f.webp(), "image/webp"),
        (f.webp(lossless=False), "image/webp"),
        (f.gif(version="GIF87a"), "image/gif"),
        (f.gif(version="GIF89a"), "image/gif"),
        (f.bmp(), "image/bmp"),
        (f.tiff(), "image/tiff"),
        (f.tiff(big_endian=True), "image/tiff"),
    ],
    ids=["png", "jpeg", "jpeg_cmyk", "webp_lossless", "webp_lossy", "gif87a", "gif89a", "bmp", "tiff_le", "tiff_be"],
)
def test_sniff_formats(data, ctype):
    assert sniff(data) == ctype


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PN",
        b"\xff\xd8",
        b"GIF88a....",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"RIFF",
        b"WEBP",
        f.html(),
        f.svg(),
        f.pdf(),
        f.zip_file(),
        f.exe(),
        f.elf(),
        b"\x00" * 64,
        b"B",
        b" \x89PNG\r\n\x1a\n",
    ],
    ids=[
        "empty",
        "png_prefix",
        "jpeg_prefix",
        "gif88a",
        "riff_wave",
        "riff_only",
        "webp_no_riff",
        "html",
        "svg",
        "pdf",
        "zip",
        "exe",
        "elf",
        "zeros",
        "one_byte",
        "leading_space",
    ],
)
def test_sniff_unknown(data):
    assert sniff(data) is None


def test_sniff_ignores_what_follows_the_magic():
    """A polyglot: a PNG with a ZIP appended is still a PNG (bronze keeps the bytes as sent)."""
    data = f.png() + f.zip_file()
    assert sniff(data) == "image/png"
    assert verdict(data) == ImageInfo("image/png", 8, 8)


@pytest.mark.parametrize("mode,colour", [("RGB", "red"), ("L", 7), ("CMYK", (1, 2, 3, 4))])
def test_jpeg_modes_decode(mode, colour):
    assert verdict(f.jpeg(17, 9, colour, mode=mode)) == ImageInfo("image/jpeg", 17, 9)


@pytest.mark.parametrize("mode,colour", [("RGBA", (1, 2, 3, 4)), ("LA", (1, 2)), ("I;16", 300), ("P", 3), ("1", 1)])
def test_png_modes_decode(mode, colour):
    assert verdict(f.png(5, 3, colour, mode=mode)) == ImageInfo("image/png", 5, 3)


def test_exif_rotated_jpeg_reports_stored_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; silver applies it, the front door reports the stored size
    assert verdict(f.jpeg(20, 10, exif=exif.tobytes())) == ImageInfo("image/jpeg", 20, 10)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_jpeg_anywhere(keep):
    assert verdict(f.truncated_jpeg(keep)) is Reason.CORRUPT_IMAGE


def test_large_noise_jpeg_decodes():
    assert verdict(f.noise_jpeg(1024, 768)) == ImageInfo("image/jpeg", 1024, 768)


# ---- limits ---------------------------------------------------------------------------


def test_size_limit_is_inclusive():
    data = f.png()
    assert isinstance(verdict(data, max_bytes=len(data)), ImageInfo)
    assert verdict(data, max_bytes=len(data) - 1) is Reason.TOO_LARGE


def test_too_large_is_checked_before_the_format():
    assert verdict(f.html() * 10, max_bytes=100) is Reason.TOO_LARGE


def test_pixel_limit_is_inclusive():
    assert verdict(f.png(100, 40), max_pixels=4000) == ImageInfo("image/png", 100, 40)
    assert verdict(f.png(100, 41), max_pixels=4000) is Reason.TOO_MANY_PIXELS


def test_bomb_is_refused_from_its_header():
    """50 megapixels from a 6 KB file; refused before any decoding (fast, no big allocation)."""
    data = f.bomb_png()
    assert len(data) < 10_000
    assert Image.open(io.BytesIO(data)).size == (10_000, 5_000)
    assert verdict(data) is Reason.TOO_MANY_PIXELS


@pytest.mark.parametrize("w,h", [(65_535, 65_535), (65_535, 1_000), (10_000, 4_001)])
def test_jpeg_header_claims(w, h):
    assert verdict(f.jpeg_huge_header(w, h)) is Reason.TOO_MANY_PIXELS


def test_a_bomb_within_the_limit_decodes():
    """4000 x 4000 zeros: big when decoded, but within 40 MP, so it is an image like any other."""
    assert verdict(f.bomb_png(4_000, 4_000)) == ImageInfo("image/png", 4_000, 4_000)


# ---- image_size -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,size",
    [
        (f.png(11, 7), (11, 7)),
        (f.jpeg(13, 5), (13, 5)),
        (f.webp(10, 3), (10, 3)),
        (f.gif(10, 4, frames=3), (10, 4)),
        (f.bmp(10, 5), (10, 5)),
        (f.tiff(10, 6), (10, 6)),
        (f.bomb_png(), (10_000, 5_000)),
        (f.noise_jpeg(300, 200)[:2000], (300, 200)),  # the header is enough
    ],
)
def test_image_size_from_the_header(data, size):
    assert image_size(data) == size


@pytest.mark.parametrize("data", [b"", f.html(), f.jpeg_header_garbage(), f.png()[:20]])
def test_image_size_of_non_images_is_none(data):
    assert image_size(data) is None
