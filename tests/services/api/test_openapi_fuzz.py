"""Schemathesis against the API's own OpenAPI spec: generated requests for every operation (valid and
not), against the running app (uvicorn, the stack's stores, tiny models in a registry of the test's own);
no request may end in an internal server error. 503/504 are the documented "not ready / too busy"
answers and pass.

    .lake/venvs/core/bin/python -m pytest tests/services/api/test_openapi_fuzz.py -q -p no:cacheprovider
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.services.api.helpers import serve, service
from tests.utils.images import ADMIN_KEY, API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def api_schema(lake):
    with serve(service(lake)) as client:
        yield schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")


def test_no_request_is_an_internal_error(api_schema):
    """Every operation, 30 generated cases each (schemathesis' pytest plugin does not load under this pytest:
    the operations are driven through Hypothesis directly)."""
    failures, seen = [], {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            key = ADMIN_KEY if case.operation.path.startswith("/v1/admin") else API_KEY
            response = case.call(headers={"X-API-Key": key}, timeout=60)
            seen.setdefault(case.operation.label, set()).add(response.status_code)
            if response.status_code >= 500 and response.status_code not in (503, 504):
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        call()
    assert len(seen) >= 11, seen  # every route was exercised
    assert not failures, failures[:5]
