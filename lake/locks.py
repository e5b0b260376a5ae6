"""One writer at a time, across processes and machines: PostgreSQL advisory locks.

    with single_writer("silver:lake.silver.images"):
        ...   # a second holder of the same name is refused at once, with a clear error

Iceberg's MERGE ... WHEN NOT MATCHED is an anti-join plus an append with no conflict
check, so two concurrent writers of one table could both append the same key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lake.config import Settings, get_settings


class AlreadyRunning(RuntimeError):
    pass


def acquire(name: str, s: Settings | None = None):
    """Take the lock ``name`` or raise AlreadyRunning; the lock lives as long as the returned connection."""
    import psycopg

    s = s or get_settings()
    conn = psycopg.connect(s.postgres_dsn, autocommit=True)
    (got,) = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name]).fetchone()
    if not got:
        conn.close()
        raise AlreadyRunning(f"another writer holds {name!r}; one at a time (wait for it, or stop it)")
    return conn


@contextmanager
def single_writer(name: str, s: Settings | None = None) -> Iterator[None]:
    conn = acquire(name, s)
    try:
        yield
    finally:
        conn.close()
