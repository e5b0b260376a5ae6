"""A test's own lane through the real stack, and the faults the reliability tests inject.

A `Lane` is a scratch Kafka topic (+ its DLQ), a scratch Iceberg namespace for the bronze
tables, and a checkpoint prefix on MinIO, all named after one id, so the lake users see
is untouched; closing it drops all three and the bronze objects the test uploaded. The
stream runs as the real job in a subprocess of its own session (SIGKILL reaches its JVM
too); uploads go through a real API server (uvicorn) on loopback that publishes to the
lane's topic. Servers are killed with SIGKILL and restarted by `infra.stack.up`, the code
behind `lake up SERVICE`, which waits until they are healthy.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from lake.config import REPO_ROOT, Settings

API_KEY = "lake-local-key"
# What the reliability tests need running (the stack's own API is not used: see `api_server`).
SERVICES = ("postgres", "minio", "ferretdb", "kafka", "trino")


def images(n: int, seed: int | None = None, side: int = 16) -> list[bytes]:
    """``n`` distinct small PNGs of random pixels (~0.9 KB at 16 px), new to the lake."""
    rng = np.random.default_rng(seed if seed is not None else int.from_bytes(os.urandom(8)))
    out = []
    for _ in range(n):
        b = io.BytesIO()
        Image.frombytes("RGB", (side, side), rng.bytes(side * side * 3)).save(b, "PNG", compress_level=1)
        out.append(b.getvalue())
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inline_event(data: bytes) -> dict:
    """An `images.uploaded` event with inline bytes, as a plain Kafka producer sends it."""
    return {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "image_id": sha(data),
        "source": "reliability",
        "content_type": "image/png",
        "size_bytes": len(data),
        "image_b64": base64.b64encode(data).decode(),
    }


@dataclass
class Lane:
    s: Settings  # the stack's settings with the lane's topics
    id: str
    namespace: str  # Iceberg namespace of the lane's upload_events / rejected_events
    logs: Path
    uploaded: dict[str, bytes] = field(default_factory=dict)  # image id -> bytes, removed from bronze at close
    jobs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.s.topic_uploads

    @property
    def schema(self) -> str:  # the namespace as Trino names it (catalog.schema)
        return self.namespace

    def checkpoint(self, name: str = "main") -> str:
        """The URI of checkpoint ``name`` of the lane (on MinIO), or ``name`` itself if it is a URI."""
        return name if "://" in name else self.s.checkpoint_uri(f"tests/{self.id}/{name}")

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "LAKE_TOPIC_UPLOADS": self.s.topic_uploads,
            "LAKE_TOPIC_UPLOADS_DLQ": self.s.topic_uploads_dlq,
            **extra,
        }

    # ---- producing ------------------------------------------------------------------

    def publish_inline(self, datas: list[bytes]) -> set[str]:
        """Send inline events (a mobile app's path); returns their event ids once acknowledged."""
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.s.kafka_bootstrap, acks="all", linger_ms=20, max_request_size=4 * 2**20
        )
        ids = set()
        try:
            for data in datas:
                ev = inline_event(data)
                producer.send(self.topic, key=ev["image_id"].encode(), value=json.dumps(ev).encode())
                ids.add(ev["event_id"])
                self.uploaded[ev["image_id"]] = data
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)
        return ids

    # ---- the stream -----------------------------------------------------------------

    def job(
        self,
        *args: str,
        checkpoint: str = "main",
        module: str = "spark_jobs.bronze.ingest_uploads",
        log: str = "job",
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start the bronze job on the lane (its own session: a SIGKILL of the group reaches the JVM)."""
        path = self.logs / f"{log}-{len(self.jobs)}.log"
        with open(path, "wb") as out:
            p = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    module,
                    "--checkpoint",
                    self.checkpoint(checkpoint),
                    "--namespace",
                    self.namespace,
                    *args,
                ],
                env=self.env(**(env or {})),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        p.log = path  # type: ignore[attr-defined]
        self.jobs.append(p)
        return p

    def wait(self, p: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
        """(exit code, log) of a job; one still running at ``timeout`` is killed and fails the test."""
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_job(p)
            raise AssertionError(f"the job hung for {timeout:.0f}s:\n{p.log.read_text()[-4000:]}") from None
        kill_job(p)  # its JVM may outlive the driver by a moment, files still open
        return rc, p.log.read_text(errors="replace")

    def drain(self, checkpoint: str = "main", timeout: float = 300, *args: str) -> str:
        """Run the job until the topic is drained (availableNow); it must succeed."""
        rc, out = self.wait(self.job(*args, checkpoint=checkpoint, log="drain"), timeout)
        assert rc == 0, f"the drain failed (exit {rc}):\n{out[-4000:]}"
        return out

    # ---- what landed ----------------------------------------------------------------

    def events(self) -> Counter:
        """event_id -> rows in the lane's upload_events (empty before the job made the table)."""
        return Counter(
            dict(self._query(f"SELECT event_id, count(*) FROM {self.schema}.upload_events GROUP BY event_id"))
        )

    def rows(self) -> int:
        return sum(self.events().values())

    def batches(self) -> set[int]:
        """The stream's batch ids that wrote rows."""
        return {r[0] for r in self._query(f"SELECT DISTINCT batch_id FROM {self.schema}.upload_events")}

    def rejected(self) -> list[list]:
        return self._query(f"SELECT reason, error FROM {self.schema}.rejected_events")

    def rows_per_image(self) -> Counter:
        return Counter(
            dict(self._query(f"SELECT image_id, count(*) FROM {self.schema}.upload_events GROUP BY image_id"))
        )

    def _query(self, sql: str) -> list[list]:
        from trino.exceptions import TrinoUserError

        from lake.clients import trino_query

        try:
            return trino_query(sql, s=self.s)
        except TrinoUserError as e:  # the job creates the tables on its first run
            if "does not exist" in str(e):
                return []
            raise

    def assert_exactly_once(self, event_ids: set[str]) -> None:
        """Every event id once in the table, nothing else there, no refusals, and every
        uploaded image in bronze with the bytes its key (the sha256) promises."""
        got = self.events()
        lost = event_ids - set(got)
        extra = set(got) - event_ids
        doubled = {e: n for e, n in got.items() if n > 1}
        assert not lost and not extra and not doubled, (
            f"lost {len(lost)} (e.g. {sorted(lost)[:3]}), unexpected {len(extra)} (e.g. {sorted(extra)[:3]}), "
            f"doubled {len(doubled)} (e.g. {list(doubled.items())[:3]}) of {len(event_ids)} events"
        )
        assert self.rejected() == []
        bad = self.check_bronze(set(self.uploaded))
        assert not bad, f"{len(bad)} bronze objects missing or wrong, e.g. {bad[:3]}"

    def check_bronze(self, image_ids: set[str]) -> list[tuple[str, str]]:
        """(image id, problem) for each image whose bronze object is missing or holds other bytes."""
        from lake.clients import minio_client
        from lake.storage import read_object
        from lake.tables import BRONZE_BUCKET, bronze_key

        mc = minio_client(self.s)

        def check(image_id: str) -> tuple[str, str] | None:
            data = read_object(mc, BRONZE_BUCKET, bronze_key(image_id))
            if data is None:
                return image_id, "missing"
            return None if sha(data) == image_id else (image_id, f"sha256 {sha(data)}")

        with ThreadPoolExecutor(16) as pool:
            return [x for x in pool.map(check, sorted(image_ids)) if x]


def kill_job(p: subprocess.Popen) -> None:
    """SIGKILL a job's whole session (the Python driver and its JVM) and wait until it is gone."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:  # no process left in the group
            break
        p.poll()  # reaps the driver, so that it stops counting as a member
        time.sleep(0.1)
    p.wait(30)


@contextmanager
def open_lane(s: Settings, logs: Path, partitions: int = 3) -> Iterator[Lane]:
    from kafka.admin import NewTopic

    from lake.clients import kafka_admin

    lane_id = f"rel{uuid.uuid4().hex[:10]}"
    topic = f"reliability.{lane_id}"
    lane = Lane(
        s.model_copy(update={"topic_uploads": topic, "topic_uploads_dlq": f"{topic}.dlq"}),
        lane_id,
        f"{s.iceberg_catalog}.{lane_id}",
        logs,
    )
    logs.mkdir(parents=True, exist_ok=True)
    with kafka_admin(s) as admin:
        admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    try:
        yield lane
    finally:
        for p in lane.jobs:
            kill_job(p)
        _drop_lane(lane)


def _drop_lane(lane: Lane) -> None:
    from lake.apps.scratch import drop_lane

    # The images are random pixels made by this test: no one else has the same bytes.
    drop_lane(lane.s, lane.topic, lane.schema, lane.checkpoint(""), image_ids=lane.uploaded)


# ---- servers ------------------------------------------------------------------------


def _server(s: Settings, name: str):
    from infra.stack import select

    (svc,) = select(s, [name])
    return svc


def sigkill_service(s: Settings, name: str) -> int:
    """SIGKILL a server of the stack (its whole process group); returns the pid it had."""
    from infra import procs

    p = procs.read_pid(_server(s, name).proc(runnable=False))
    assert p is not None, f"{name} is not running"
    os.killpg(os.getpgid(p.pid), signal.SIGKILL)
    psutil.wait_procs([p], timeout=30)
    return p.pid


def restart_service(s: Settings, name: str) -> float:
    """`lake up NAME`: restart a dead server and wait until it is healthy; returns the seconds it took."""
    from infra import stack

    t = time.monotonic()
    stack.up(s, [name])
    assert {r.name: r.state for r in stack.status(s, [name])} == {name: "healthy"}
    return time.monotonic() - t


@contextmanager
def outage(s: Settings, name: str) -> Iterator[None]:
    """SIGKILL server ``name`` on entry; restart it (healthy) on exit, whatever happened inside."""
    sigkill_service(s, name)
    try:
        yield
    finally:
        restart_service(s, name)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def api_server(lane: Lane, workers: int = 1) -> Iterator[httpx.Client]:
    """The real API (uvicorn, services.api.main) on a free loopback port, publishing to the
    lane's topic; yields a client for it. No caption model is loaded (uploads do not need one)."""
    port = free_port(lane.s.host)
    log = lane.logs / f"api-{port}.log"
    env = lane.env(LAKE_API_PORT=str(port), LAKE_CAPTION_MODEL="reliability-none", LAKE_CAPTION_POLL_S="3600")
    with open(log, "wb") as out:
        # create_app() without a search service: the sentence model loads only on a first search
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "services.api.main:create_app",
                "--factory",
                "--host",
                lane.s.host,
                "--port",
                str(port),
                "--no-access-log",
                "--workers",
                str(workers),
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = httpx.Client(
        base_url=f"http://{lane.s.host}:{port}",
        timeout=60,
        headers={"X-API-Key": API_KEY},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert p.poll() is None, f"the API exited:\n{log.read_text()[-3000:]}"
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the API was not ready in 60 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield client
    finally:
        client.close()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


@dataclass
class Uploads:
    """What a set of API uploads got: event ids of the accepted ones, status counts, retries."""

    event_ids: set[str] = field(default_factory=set)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    retried: int = 0  # 503 bus_unavailable answers that the client retried
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def upload(client: httpx.Client, lane: Lane, data: bytes, result: Uploads, *, retry_s: float = 0) -> None:
    """POST one image (raw body); with ``retry_s``, a 503 `bus_unavailable` is retried for that long
    as a client should: the same bytes with the same `event_id` (picked once, here), after
    Retry-After (capped at 2 s here). Without the event id, a retry whose first try's event was
    delivered after all (the producer keeps retrying it) would land twice."""
    deadline = time.monotonic() + retry_s
    event_id = uuid.uuid4()
    while True:
        t = time.perf_counter()
        try:
            r = client.post(
                f"/v1/images?source=reliability&event_id={event_id}",
                content=data,
                headers={"Content-Type": "image/png"},
            )
        except httpx.HTTPError as e:
            with result.lock:
                result.errors.append(f"{type(e).__name__}: {e}")
            return
        with result.lock:
            result.statuses[r.status_code] += 1
            result.latencies.append(time.perf_counter() - t)
        if r.status_code == 503 and retry_s and time.monotonic() < deadline:
            assert r.json()["detail"]["reason"] == "bus_unavailable", r.text
            with result.lock:
                result.retried += 1
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 2.0))
            continue
        break
    if r.status_code in (200, 201):
        body = r.json()
        assert body["image_id"] == sha(data) and body["event_id"] == str(event_id)
        with result.lock:
            result.event_ids.add(body["event_id"])
            lane.uploaded[body["image_id"]] = data
    else:
        with result.lock:
            result.errors.append(f"{r.status_code}: {r.text[:200]}")
