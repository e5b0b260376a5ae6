"""Superset's dashboards render in a real browser: every chart loads, shows data and no error.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/browser/test_superset.py

Saves ``.lake/stacks/test/screenshots/superset-<slug>.png`` (the whole dashboard) for each one.
"""

from __future__ import annotations

import re

import pytest

from infra.apps import ui_password

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DASHBOARDS = ["lake-overview", "model-quality"]
CHART_TIMEOUT_MS = 120_000  # cold Trino queries over Iceberg take a few seconds each

# One entry per chart holder: its id, title, whether it is still loading, its error text,
# and which evidence of data it shows. Superset's empty state (.ant-empty, a big number's
# "No data") counts as no data; a canvas counts when it has painted pixels.
CHART_STATES_JS = r"""
() => [...document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')].map(holder => {
  const slice = holder.querySelector('[data-test="chart-grid-component"]');
  const body = holder.querySelector('[data-test="slice-container"]');
  const alert = holder.querySelector('.ant-alert-error, [role="alert"]');
  const out = {
    id: slice ? Number(slice.getAttribute('data-test-chart-id')) : null,
    title: slice ? slice.getAttribute('data-test-chart-name') : null,
    viz: slice ? slice.getAttribute('data-test-viz-type') : null,
    loading: !!holder.querySelector('[data-test="loading-indicator"]') || (!body && !alert),
    error: alert ? alert.innerText.trim() : null,
    data: [],
  };
  if (!body || alert) return out;
  const bigNumber = body.querySelector('.header-line');
  if (body.querySelector('.ant-empty') || (bigNumber && /^no data$/i.test(bigNumber.innerText.trim()))) {
    out.data.push('empty');
    return out;
  }
  if (bigNumber && bigNumber.innerText.trim()) out.data.push('number');
  const rows = [...body.querySelectorAll('tbody tr')].filter(r => r.innerText.trim());
  if (rows.length) out.data.push(`${rows.length} rows`);
  for (const c of body.querySelectorAll('canvas')) {
    if (!c.width || !c.height) continue;
    const ctx = c.getContext('2d');
    if (!ctx) { out.data.push('webgl canvas'); break; }  // a WebGL canvas cannot be read back here
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let painted = 0;
    for (let i = 3; i < px.length; i += 4 * 7) if (px[i]) painted++;
    if (painted > 50) { out.data.push('canvas'); break; }
  }
  const marks = body.querySelectorAll('svg path, svg rect, svg circle, svg line, svg polyline');
  if ([...marks].some(m => { const b = m.getBoundingClientRect(); return b.width || b.height; })) out.data.push('svg');
  return out;
})
"""


@pytest.fixture(scope="module")
def superset_ui(stack_up, context):
    """The browser context, logged in through Superset's own login form."""
    s = stack_up
    base = f"http://{s.host}:{s.superset_port}"
    pg = context.new_page()
    pg.goto(f"{base}/login/")
    pg.locator('[data-test="username-input"]').fill(s.superset_user)
    pg.locator('[data-test="password-input"]').fill(ui_password(s, "superset"))
    pg.locator('[data-test="login-button"]').click()
    pg.wait_for_url(re.compile(r"^(?!.*/login/)"))
    assert "session" in {c["name"] for c in context.cookies()}, "Superset login set no session cookie"
    pg.close()
    return base


@pytest.mark.parametrize("slug", DASHBOARDS)
def test_dashboard_renders_every_chart_with_data(slug, superset_api, superset_ui, page, shots):
    r = superset_api.get(f"/api/v1/dashboard/{slug}/charts")
    assert r.status_code == 200, f"dashboard {slug!r} is not in Superset ({r.status_code}): {r.text[:300]}"
    expected = {c["id"]: c["slice_name"] for c in r.json()["result"]}
    assert expected, f"dashboard {slug!r} has no charts"

    page.goto(f"{superset_ui}/superset/dashboard/{slug}/")
    page.wait_for_function(
        f"document.querySelectorAll('[data-test=\"dashboard-component-chart-holder\"]').length >= {len(expected)}",
        timeout=CHART_TIMEOUT_MS,
    )
    # A viewport as tall as the dashboard: every chart is on screen, so none waits for a
    # scroll to load, and the screenshot shows them all.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": min(max(height, 900), 8000)})
    try:
        page.wait_for_function(f"({CHART_STATES_JS})().every(c => !c.loading)", timeout=CHART_TIMEOUT_MS)
    except Exception:  # noqa: BLE001 - report which charts never finished, below
        pass
    page.wait_for_timeout(1000)  # ECharts animates its first paint
    states = page.evaluate(CHART_STATES_JS)
    page.screenshot(path=shots / f"superset-{slug}.png", full_page=True)

    shown = {c["id"]: c for c in states}
    assert set(shown) == set(expected), (
        f"{slug}: the page shows charts {sorted(shown)}, the API lists {sorted(expected)} "
        f"(missing: {[expected[i] for i in set(expected) - set(shown)]})"
    )
    problems = []
    for c in states:
        label = f"{c['title']!r} (chart {c['id']}, {c['viz']})"
        if c["error"]:
            problems.append(f"{label} shows an error: {c['error']}")
        elif c["loading"]:
            problems.append(f"{label} still loading after {CHART_TIMEOUT_MS // 1000} s")
        elif not c["data"] or c["data"] == ["empty"]:
            problems.append(f"{label} rendered no data ({c['data'] or 'nothing drawn'})")
    assert not problems, f"{slug} ({shots / f'superset-{slug}.png'}):\n" + "\n".join(problems)
