"""Lake's dashboards as code (superset/assets, infra/superset_assets.py): the bundle holds
together (unit); imported into the running Superset, both dashboards are there by slug and
every chart answers with rows through the chart data API (integration).

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/superset

The integration tests run on the stack's lake with a history (`lake_with_history` in
tests/conftest.py: a fresh lake first gets a short demo), with the gold views and the bundle
(re)made as this checkout defines them; every chart must answer with rows.
"""

from __future__ import annotations

import copy
import json
import zipfile

import pytest
import yaml

from infra.superset_assets import build_zip, load, problems, query_context

BUNDLE = load()
SLUGS = {"lake-overview": "Lake overview", "model-quality": "Model quality"}


def _of(kind: str) -> dict[str, dict]:
    return {d["uuid"]: d for p, d in BUNDLE.items() if p.startswith(kind + "/")}


def _placed(dashboard: dict) -> list[str]:
    return [i["meta"]["uuid"] for i in dashboard["position"].values() if isinstance(i, dict) and i["type"] == "CHART"]


CHARTS = [(dash["slug"], _of("charts")[uid]) for dash in _of("dashboards").values() for uid in _placed(dash)]


def test_bundle_references_only_what_it_defines():
    assert problems(BUNDLE) == []


def test_problems_are_found():
    broken = copy.deepcopy(BUNDLE)
    chart = next(d for p, d in broken.items() if p.startswith("charts/"))
    chart["params"]["groupby"] = ["no_such_column"]
    dash = next(d for p, d in broken.items() if p.startswith("dashboards/"))
    cell = next(i for i in dash["position"].values() if isinstance(i, dict) and i.get("type") == "CHART")
    cell["meta"]["uuid"] = "00000000-0000-0000-0000-000000000000"
    found = "\n".join(problems(broken))
    assert "no column 'no_such_column'" in found and "not in the bundle" in found


def test_two_dashboards_by_slug_with_unique_chart_names():
    assert {d["slug"]: d["dashboard_title"] for d in _of("dashboards").values()} == SLUGS
    names = [c["slice_name"] for c in _of("charts").values()]
    assert len(names) == len(set(names))


def test_datasets_are_what_the_gold_job_builds():
    from lake.config import get_settings
    from lake.tables import LAYERS
    from spark_jobs.gold.build_gold import views

    t = get_settings().tables
    built = set(views(t)) | {
        getattr(t, n).rsplit(".", 1)[1] for n in LAYERS["gold"] if n.startswith(("training", "ingest", "captions"))
    }
    assert {d["table_name"] for d in _of("datasets").values()} <= built
    assert {d["schema"] for d in _of("datasets").values()} == {t.gold.split(".")[1]}


def test_no_secret_in_the_bundle():
    for db in _of("databases").values():
        assert db["sqlalchemy_uri"].startswith("trino://") and ":" not in db["sqlalchemy_uri"].split("@")[0][9:]
        assert not db.get("password")


def test_zip_is_a_superset_bundle_with_query_contexts(tmp_path):
    with zipfile.ZipFile(build_zip(tmp_path / "b.zip")) as z:
        names = z.namelist()
        assert "lake_dashboards/metadata.yaml" in names and all(n.startswith("lake_dashboards/") for n in names)
        charts = [yaml.safe_load(z.read(n)) for n in names if n.startswith("lake_dashboards/charts/")]
    assert len(charts) == len(_of("charts"))
    for chart in charts:
        qc = json.loads(chart["query_context"])
        assert qc["form_data"] == chart["params"] and len(qc["queries"]) == 1, chart["slice_name"]


def test_query_context_of_a_timeseries():
    q = query_context(
        {
            "viz_type": "echarts_timeseries_bar",
            "x_axis": "day",
            "time_grain_sqla": "P1D",
            "metrics": ["uploads"],
            "groupby": ["source"],
            "adhoc_filters": [
                {
                    "expressionType": "SIMPLE",
                    "subject": "source",
                    "operator": "==",
                    "comparator": "api",
                    "clause": "WHERE",
                }
            ],
        }
    )["queries"][0]
    assert q["columns"][0] == {
        "columnType": "BASE_AXIS",
        "sqlExpression": "day",
        "label": "day",
        "expressionType": "SQL",
        "timeGrain": "P1D",
    }
    assert q["columns"][1:] == ["source"] and q["metrics"] == ["uploads"]
    assert q["filters"] == [{"col": "source", "op": "==", "val": "api"}]


# ---- against the running Superset ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def superset(superset_api):
    return superset_api  # tests/conftest.py: logged in, on a lake with a history, dashboards imported


@pytest.mark.integration
@pytest.mark.slow  # the lake with a history: a short demo on a fresh test stack
@pytest.mark.parametrize("slug", SLUGS)
def test_dashboard_is_there_with_its_charts(superset, slug):
    r = superset.get(f"/api/v1/dashboard/{slug}")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["dashboard_title"] == SLUGS[slug]
    charts = superset.get(f"/api/v1/dashboard/{slug}/charts").json()["result"]
    assert sorted(c["slice_name"] for c in charts) == sorted(c["slice_name"] for s, c in CHARTS if s == slug)


@pytest.mark.integration
@pytest.mark.slow
def test_datasets_declare_the_columns_trino_has(superset):
    from lake.clients import trino_query

    for ds in _of("datasets").values():
        described = [[r[0], r[1].upper()] for r in trino_query(f"DESCRIBE lake.gold.{ds['table_name']}")]
        assert [[c["column_name"], c["type"]] for c in ds["columns"]] == described, ds["table_name"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("slug,chart", CHARTS, ids=[f"{s}:{c['slice_name']}" for s, c in CHARTS])
def test_chart_returns_rows(superset, slug, chart):
    from lake.clients import trino_query

    ids = {c["slice_name"]: c["id"] for c in superset.get(f"/api/v1/dashboard/{slug}/charts").json()["result"]}
    r = superset.get(f"/api/v1/chart/{ids[chart['slice_name']]}/data/", params={"format": "json", "type": "full"})
    assert r.status_code == 200, f"{chart['slice_name']}: {r.status_code} {r.text[:500]}"
    results = r.json()["result"]
    assert results and all(q.get("error") is None and q["status"] == "success" for q in results), results
    if not any(q["rowcount"] for q in results):
        view = next(d["table_name"] for d in _of("datasets").values() if d["uuid"] == chart["dataset_uuid"])
        ((n,),) = trino_query(f"SELECT count(*) FROM lake.gold.{view}")
        pytest.fail(f"{chart['slice_name']}: no rows (lake.gold.{view} has {n})")
