"""Lake's Superset dashboards as code: the YAML bundle under superset/assets, zipped for import.

`lake up` imports it (infra/apps.py, Superset.prepare) once per content hash; by hand
(infra/superset_assets/__main__.py):

    .lake/venvs/core/bin/python -m infra.superset_assets /tmp/lake_dashboards.zip   # just the zip
    .lake/venvs/core/bin/python -m infra.superset_assets --import                    # zip + import now

The zip is Superset's own v1 import/export format (metadata.yaml, databases/, datasets/,
charts/, dashboards/), so it also imports through the UI (Dashboards > Import). Each chart
gets its `query_context` here, derived from its `params`: the chart data API
(`/api/v1/chart/<id>/data/`), thumbnails and reports need one; the dashboards themselves
build their queries from `params` in the browser.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

from lake.config import REPO_ROOT

ASSETS = REPO_ROOT / "superset" / "assets"
IMPORTER = REPO_ROOT / "superset" / "import_assets.py"
ROOT = "lake_dashboards"  # the zip's top folder; Superset drops it when reading a bundle


def load(assets: Path = ASSETS) -> dict[str, dict[str, Any]]:
    """bundle path (``charts/x.yaml``) -> parsed YAML."""
    return {p.relative_to(assets).as_posix(): yaml.safe_load(p.read_text()) for p in sorted(assets.rglob("*.yaml"))}


def content_hash(assets: Path = ASSETS) -> str:
    """Changes with any bundle file or with the code that zips and imports it."""
    h = hashlib.sha256()
    for p in [*sorted(assets.rglob("*.yaml")), Path(__file__), IMPORTER]:
        h.update(p.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _filters(params: dict) -> list[dict]:
    return [
        {"col": f["subject"], "op": f["operator"], "val": f["comparator"]}
        for f in params.get("adhoc_filters", [])
        if f.get("expressionType") == "SIMPLE"
    ]


def query_context(params: dict) -> dict:
    """The query the chart's viz plugin builds from ``params`` (the viz types used here)."""
    viz = params["viz_type"]
    q: dict[str, Any] = {
        "filters": _filters(params),
        "extras": {"having": "", "where": ""},
        "columns": [],
        "metrics": [],
        "orderby": [],
        "row_limit": params.get("row_limit", 10000),
        "annotation_layers": [],
        "applied_time_extras": {},
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    if viz.startswith("echarts_timeseries"):
        axis = {
            "columnType": "BASE_AXIS",
            "sqlExpression": params["x_axis"],
            "label": params["x_axis"],
            "expressionType": "SQL",
        }
        if params.get("time_grain_sqla"):
            axis["timeGrain"] = params["time_grain_sqla"]
        q.update(
            columns=[axis, *params.get("groupby", [])],
            metrics=params["metrics"],
            orderby=[[params["metrics"][0], False]],
            series_columns=params.get("groupby", []),
        )
    elif viz in ("big_number_total", "pie"):
        q.update(columns=params.get("groupby", []), metrics=[params["metric"]])
    elif viz == "pivot_table_v2":
        q.update(
            columns=[*params["groupbyRows"], *params["groupbyColumns"]],
            metrics=params["metrics"],
            orderby=[[params["metrics"][0], False]],
        )
    elif viz == "table" and params.get("query_mode") == "raw":
        q.update(columns=params["all_columns"], orderby=[json.loads(o) for o in params.get("order_by_cols", [])])
    elif viz == "table":
        q.update(columns=params.get("groupby", []), metrics=params["metrics"])
    else:
        raise ValueError(f"no query context for viz type {viz!r}")
    return {
        "datasource": {"id": 0, "type": "table"},
        "force": False,
        "queries": [q],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }


def _chart_refs(params: dict) -> tuple[set[str], set[str]]:
    """(columns, saved metrics) a chart's params name."""
    cols = {params[k] for k in ("x_axis",) if k in params}
    for k in ("groupby", "all_columns", "groupbyRows", "groupbyColumns"):
        cols |= set(params.get(k, []))
    cols |= {f["subject"] for f in params.get("adhoc_filters", [])}
    cols |= {json.loads(o)[0] for o in params.get("order_by_cols", [])}
    metrics = {m for m in [*params.get("metrics", []), params.get("metric")] if isinstance(m, str)}
    return cols, metrics


def problems(bundle: dict[str, dict]) -> list[str]:
    """What would break the import or a chart: dangling uuids, unknown columns or metrics, unplaced charts."""
    of = {
        kind: {d["uuid"]: (path, d) for path, d in bundle.items() if path.startswith(kind + "/")}
        for kind in ("databases", "datasets", "charts", "dashboards")
    }
    out = [] if "metadata.yaml" in bundle else ["metadata.yaml missing"]
    for path, ds in of["datasets"].values():
        if ds["database_uuid"] not in of["databases"]:
            out.append(f"{path}: database {ds['database_uuid']} not in the bundle")
    placed: set[str] = set()
    for path, dash in of["dashboards"].values():
        for key, item in dash["position"].items():
            if isinstance(item, dict) and item.get("type") == "CHART":
                placed.add(item["meta"]["uuid"])
                if not isinstance(item["meta"].get("chartId"), int):
                    out.append(f"{path}: {key} needs a chartId (any int; Superset maps it by uuid on import)")
                if item["meta"]["uuid"] not in of["charts"]:
                    out.append(f"{path}: {key} places chart {item['meta']['uuid']}, not in the bundle")
            if isinstance(item, dict):
                out += [
                    f"{path}: {key} has child {c}, not in position"
                    for c in item.get("children", [])
                    if c not in dash["position"]
                ]
    for uid, (path, chart) in of["charts"].items():
        if uid not in placed:
            out.append(f"{path}: on no dashboard")
        if chart["dataset_uuid"] not in of["datasets"]:
            out.append(f"{path}: dataset {chart['dataset_uuid']} not in the bundle")
            continue
        ds = of["datasets"][chart["dataset_uuid"]][1]
        cols, metrics = _chart_refs(chart["params"])
        out += [
            f"{path}: no column {c!r} in {ds['table_name']}"
            for c in sorted(cols - {c["column_name"] for c in ds["columns"]})
        ]
        out += [
            f"{path}: no metric {m!r} in {ds['table_name']}"
            for m in sorted(metrics - {m["metric_name"] for m in ds.get("metrics", [])})
        ]
    return out


def build_zip(out: Path, assets: Path = ASSETS) -> Path:
    """The bundle as a zip Superset imports, each chart with its query context."""
    bundle = load(assets)
    if errors := problems(bundle):
        raise ValueError("superset bundle:\n" + "\n".join(errors))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path, doc in bundle.items():
            if path.startswith("charts/"):
                doc = {**doc, "query_context": json.dumps(query_context(doc["params"]))}
                z.writestr(f"{ROOT}/{path}", yaml.safe_dump(doc, sort_keys=False))
            else:
                z.writestr(f"{ROOT}/{path}", (assets / path).read_text())
    return out
