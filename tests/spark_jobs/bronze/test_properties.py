"""Properties of bronze's row check (no servers): whatever JSON a producer sends, check_event
answers with a row, never an exception; a refused row names a known reason; an accepted row has
every field of its declared type (it converts to Arrow as Spark will: no poison pill downstream).

    .lake/venvs/core/bin/python -m pytest -q tests/spark_jobs/bronze/test_properties.py
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, event, given, settings

from lake.events import Reason
from spark_jobs.bronze.ingest_uploads import RESULT_COLUMNS, check_event
from tests.spark_jobs.bronze.strategies import events
from tests.spark_jobs.bronze.test_transform import LIMITS, DictStore
from tests.utils.images import png

IMAGE = png(5, 4, "green", note="property")
ARROW = {
    "boolean": pa.bool_(),
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "timestamp": pa.timestamp("us"),
    "array<string>": pa.list_(pa.string()),
    "map<string,string>": pa.map_(pa.string(), pa.string()),
}
SCHEMA = pa.schema([(name, ARROW[kind]) for name, kind in RESULT_COLUMNS])
REASONS = {r.value for r in Reason}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(IMAGE))
def test_any_event_gives_a_row_of_its_schema(value: bytes):
    import hashlib

    store = DictStore({hashlib.sha256(IMAGE).hexdigest(): (IMAGE, "image/png")})
    row = dict.fromkeys(SCHEMA.names) | check_event(value, store, **LIMITS)
    event(row["reason"] or "landed")  # --hypothesis-show-statistics: how often each outcome was drawn
    if row["ok"]:
        assert row["event_id"] and row["image_id"] and row["fingerprint"]
        assert row["content_type"] == "image/png"  # sniffed (inline) or signed by the API (claim-check)
    else:
        assert row["reason"] in REASONS and row["error"]
    row["kafka_partition"], row["kafka_offset"] = 0, 0
    frame = pd.DataFrame([row], columns=SCHEMA.names)
    if row["tags"] is not None:
        frame["tags"] = [list(row["tags"].items())]
    pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)  # raises on a value Spark could not take
