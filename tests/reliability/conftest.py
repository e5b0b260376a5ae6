"""Fixtures of the reliability suite: the stack the settings point at (checked healthy
before and after each test) and a scratch lane per test (see lane.py)."""

from __future__ import annotations

import pytest

from tests.reliability.lane import SERVICES, open_lane


@pytest.fixture(scope="session")
def rel_stack(settings):
    """The servers these tests use must be healthy (the rest of the stack is not needed)."""
    from infra import stack

    down = [r.name for r in stack.status(settings, SERVICES) if r.state != "healthy"]
    if down:
        pytest.fail(f"local stack not healthy ({', '.join(down)}): run `lake up` or use `make test`")
    return settings


@pytest.fixture
def lane(rel_stack, tmp_path):
    with open_lane(rel_stack, tmp_path / "logs") as lane:
        yield lane
    _assert_healthy(rel_stack)


def _assert_healthy(s) -> None:
    """A test that killed a server must have brought it back."""
    from infra import stack

    states = {r.name: r.state for r in stack.status(s, SERVICES)}
    assert set(states.values()) == {"healthy"}, f"the stack was left unhealthy: {states}"
