"""Silver keeps pixels only: a JPEG carrying EXIF (with GPS), XMP, IPTC (APP13), an ICC profile and a
comment comes out of lake.normalize.normalize_image, and out of the silver job into MinIO, with none of them."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from lake.normalize import normalize_image
from tests.utils.images import RUN

GPS = ExifTags.IFD.GPSInfo
SECRETS = (b"Lake Test Cam", b"LakeXmpCreator", b"LakeIptcByline", b"Photoshop 3.0", b"ICC_PROFILE", b"Exif\0\0")


def segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the scan."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    out, i = [], 2
    while i < len(jpeg):
        assert jpeg[i] == 0xFF, f"bad marker at {i}"
        marker = jpeg[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (length,) = struct.unpack(">H", jpeg[i + 2 : i + 4])
        out.append((marker, jpeg[i + 4 : i + 2 + length]))
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        i += 2 + length
    return out


def iptc_app13(byline: bytes) -> bytes:
    """An APP13 segment: a Photoshop 8BIM resource 0x0404 holding an IPTC By-line (2:80) record."""
    iptc = b"\x1c\x02\x50" + struct.pack(">H", len(byline)) + byline
    resource = b"8BIM" + b"\x04\x04" + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    payload = b"Photoshop 3.0\x00" + resource + (b"\x00" if len(iptc) % 2 else b"")
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def tagged_jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    """A JPEG with EXIF (camera, GPS position, orientation), XMP, IPTC, an ICC profile and a comment."""
    rng = np.random.default_rng(int(RUN[:8], 16) + width * 31 + orientation)
    img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Lake Test Cam"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(GPS)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.25)
    xmp = (
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        b' exif:GPSLatitude="52,31.2N" exif:GPSLongitude="13,24.6E"><dc:creator>LakeXmpCreator</dc:creator>'
        b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, exif=exif.tobytes(), xmp=xmp, icc_profile=icc, comment=f"run {RUN}")
    data = buf.getvalue()
    data = data[:2] + iptc_app13(b"LakeIptcByline") + data[2:]  # Pillow writes no IPTC: splice it in after SOI
    # the input really carries all of it, or the test proves nothing
    markers = {m for m, _ in segments(data)}
    assert {0xE1, 0xE2, 0xED, 0xFE} <= markers
    src = Image.open(io.BytesIO(data))
    assert src.getexif().get_ifd(GPS)[ExifTags.GPS.GPSLatitude] == (52.0, 31.0, 12.5)
    assert {"exif", "xmp", "icc_profile", "photoshop", "comment"} <= set(src.info)
    assert all(s in data for s in SECRETS)
    return data


def assert_bare(jpeg: bytes) -> None:
    """No APPn but the JFIF APP0, no comment, nothing Pillow reads as metadata, no trace of the input's."""
    segs = segments(jpeg)
    app = [(hex(m), p[:5]) for m, p in segs if 0xE0 <= m <= 0xEF]
    assert all(a == ("0xe0", b"JFIF\x00") for a in app), app
    assert not any(m == 0xFE for m, _ in segs), "a COM segment survived"
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG" and img.mode == "RGB"
    exif = img.getexif()
    assert not dict(exif) and not exif.get_ifd(GPS), dict(exif)
    assert not {"exif", "xmp", "icc_profile", "photoshop", "comment", "adobe"} & set(img.info), img.info
    for s in (*SECRETS, b"http://ns.adobe.com/xap/1.0/", b"8BIM", RUN.encode()):
        assert s not in jpeg, s


@pytest.mark.parametrize("size", [(64, 48), (900, 600)], ids=["kept_size", "resized"])
@pytest.mark.parametrize("orientation", [1, 6])
def test_normalize_image_strips_every_kind_of_metadata(size, orientation):
    n = normalize_image(tagged_jpeg(*size, orientation=orientation))
    assert_bare(n.jpeg)
    assert (n.src_width, n.src_height) == (size[::-1] if orientation == 6 else size)


@pytest.mark.integration
@pytest.mark.slow
def test_silver_objects_carry_no_metadata(spark, unique):
    """Through the silver job: bronze bytes in MinIO, a bronze event row, silver's JPEG read back from MinIO."""
    from lake.clients import minio_client
    from lake.storage import put_bronze
    from spark_jobs.silver import normalize_images as job
    from tests.utils.bronze import event_row, scratch_lake, sha

    inputs = {
        name: tagged_jpeg(*size, orientation=o) for name, size, o in [("kept", (64, 48), 1), ("big", (900, 600), 6)]
    }
    mc = minio_client()
    for data in inputs.values():
        put_bronze(mc, sha(data), data, "image/jpeg")
    with scratch_lake(spark, unique) as lake:
        lake.append([event_row(i, sha(data)) for i, data in enumerate(inputs.values())])
        counts = job.run(spark, tables=lake.silver, catalog=lake.catalog)
        assert counts["normalized"] == 2 and counts["quarantined"] == 0, counts
        rows = {r.image_id: r for r in spark.table(lake.silver.silver).collect()}
    for name, data in inputs.items():
        jpeg = mc.get_object("silver", job.silver_key(sha(data))).read()
        assert_bare(jpeg)
        assert rows[sha(data)].src_format == "image/jpeg", name
