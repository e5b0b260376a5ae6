"""Client factories for the stack's servers, all configured from ``Settings``.

from lake.clients import mongo_client
with mongo_client() as c: c.lake.images.find_one()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlparse

from lake.config import Settings, get_settings

T = TypeVar("T")


_shared: dict[tuple, object] = {}
# Re-entrant: a ``make`` may itself ask for a shared client (the Spark captioner's loader builds a
# registry, which asks for the MinIO client); a plain Lock deadlocked there.
_shared_lock = threading.RLock()


def per_process(key: tuple, make: Callable[[], T]) -> T:
    """One client per ``key`` and process, built by ``make`` on first use and reused (its
    connections with it). A forked child builds its own: sockets do not survive a fork."""
    key = (*key, os.getpid())
    with _shared_lock:
        if key not in _shared:
            _shared[key] = make()
        return _shared[key]


def minio_client(s: Settings | None = None):
    """The process's MinIO client for the settings' endpoint (a new client per request
    would open a TCP connection per call)."""
    s = s or get_settings()
    secret = s.s3_secret_key.get_secret_value()

    def make():
        import urllib3
        from minio import Minio

        url = urlparse(s.s3_endpoint)
        pool = urllib3.PoolManager(
            maxsize=32,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            timeout=urllib3.Timeout(connect=5, read=60),
        )
        return Minio(
            url.netloc,
            access_key=s.s3_access_key,
            secret_key=secret,
            secure=url.scheme == "https",
            region=s.s3_region,
            http_client=pool,
        )

    return per_process(("minio", s.s3_endpoint, s.s3_access_key, secret, s.s3_region), make)


def mongo_client(s: Settings | None = None, timeout_ms: int = 5000):
    from pymongo import MongoClient

    s = s or get_settings()
    # socketTimeoutMS: a stalled server fails the call (and the Spark task, which is retried)
    # instead of hanging a job forever
    return MongoClient(
        s.mongo_uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=120_000,
        uuidRepresentation="standard",
    )


@contextmanager
def kafka_admin(s: Settings | None = None):
    from kafka.admin import KafkaAdminClient

    s = s or get_settings()
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, client_id="lake-admin", request_timeout_ms=5000)
    try:
        yield admin
    finally:
        admin.close()


def trino_connection(s: Settings | None = None, catalog: str | None = None, schema: str | None = None):
    import trino

    s = s or get_settings()
    return trino.dbapi.connect(
        host=s.trino_host, port=s.trino_port, user=s.trino_user, catalog=catalog or s.iceberg_catalog, schema=schema
    )


def no_tables_yet(e: Exception) -> bool:
    """A Trino error that means the lake has no Iceberg tables yet: a table or schema not found, or, on a
    brand-new lake, the Iceberg JDBC catalog's own tables not made yet (Spark's first write makes them; until
    then Trino answers "Cannot check and eventually update SQL schema")."""
    name = getattr(e, "error_name", "")
    return name in ("TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND") or "eventually update SQL schema" in str(e)


def trino_query(sql: str, params: tuple | list | None = None, s: Settings | None = None) -> list[list]:
    """Run one statement through Trino (parameters bound, never formatted in)."""
    with trino_connection(s) as conn:
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall()
