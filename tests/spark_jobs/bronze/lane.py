"""A lane of a test's own for the real bronze stream and silver job: a topic and its DLQ, an Iceberg
namespace (lake.<name>) and a catalog database <name>. ``stream()`` runs the real job as a
subprocess (it must exit 0), ``silver()`` the silver job in-process; the rest read the outcome
through Trino. Nothing of the lake's own tables is touched."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from kafka.admin import NewTopic

from lake.clients import kafka_admin, minio_client, mongo_client, trino_query
from lake.config import REPO_ROOT, Settings
from lake.tables import Tables
from tests.utils.images import RUN
from tests.utils.images import jpeg as _jpeg


def jpeg(i: int) -> bytes:
    """A small valid JPEG, different for every ``i`` and every test process."""
    return _jpeg(32, 24, (i * 37 % 256, i * 11 % 256, 200), note=f"{RUN}-{i}")


def inline(data: bytes, **over) -> dict:
    """An inline upload event as a plain producer sends it; ``over`` replaces fields."""
    ev = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "image_id": hashlib.sha256(data).hexdigest(),
        "source": "producer",
        "content_type": "image/jpeg",
        "size_bytes": len(data),
        "captions": ["a small picture"],
        "image_b64": base64.b64encode(data).decode(),
    }
    ev.update(over)
    return ev


@dataclass
class Lane:
    settings: Settings
    spark: object
    name: str
    uploaded: bytes  # an image its owner already put in bronze (what a forged claim-check names)

    @property
    def topic(self) -> str:
        return self.name

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    @property
    def tables(self) -> Tables:
        return self.settings.tables.under(f"lake.{self.name}")

    def stream(self) -> str:
        """Drain the topic into the lane's bronze tables with the real job; its output."""
        env = {**os.environ, "LAKE_TOPIC_UPLOADS": self.topic, "LAKE_TOPIC_UPLOADS_DLQ": self.dlq}
        checkpoint = self.settings.checkpoint_uri(f"tests/{self.name}")
        cmd = [sys.executable, "-m", "spark_jobs.bronze.ingest_uploads", "--checkpoint", checkpoint]
        p = subprocess.run(
            [*cmd, "--namespace", f"lake.{self.name}"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=480,
        )
        assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
        return p.stdout + p.stderr

    def silver(self) -> dict[str, int]:
        from lake.catalog import Catalog
        from spark_jobs.silver import normalize_images

        return normalize_images.run(
            self.spark,
            tables=self.tables,
            catalog=Catalog(mongo_client()[self.name]),
            max_pixels=self.settings.max_image_pixels,
        )

    def landed(self) -> dict[str, int]:
        """event_id -> how many bronze rows it has."""
        return dict(trino_query(f"SELECT event_id, count(*) FROM {self.tables.events} GROUP BY event_id"))

    def refused(self) -> dict[str | None, list[str]]:
        """event_id (None: it did not parse) -> the reasons its rows were refused with."""
        out: dict[str | None, list[str]] = {}
        for event_id, reason in trino_query(f"SELECT event_id, reason FROM {self.tables.rejected}"):
            out.setdefault(event_id, []).append(reason)
        return out

    def anonymous_refusals(self) -> Counter:
        return Counter(self.refused().get(None, []))

    def silver_rows(self) -> dict[str, dict]:
        rows = trino_query(f"SELECT image_id, count(*), min(first_seen_at) FROM {self.tables.silver} GROUP BY image_id")
        return {i: {"n": n, "first_seen_at": at} for i, n, at in rows}


@pytest.fixture
def lane(stack_up, spark, unique):
    from lake.storage import put_bronze

    with kafka_admin(stack_up) as admin:
        admin.create_topics([NewTopic(unique, 3, 1), NewTopic(f"{unique}.dlq", 1, 1)])
    owned = jpeg(10_000)
    put_bronze(minio_client(stack_up), hashlib.sha256(owned).hexdigest(), owned, "image/jpeg")
    yield Lane(stack_up, spark, unique, owned)
    for table in ("events", "rejected", "silver", "quarantine"):
        spark.sql(f"DROP TABLE IF EXISTS {getattr(Lane(stack_up, spark, unique, owned).tables, table)} PURGE")
    mongo_client().drop_database(unique)
    with kafka_admin(stack_up) as admin:
        admin.delete_topics([unique, f"{unique}.dlq"])
