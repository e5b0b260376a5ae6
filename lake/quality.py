"""Quality gates between layers: Great Expectations 1.x suites run on the Spark dataframes
a job is about to write. Rows that break an expectation are named by id (GX's
`unexpected_index_list`), so the job quarantines exactly those and writes the rest.

    from lake.quality import gate
    verdict = gate(rows_df, "silver_images")   # validates; verdict.failed = {image_id: [expectation, ...]}
    good = rows_df.filter(~F.col("image_id").isin(list(verdict.failed)))

Every expectation here is row-level (a column map expectation), so a failure always
names the rows it is about; the suites are what `lake quality report` shows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from lake.tables import IMAGE_ID

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics leave the machine

SPLITS = ["train", "val", "test"]


class GateError(RuntimeError):
    """A suite could not be evaluated; the job stops rather than write unchecked rows."""


def _suite_specs() -> dict[str, tuple[list[str], list[tuple[str, dict[str, Any]]]]]:
    """suite name -> (id columns, [(expectation class name, kwargs)])."""
    return {
        "silver_images": (
            ["image_id"],
            [
                ("ExpectColumnValuesToNotBeNull", {"column": "image_id"}),
                ("ExpectColumnValuesToBeUnique", {"column": "image_id"}),
                ("ExpectColumnValuesToMatchRegex", {"column": "image_id", "regex": IMAGE_ID.pattern}),
                ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 1, "max_value": 4096}),
                ("ExpectColumnValuesToBeBetween", {"column": "height", "min_value": 1, "max_value": 4096}),
                ("ExpectColumnValuesToBeBetween", {"column": "bytes_out", "min_value": 100, "max_value": 8 * 2**20}),
                ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": SPLITS}),
                ("ExpectColumnValuesToMatchRegex", {"column": "phash", "regex": r"^[0-9a-f]{16}$"}),
                ("ExpectColumnValuesToBeBetween", {"column": "sightings", "min_value": 1}),
            ],
        ),
        "gold_training_examples": (
            ["image_id", "caption"],
            [
                ("ExpectColumnValuesToNotBeNull", {"column": "caption"}),
                ("ExpectColumnValueLengthsToBeBetween", {"column": "caption", "min_value": 1, "max_value": 300}),
                ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": SPLITS}),
                ("ExpectColumnValuesToMatchRegex", {"column": "image_id", "regex": IMAGE_ID.pattern}),
                ("ExpectColumnValuesToNotBeNull", {"column": "silver_key"}),
            ],
        ),
    }


SUITES = tuple(_suite_specs())


def build_suite(name: str):
    """The ExpectationSuite called ``name`` (see SUITES)."""
    import great_expectations as gx

    _, specs = _suite_specs()[name]
    suite = gx.ExpectationSuite(name=name)
    for cls, kwargs in specs:
        suite.add_expectation(getattr(gx.expectations, cls)(**kwargs))
    return suite


@dataclass
class Verdict:
    suite: str
    success: bool
    rows: int
    failed: dict[str, list[str]] = field(default_factory=dict)  # row id -> expectations it broke
    expectations: list[dict] = field(default_factory=list)  # one summary per expectation
    result: dict = field(default_factory=dict)  # GX's full validation result (JSON)

    def summary(self) -> dict:
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "failed_rows": len(self.failed),
            "expectations": self.expectations,
        }


def _row_id(index: dict, id_columns: list[str]) -> str:
    return "|".join(str(index.get(c)) for c in id_columns)


def verdict_of(name: str, result: dict, rows: int) -> Verdict:
    """Turn GX's result JSON into a Verdict (pure; unit-tested on canned results)."""
    id_columns, _ = _suite_specs()[name]
    failed: dict[str, list[str]] = {}
    summaries = []
    for r in result.get("results", []):
        cfg = r.get("expectation_config", {})
        kind = cfg.get("type", "?")
        column = cfg.get("kwargs", {}).get("column")
        label = f"{kind}({column})" if column else kind
        res = r.get("result") or {}
        raised = (r.get("exception_info") or {}).get("raised_exception")
        if raised or (not r.get("success") and not res.get("unexpected_index_list")):
            # an expectation that could not run, or failed without naming rows, gates nothing:
            # letting the batch through would be the wrong default
            why = (r.get("exception_info") or {}).get("exception_message") or "no failing rows named"
            raise GateError(f"{name}: {label} could not be evaluated: {str(why)[:500]}")
        summaries.append(
            {
                "expectation": label,
                "success": bool(r.get("success")),
                "unexpected_count": res.get("unexpected_count") or 0,
            }
        )
        for index in res.get("unexpected_index_list") or []:
            failed.setdefault(_row_id(index, id_columns), []).append(label)
    return Verdict(name, bool(result.get("success")), rows, failed, summaries, result)


def validate(df, name: str) -> Verdict:
    """Run suite ``name`` on a Spark dataframe; every failing row is listed by its ids."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    source = context.data_sources.add_spark(name=f"{name}_source")
    batch_def = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(build_suite(name))
    id_columns, _ = _suite_specs()[name]
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": id_columns}
    )
    return verdict_of(name, json.loads(json.dumps(result.to_json_dict(), default=str)), rows=df.count())


def record(verdict: Verdict, run_id: str, catalog=None, mc=None) -> dict:
    """Keep the result: the full JSON at s3://warehouse/_quality/<suite>/<run_id>.json, and a
    summary (with that location) in the catalog's `quality` collection."""
    import io

    from lake.catalog import Catalog
    from lake.clients import minio_client
    from lake.events import utcnow
    from lake.tables import WAREHOUSE_BUCKET, quality_key, s3_uri

    s_uri_key = quality_key(verdict.suite, run_id)
    body = json.dumps(verdict.result, default=str).encode()
    (mc or minio_client()).put_object(
        WAREHOUSE_BUCKET, s_uri_key, io.BytesIO(body), len(body), content_type="application/json"
    )
    doc = {
        "_id": f"{verdict.suite}:{run_id}",
        "run_id": run_id,
        "validated_at": utcnow(),
        "result_uri": s3_uri(WAREHOUSE_BUCKET, s_uri_key),
        **verdict.summary(),
    }
    (catalog or Catalog.connect()).record_quality(doc)
    return doc


def quarantine(spark, rows, table: str, stage: str) -> int:
    """Record refused images (image_id, reason, error, first/last seen, sightings) for ``stage``;
    an image already quarantined by that stage keeps its first record. Returns how many are new."""
    from pyspark.sql import functions as F

    from lake.iceberg import merge_changed

    bad = rows.select(
        "image_id",
        F.lit(stage).alias("stage"),
        "reason",
        "error",
        "first_seen_at",
        "last_seen_at",
        "sightings",
        F.current_timestamp().alias("quarantined_at"),
    )
    return merge_changed(spark, bad, table, ["image_id", "stage"], compare=["image_id", "stage"], update=False)
