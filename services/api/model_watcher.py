"""The served caption model and its hot swap. ``current`` is one reference to (version, captioner), replaced in
a single assignment: a batch reads it once when it starts, so batches in flight finish on the model they began
with. The watcher re-reads the registry's production version when a `models.promoted` event arrives (a Kafka
consumer thread over every partition, no consumer group: each process sees every event) and every
``caption_poll_s`` in case an event was missed; a new version is fetched, loaded and warmed up in a thread
before the swap, so a broken model never replaces a working one.

    watcher = ModelWatcher(settings, registry=stores.registry)
    task = asyncio.create_task(watcher.watch())          # and, in a thread: watcher.consume(stop_event)
    watcher.current.version, watcher.state               # "compact-v3", "ready"
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from PIL import Image

from lake.config import Settings

log = structlog.get_logger("lake.api.captions")


@dataclass(frozen=True)
class Loaded:
    version: str  # the registry id, the model_version of docs/architecture.md (e.g. compact-v3)
    captioner: Any  # models.captioner.Captioner


class ModelWatcher:
    def __init__(self, settings: Settings, *, registry: Callable[[], Any], stats: dict | None = None):
        self.settings, self.registry = settings, registry
        self.stats = stats if stats is not None else {"swaps": 0}
        self.stats.setdefault("swaps", 0)
        self.current: Loaded | None = None
        self.state = "starting"
        self.kafka_ready = threading.Event()  # the consumer is positioned at the topic's end
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="caption-load")
        self._wake: asyncio.Event | None = None

    async def watch(self) -> None:
        """Check the registry now, on every wake-up and every ``caption_poll_s`` (an asyncio task)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while True:
                self._wake.clear()
                try:
                    loaded = await self._loop.run_in_executor(self._pool, self.check)
                except Exception as e:  # noqa: BLE001 -- registry or files unreachable: keep serving, retry later
                    self.state = f"error: {type(e).__name__}: {e}"[:300]
                    log.warning("caption model check failed", error=self.state)
                else:
                    if loaded is not None:
                        previous, self.current = self.current, loaded  # the swap: one reference
                        self.stats["swaps"] += 1
                        log.info(
                            "caption model loaded",
                            model=loaded.version,
                            previous=previous.version if previous else None,
                        )
                    if self.current is not None:
                        self.state = "ready"
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.caption_poll_s)
                except TimeoutError:
                    pass
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Check the registry now (thread-safe)."""
        if self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def check(self) -> Loaded | None:
        """The production version loaded and warmed up when it differs from the one served, else None."""
        from lake.registry import ModelNotFound

        try:
            doc = self.registry().get(self.settings.caption_model)
        except ModelNotFound:
            if self.current is None:
                self.state = "no production model"
            return None  # nothing in production any more: keep serving what we have
        if self.current is not None and doc["_id"] == self.current.version:
            return None
        self.state = f"loading {doc['_id']}"
        from models.captioner import load

        captioner = load(self.registry().fetch(doc["_id"]))  # loads take turns inside load()
        captioner.caption([Image.new("RGB", (32, 32), "white")], batch_size=1)  # proves it works before the swap
        return Loaded(doc["_id"], captioner)

    def consume(self, stop: threading.Event) -> None:
        """Wake the watcher on every `models.promoted` event until ``stop`` (a thread: kafka-python blocks)."""
        from kafka import KafkaConsumer, TopicPartition

        s, topic = self.settings, self.settings.topic_models_promoted
        while not stop.is_set():
            consumer = None
            try:
                consumer = KafkaConsumer(
                    bootstrap_servers=s.kafka_bootstrap,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id=f"lake-api-{os.getpid()}",
                    request_timeout_ms=15000,
                    isolation_level="read_committed",  # a promotion a transactional producer aborted never happened
                )
                parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                if not parts:
                    raise RuntimeError(f"topic {topic} does not exist")
                consumer.assign(parts)
                consumer.seek_to_end(*parts)
                for tp in parts:  # resolve the end now: an event sent after this point is seen
                    consumer.position(tp)
                self.kafka_ready.set()
                while not stop.is_set():
                    for records in consumer.poll(timeout_ms=500).values():
                        for r in records:
                            log.info("models.promoted received", promoted=r.value[:300].decode(errors="replace"))
                        if records:
                            self.wake()
            except Exception as e:  # noqa: BLE001 -- the poll fallback covers the gap; try again later
                self.kafka_ready.clear()
                log.warning("models.promoted consumer failed", error=str(e)[:300])
                stop.wait(self.settings.caption_poll_s)
            finally:
                if consumer is not None:
                    consumer.close()
