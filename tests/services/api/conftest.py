"""The API tests' fixtures against the stack (tests/services/api/helpers.py): ``lake``, two tiny model versions
in a registry of the test module's own, and ``direct``, the reference captions of a direct `load(dir)`."""

from tests.services.api.helpers import direct, lake  # noqa: F401 -- fixtures
