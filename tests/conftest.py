"""Shared fixtures. Tests marked `integration` talk to the real servers that
`make test` (infra/test.sh) starts; the rest are pure unit tests."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def settings():
    from lake.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def stack_up(settings):
    """Skip nothing silently: an integration test fails loudly if the stack is down."""
    from infra import stack

    down = [r.name for r in stack.status(settings) if r.state != "healthy"]
    if down:
        pytest.fail(f"local stack not healthy ({', '.join(down)}): run `lake up` or use `make test`")
    return settings


@pytest.fixture
def unique():
    """A short unique name for per-test topics, buckets, collections and tables."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def spark(stack_up):
    from lake.spark import spark_session

    session = spark_session("lake-tests")
    yield session
    session.stop()
