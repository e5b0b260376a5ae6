"""Client factories for the stack's servers, all configured from ``Settings``.

    from lake.clients import mongo_client
    with mongo_client() as c: c.lake.images.find_one()
"""

from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import urlparse

from lake.config import Settings, get_settings


def minio_client(s: Settings | None = None):
    from minio import Minio

    s = s or get_settings()
    url = urlparse(s.s3_endpoint)
    return Minio(url.netloc, access_key=s.s3_access_key, secret_key=s.s3_secret_key.get_secret_value(),
                 secure=url.scheme == "https", region=s.s3_region)


def mongo_client(s: Settings | None = None, timeout_ms: int = 5000):
    from pymongo import MongoClient

    s = s or get_settings()
    return MongoClient(s.mongo_uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                       uuidRepresentation="standard")


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
    return trino.dbapi.connect(host=s.trino_host, port=s.trino_port, user=s.trino_user,
                               catalog=catalog or s.iceberg_catalog, schema=schema)


def trino_query(sql: str, params: tuple | list | None = None, s: Settings | None = None) -> list[list]:
    """Run one statement through Trino (parameters bound, never formatted in)."""
    with trino_connection(s) as conn:
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall()
