"""Hypothesis strategies for hostile `images.uploaded` values: every field a producer controls is
either right or arbitrary JSON of the right or the wrong type (lone surrogates, huge numbers, deep
nesting, odd clocks included); the delivery is inline bytes, a claim-check, both or neither.

    from tests.spark_jobs.bronze.strategies import events
    @given(events(image))
    def test_something(value: bytes): ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime

from hypothesis import strategies as st

# Text with anything in it, surrogates too (json.dumps escapes them as \udXXX: valid JSON, not text).
ANY_TEXT = st.text(alphabet=st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | ANY_TEXT
ANY_JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=12
)
CLOCKS = st.sampled_from(
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2099-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2026-01-02T03:04:05",
        "2026-01-02T03:04:05.123456+05:30",
        "not a time",
        "",
    ]
) | st.datetimes().map(lambda d: d.isoformat())


def events(image: bytes) -> st.SearchStrategy[bytes]:
    """Kafka values of upload events for ``image`` (a valid image): a valid event with none, one or a
    few of its fields replaced by hostile values (or left out), and sometimes a field it does not know."""
    image_id = hashlib.sha256(image).hexdigest()
    valid = {
        "schema_version": st.just(1),
        "event_id": st.uuids(version=4).map(str),
        "image_id": st.just(image_id),
        "source": st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
        "content_type": st.sampled_from(["image/png", "image/jpeg", "image/x-evil"]),  # inline: sniffed anyway
        "size_bytes": st.just(len(image)),
        "uploaded_at": st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 1, 1)).map(
            lambda d: d.isoformat() + "Z"
        ),
        "user_id": st.none() | ANY_TEXT.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
        "captions": st.lists(st.text(max_size=40), max_size=4),
        "tags": st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=4),
        "image_b64": st.just(base64.b64encode(image).decode()),
    }
    hostile = {
        "schema_version": ANY_JSON,
        "event_id": ANY_TEXT | ANY_JSON,
        "image_id": st.sampled_from([image_id.upper(), image_id[:-1], "../" + image_id]) | ANY_JSON,
        "source": ANY_TEXT | ANY_JSON,
        "content_type": ANY_TEXT | ANY_JSON,
        "size_bytes": st.integers() | ANY_JSON,
        "uploaded_at": CLOCKS | ANY_JSON,
        "user_id": ANY_TEXT | ANY_JSON,
        "captions": st.lists(ANY_TEXT, max_size=4) | ANY_JSON,
        "tags": st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=4) | ANY_JSON,
        "image_b64": ANY_TEXT | ANY_JSON,
        "bronze_key": st.just(f"images/{image_id}") | ANY_JSON,  # with image_b64: both deliveries
        "signature": st.text("0123456789abcdef", min_size=64, max_size=64) | ANY_JSON,
    }
    names = sorted(hostile)

    @st.composite
    def build(draw) -> bytes:
        ev = {k: draw(v) for k, v in valid.items()}
        for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
            value = draw(st.one_of(hostile[name], st.just(...)))  # ...: the field left out
            if value is ...:
                ev.pop(name, None)
            else:
                ev[name] = value
        if ev.get("user_id") is None:
            ev.pop("user_id", None)
        if draw(st.integers(0, 9)) == 0:
            ev[draw(ANY_TEXT)] = draw(ANY_JSON)  # a field the schema does not know
        return json.dumps(ev, allow_nan=True).encode()

    return build()


def unique_event_ids(values: list[bytes]) -> list[bytes]:
    """The same values with every parsable event_id made unique (a drawn list may repeat one)."""
    out = []
    for v in values:
        ev = json.loads(v)
        if isinstance(ev.get("event_id"), str):
            try:
                uuid.UUID(ev["event_id"])
                ev["event_id"] = str(uuid.uuid4())
            except ValueError:
                pass
        out.append(json.dumps(ev, allow_nan=True).encode())
    return out
