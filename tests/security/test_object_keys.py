"""No user string can choose where an object goes: image keys are content addresses (the SHA-256 of the bytes),
model prefixes are checked names. Properties over arbitrary text, then uploads through the real API whose every
user field (file name, user_id, tags, captions) tries to climb out of its prefix: each lands at
``bronze/images/<sha256>`` with those bytes, and no object key in any bucket ever holds the attempt.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/security/test_object_keys.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lake.registry import check_name, parse_spec
from lake.tables import bronze_key
from tests.services.api.helpers import lake, png, serve, service  # noqa: F401 -- fixtures

MARK = "zzescape"  # in every hostile string: no object key may ever contain it
CLIMBS = [
    f"../../{MARK}",
    f"/etc/{MARK}",
    f"images/../../warehouse/{MARK}",
    f"..%2F..%2F{MARK}",
    f"..\\..\\{MARK}",
    f"{MARK}/../../../models/x",
    f"./{MARK}\n/x",
    f"s3://models/{MARK}",
]


@given(st.text())
def test_an_image_key_is_a_content_address_or_refused(text):
    try:
        key = bronze_key(text)
    except ValueError:
        return
    assert key == f"images/{text}" and len(text) == 64 and set(text) <= set("0123456789abcdef")


@given(st.one_of(st.text(), st.sampled_from(CLIMBS + ["compact\n", "Compact", "a" * 64, "-x", "x.y"])))
def test_a_model_name_is_one_plain_path_segment(text):
    try:
        name = check_name(text)
    except ValueError:
        return
    assert name == text and "/" not in name and "." not in name and name.strip() == name
    cache = Path("/cache")
    assert (cache / name / "v1").resolve().parent.parent == cache  # the local copy stays in the cache


@given(st.one_of(st.text(), st.from_regex(r"[a-z0-9_./\\\n-]{0,12}(-v\d{1,3}|:production)\n?")))
def test_a_version_spec_names_a_checked_model(text):
    try:
        name, version, _ = parse_spec(text)
    except LookupError:
        return
    assert check_name(name) == name and (version is None or version >= 0)


@pytest.mark.parametrize(
    "namespace", ["lake.x; DROP TABLE y", "lake", "lake.`x`", "lake.x.upload_events --", "../lake.x", "lake.X"]
)
def test_a_namespace_written_into_sql_is_plain_identifiers(namespace):
    from lake.config import get_settings

    tables = get_settings().tables
    with pytest.raises(ValueError, match="namespace"):
        tables.under(namespace)
    assert tables.under("lake.rel0a1b").events == "lake.rel0a1b.upload_events"


def all_keys(mc) -> set[str]:
    return {f"{b.name}/{o.object_name}" for b in mc.list_buckets() for o in mc.list_objects(b.name, recursive=True)}


@pytest.mark.integration
def test_hostile_upload_fields_never_shape_a_key(lake):  # noqa: F811 -- the fixture imported above
    from lake.clients import minio_client

    mc = minio_client(lake["settings"])
    before = all_keys(mc)
    landed = {}
    with serve(service(lake), wait_model=False) as api:
        for i, climb in enumerate(CLIMBS):
            data = png(9000 + i)
            r = api.post(
                "/v1/images",
                files={"file": (climb, data, "image/png")},
                data={"user_id": climb, "captions": [climb], "tags": json.dumps({climb[:64]: climb})},
                params={"source": "security-test"},
            )
            assert r.status_code in (200, 201), r.text
            landed[hashlib.sha256(data).hexdigest()] = data
            assert r.json()["bronze_uri"] == f"s3://bronze/images/{r.json()['image_id']}"
        for value in CLIMBS:  # the query parameters with a pattern refuse it outright
            assert api.post("/v1/images", content=png(1), params={"source": value}).status_code == 422
            assert api.post("/v1/images", content=png(1), params={"event_id": value}).status_code == 422
    new = all_keys(mc) - before
    assert not [k for k in all_keys(mc) if MARK in k.lower()]
    for image_id, data in landed.items():
        assert mc.get_object("bronze", f"images/{image_id}").read() == data
    assert {k for k in new if k.startswith("bronze/")} <= {f"bronze/images/{i}" for i in landed}
