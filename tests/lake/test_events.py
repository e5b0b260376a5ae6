"""lake/events.py: parse_upload's reason for every kind of bad event, the inline-bytes
checks of image_bytes, and bronze_key's refusal of anything but a sha256. No servers."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from lake.events import ImageUploaded, Reason, Rejected, parse_upload
from lake.tables import bronze_key
from tests.utils.images import png

DATA = png(4, 4, "red")
ID = hashlib.sha256(DATA).hexdigest()
EVENT_ID = "6f1c2a56-3d4b-4f63-9a51-0c3f1e2d4b5a"


def event(**over) -> dict:
    """A valid claim-check event as a dict; ``over`` replaces fields (None deletes one)."""
    ev = {
        "schema_version": 1,
        "event_id": EVENT_ID,
        "image_id": ID,
        "content_type": "image/png",
        "size_bytes": len(DATA),
        "bronze_key": f"images/{ID}",
        "captions": ["a red square"],
        "tags": {"k": "v"},
    }
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not None}


def inline(**over) -> dict:
    return event(bronze_key=None, image_b64=base64.b64encode(DATA).decode(), **over)


def reason_of(value) -> Reason:
    with pytest.raises(Rejected) as e:
        parse_upload(value)
    assert e.value.message and str(e.value).startswith(e.value.reason.value)
    return e.value.reason


def test_valid_events_parse_from_bytes_and_str():
    ev = parse_upload(json.dumps(event()).encode())
    assert (ev.image_id, ev.delivery, ev.captions, ev.tags) == (ID, "claim_check", ["a red square"], {"k": "v"})
    assert ev.uploaded_at.tzinfo is not None
    ev = parse_upload(json.dumps(inline()))
    assert ev.delivery == "inline" and ev.image_bytes() == DATA


def test_round_trip_through_kafka_form():
    ev = ImageUploaded(**event(captions=["café 🐈"]))
    key, value = ev.to_kafka()
    assert key == ID.encode()
    assert parse_upload(value) == ev


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"{",
        b"not json",
        b"{'single': 'quotes'}",
        b"\xff\xfe\x00garbage",
        b'{"a": 1} trailing',
        b"[" * 100_000,  # deep nesting: a RecursionError inside json, not a crash of the consumer
        None,  # a Kafka tombstone
    ],
    ids=["empty", "open_brace", "text", "single_quotes", "bad_utf8", "trailing", "deep_nesting", "tombstone"],
)
def test_bad_json(value):
    assert reason_of(value) is Reason.BAD_JSON


@pytest.mark.parametrize("value", ["[]", "[1, 2]", '"a string"', "42", "null", "true"])
def test_json_that_is_not_an_object(value):
    assert reason_of(value) is Reason.BAD_JSON


@pytest.mark.parametrize(
    "version",
    [None, 0, 2, "1", 1.5, 1.0, True, [1], {"v": 1}],
    ids=["missing", "0", "2", "str", "1.5", "float_1", "true", "list", "object"],
)
def test_unknown_schema_version(version):
    ev = (
        event(schema_version=version)
        if version is not None
        else {k: v for k, v in event().items() if k != "schema_version"}
    )
    assert reason_of(json.dumps(ev)) is Reason.UNKNOWN_SCHEMA_VERSION


@pytest.mark.parametrize("field", ["image_id", "content_type", "size_bytes"])
def test_missing_required_field(field):
    ev = event()
    del ev[field]
    assert reason_of(json.dumps(ev)) is Reason.INVALID_EVENT


@pytest.mark.parametrize(
    "over",
    [
        {"bronze_key": f"images/{ID}", "image_b64": base64.b64encode(DATA).decode()},  # both deliveries
        {"bronze_key": None},  # neither
        {"bronze_key": "images/" + "0" * 64},  # another image's key
        {"bronze_key": f"images/{ID.upper()}"},
        {"bronze_key": f"bronze/images/{ID}"},
        {"bronze_key": f"images/../../etc/{ID}"},  # path traversal
        {"bronze_key": f"images/{ID}/../../../x"},
        {"bronze_key": f"/images/{ID}"},
        {"bronze_key": f"images/{ID}\n"},
        {"image_id": ID.upper(), "bronze_key": f"images/{ID.upper()}"},
        {"image_id": ID[:-1], "bronze_key": f"images/{ID[:-1]}"},
        {"image_id": ID + "\n", "bronze_key": f"images/{ID}\n"},  # `$` would let a newline through
        {"image_id": "../" + ID[3:], "bronze_key": f"images/../{ID[3:]}"},
        {"content_type": "text/html"},
        {"content_type": "image/png; charset=x"},
        {"size_bytes": 0},
        {"size_bytes": -1},
        {"size_bytes": "many"},
        {"source": ""},
        {"source": "../etc"},
        {"source": "x" * 65},
        {"user_id": "u" * 129},
        {"captions": "not a list"},
        {"captions": ["x" * 1001]},
        {"captions": [f"c{i}" for i in range(21)]},
        {"captions": [1]},
        {"tags": ["not", "an", "object"]},
        {"tags": {"k": 1}},
        {"tags": {"k" * 65: "v"}},
        {"tags": {f"k{i}": "v" for i in range(51)}},
        {"event_id": "not-a-uuid"},
        {"unexpected": "field"},
    ],
    ids=lambda o: "-".join(f"{k}={str(v)[:20]}" for k, v in o.items()),
)
def test_invalid_event(over):
    assert reason_of(json.dumps(event(**over))) is Reason.INVALID_EVENT


@pytest.mark.parametrize(
    "at",
    [
        "yesterday",
        12,
        "0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",  # past year 9999 once in UTC
        "0001-01-01T00:00:00+23:59",  # before year 1 once in UTC
        "2099-01-01T00:00:00Z",  # a client clock far ahead: would stay "new" in every since= pull
    ],
)
def test_implausible_client_clock_is_bad_timestamp(at):
    assert reason_of(json.dumps(event(uploaded_at=at))) is Reason.BAD_TIMESTAMP


def test_client_clock_within_a_day_ahead_is_accepted():
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(hours=20)).isoformat()
    assert parse_upload(json.dumps(event(uploaded_at=soon))).uploaded_at.tzinfo is not None


def test_lone_surrogate_is_bad_text_and_keeps_the_event_id():
    from lake.events import Rejected

    raw = json.dumps(event(captions=["X"])).replace('"X"', '"\\ud800"')  # valid JSON, not text
    with pytest.raises(Rejected) as e:
        parse_upload(raw)
    assert e.value.reason is Reason.BAD_TEXT and e.value.ident["image_id"] == ID


def test_refusals_keep_the_identity_that_parsed():
    from lake.events import Rejected

    body = event(schema_version=2, user_id="u-1", source="kcat")
    with pytest.raises(Rejected) as e:
        parse_upload(json.dumps(body))
    assert e.value.ident == {"event_id": body["event_id"], "image_id": ID, "user_id": "u-1", "source": "kcat"}
    body = event(event_id="not-a-uuid", image_id="bad", user_id=["list"])
    with pytest.raises(Rejected) as e:
        parse_upload(json.dumps(body))
    assert e.value.ident == {}  # nothing that failed its own check is kept


def test_claim_check_signature_covers_what_it_asserts():
    from lake.events import ImageUploaded

    ev = parse_upload(json.dumps(event())).signed("k1")
    again = parse_upload(ev.to_kafka()[1])
    assert again.trusted(["k1"]) and again.trusted(["k0", "k1"]) and not again.trusted(["other"])
    for change in ({"captions": ["forged"]}, {"user_id": "mallory"}, {"content_type": "image/x-evil"}):
        assert not ImageUploaded.model_validate({**again.model_dump(), **change}).trusted(["k1"])
    assert not parse_upload(json.dumps(event())).trusted(["k1"])  # unsigned claim-check
    assert parse_upload(json.dumps(event()))  # still parses: the stream decides, with its keys


def test_fingerprint_ignores_delivery_clock_and_signature():
    a = parse_upload(json.dumps(event()))
    b = parse_upload(json.dumps(event(uploaded_at="2026-01-02T00:00:00Z"))).signed("k")
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != parse_upload(json.dumps(event(captions=["another"]))).fingerprint()


def test_event_id_is_required_on_the_wire():
    """Without it a replayed event would get a fresh id and land twice."""
    ev = event()
    del ev["event_id"]
    with pytest.raises(Rejected) as e:
        parse_upload(json.dumps(ev))
    assert e.value.reason is Reason.INVALID_EVENT and "event_id" in e.value.message


def test_limits_are_inclusive():
    ev = parse_upload(
        json.dumps(
            event(
                captions=["x" * 1000] * 20,
                tags={f"k{i}": "v" * 256 for i in range(50)},
                user_id="u" * 128,
                source="s" * 64,
            )
        )
    )
    assert len(ev.captions) == 20 and len(ev.tags) == 50


# ---- image_bytes: the inline delivery -------------------------------------------------


def inline_event(data: bytes = DATA, **over) -> ImageUploaded:
    fields = {
        "bronze_key": None,
        "image_id": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "image_b64": base64.b64encode(data).decode(),
        **over,
    }
    return ImageUploaded(**event(**fields))


@pytest.mark.parametrize(
    "b64",
    ["not base64!", "aGVsbG8", "aGVs bG8=", "aGVsbG8=\n", "////", "=abc"],
    ids=["punctuation", "no_padding", "space", "newline", "decodes_but_wrong", "pad_first"],
)
def test_image_bytes_bad_base64(b64):
    ev = inline_event(image_b64=b64)
    with pytest.raises(Rejected) as e:
        ev.image_bytes()
    # "////" is valid base64 of other bytes: the checksum catches it
    assert e.value.reason in ((Reason.CHECKSUM_MISMATCH,) if b64 == "////" else (Reason.BAD_BASE64,))


def test_image_bytes_over_the_limit():
    data = b"\x89PNG" + bytes(2**20)
    with pytest.raises(Rejected) as e:
        inline_event(data).image_bytes()
    assert e.value.reason is Reason.TOO_LARGE
    assert inline_event(data).image_bytes(max_bytes=len(data)) == data


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_image_bytes_limit_is_exact(n):
    """The cheap length pre-check rounds up; the decoded size must still be within the limit."""
    data = bytes(range(n))
    assert inline_event(data).image_bytes(max_bytes=n) == data
    with pytest.raises(Rejected) as e:
        inline_event(data).image_bytes(max_bytes=n - 1)
    assert e.value.reason is Reason.TOO_LARGE


def test_image_bytes_checksum_mismatch():
    flipped = DATA[:-1] + bytes([DATA[-1] ^ 1])
    with pytest.raises(Rejected) as e:  # other bytes of the same size
        inline_event(image_b64=base64.b64encode(flipped).decode()).image_bytes()
    assert e.value.reason is Reason.CHECKSUM_MISMATCH
    with pytest.raises(Rejected) as e:  # size_bytes disagrees with the bytes
        inline_event(size_bytes=len(DATA) + 1).image_bytes()
    assert e.value.reason is Reason.CHECKSUM_MISMATCH


# ---- bronze_key -----------------------------------------------------------------------


def test_bronze_key_is_images_slash_sha256():
    assert bronze_key(ID) == f"images/{ID}"


@pytest.mark.parametrize(
    "image_id",
    [
        "",
        ID.upper(),
        ID[:-1],
        ID + "0",
        ID + "\n",
        "\n" + ID,
        ID[:-1] + "g",
        " " + ID[1:],
        "../../" + ID[6:],
        ID[:32] + "/" + ID[33:],
        "images/" + ID,
        None,
        123,
        ID.encode(),
    ],
    ids=[
        "empty",
        "upper",
        "63",
        "65",
        "trailing_newline",
        "leading_newline",
        "non_hex",
        "space",
        "traversal",
        "slash",
        "prefixed",
        "none",
        "int",
        "bytes",
    ],
)
def test_bronze_key_refuses_anything_but_64_hex(image_id):
    with pytest.raises(ValueError):
        bronze_key(image_id)


def test_huge_integer_is_bad_json_not_a_crash():
    with pytest.raises(Rejected) as e:
        parse_upload(b'{"schema_version": 1, "x": ' + b"1" * 5000 + b"}")
    assert e.value.reason == Reason.BAD_JSON
