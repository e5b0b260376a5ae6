"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/browser

Playwright never downloads a browser here: ``infra.install.chromium_bin`` installs
Debian's package when it is missing. Screenshots land in the test stack's ``screenshots/``
(``.lake/stacks/test/screenshots/``); a failed test leaves ``failed-<test>.png`` there too.
"""

from __future__ import annotations

import re

import pytest

VIEWPORT = {"width": 1400, "height": 900}
# Without the background-networking flags Chromium keeps dialling Google's hosts, and
# this machine's closed network refuses every one of them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)  # read by the `page` fixture to screenshot failures
    return report


@pytest.fixture(scope="session")
def shots(settings):
    """The test stack's screenshots folder (.lake/stacks/test/screenshots under `make test`)."""
    folder = settings.state_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser(stack_up):
    from playwright.sync_api import sync_playwright

    from infra.install import chromium_bin

    exe = chromium_bin(stack_up)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(exe), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def context(browser):
    """One browser context (cookies) per module: each UI logs in once.

    ``bypass_csp``: Superset's Content-Security-Policy forbids eval, which Playwright's
    ``wait_for_function`` predicates need.
    """
    ctx = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, shots, request):
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    failed_shot = shots / f"failed-{name}.png"
    failed_shot.unlink(missing_ok=True)  # a pass leaves no stale failure picture behind
    pg = context.new_page()
    pg.set_viewport_size(VIEWPORT)
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        pg.screenshot(path=failed_shot, full_page=True)
    pg.close()
