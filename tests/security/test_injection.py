"""Every parameter of every API operation (read from its OpenAPI spec) is tried with SQL, MongoDB,
path and template injection strings, control characters, a huge value and the URL of a canary server
this test runs: no answer is an internal error, the lake's tables are all still there with the same
rows, and nothing ever calls the canary (no endpoint fetches a URL the user gives, in a parameter or
in a JSON body). Runs against the real app on the stack's stores (tests/services/api/helpers.py).

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/security/test_injection.py
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import quote

import pytest

from tests.services.api.helpers import lake, serve, service  # noqa: F401 -- fixtures
from tests.utils.images import ADMIN_KEY, API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ID = "0" * 64  # a well-formed image id no image has


@pytest.fixture(scope="module")
def canary():
    """A local HTTP server that records every request it gets."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/canary", hits
    server.shutdown()


def payloads(url: str) -> list[str]:
    return [
        "' OR '1'='1",
        "1; DROP TABLE lake.gold.captions --",
        "x' UNION SELECT secret FROM t --",
        '{"$ne": null}',
        '{"$where": "sleep(1000)"}',
        "$gt",
        "../../etc/passwd",
        "..%2F..%2Fetc",
        "images/../../warehouse/x",
        "\x00",
        "a\r\nX-Injected: 1",
        "${jndi:ldap://127.0.0.1/x}",
        "{{7*7}}",
        "é漢字🙂",
        "9" * 40,
        "x" * 5000,
        url,
        f"file://{url}",
    ]


def counts() -> dict[str, int]:
    from lake.clients import trino_query

    tables = ["lake.gold.captions", "lake.gold.training_examples", "lake.silver.images", "lake.bronze.upload_events"]
    return {t: trino_query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def test_no_parameter_injects_or_fetches(lake, canary):  # noqa: F811 -- the fixture imported above
    url, hits = canary
    before = counts()
    failures, tried, seen = [], 0, {}
    with serve(service(lake)) as api:
        spec = api.get("/openapi.json").json()
        for path, operations in spec["paths"].items():
            for method, op in operations.items():
                for param in op.get("parameters", []):
                    for value in payloads(url):
                        target, query = path, {}
                        if param["in"] == "path":
                            target = path.replace("{" + param["name"] + "}", quote(value, safe=""))
                        else:
                            query[param["name"]] = value
                        target = re.sub(r"\{[^}]+\}", ID, target)  # the other path parameters: well formed
                        key = ADMIN_KEY if path.startswith("/v1/admin") else API_KEY
                        r = api.request(method.upper(), target, params=query, headers={"X-API-Key": key})
                        tried += 1
                        seen.setdefault(f"{method.upper()} {path}", set()).add(r.status_code)
                        if r.status_code >= 500 and r.status_code not in (503, 504):
                            failures.append(
                                f"{method.upper()} {path} {param['name']}={value[:40]!r}: "
                                f"{r.status_code} {r.text[:200]}"
                            )
        for body in ({"url": url}, {"image_url": url}, {"image_id": url}, {"image_id": ID, "url": url}):
            r = api.post("/v1/captions", json=body)
            tried += 1
            if not 400 <= r.status_code < 500:
                failures.append(f"POST /v1/captions {body}: {r.status_code} {r.text[:200]}")
    assert tried > 100 and not failures, failures[:5]
    assert len(seen) >= 5 and not any(codes <= {401, 403} for codes in seen.values()), seen  # past the key check
    assert hits == [], f"an endpoint fetched the URL it was given: {hits}"
    assert counts() == before  # every table still there, no row added or removed
