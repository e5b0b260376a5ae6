"""lake.locks on the real PostgreSQL: one writer per name."""

from __future__ import annotations

import pytest

from lake.locks import AlreadyRunning, acquire, single_writer

pytestmark = pytest.mark.integration


def test_second_writer_is_refused_and_the_lock_frees(stack_up, unique):
    with single_writer(f"test:{unique}"):
        with pytest.raises(AlreadyRunning, match=unique):
            acquire(f"test:{unique}")
        acquire(f"test:other-{unique}").close()  # other names are independent
    acquire(f"test:{unique}").close()  # released with the block
