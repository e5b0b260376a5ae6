"""The API's captioner: the production model (model_watcher.py, hot-swapped on promotion) behind the dynamic
batcher (batcher.py), and the lake's copy of every caption, so that each is computed once per image and model
version. One per API process, started and stopped by the app's lifespan (main.py).

A caption is answered, in this order, from: this process's cache -> the catalog's ``captions`` (what any API
replica computed) -> ``gold.captions`` through Trino (what the batch job computed; for an image in silver,
named by id or uploaded again) -> the model, whose caption is then stored in the catalog (the batch job copies it
into gold.captions instead of computing it again). See lake/captions.py.

    svc = CaptionService(get_settings())      # tests: CaptionService(s, registry=lambda: reg, catalog=lambda: cat)
    await svc.start()
    hit = svc.cached(image_id) or svc.stored(image_id, in_lake=True)
    caption, version, filtered = hit or await svc.caption(image, image_id)
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from PIL import Image

from lake.captions import FoundCaption, api_caption, batch_caption
from lake.config import Settings
from lake.tables import Tables
from services.api.batcher import Batcher, new_stats
from services.api.model_watcher import Loaded, ModelWatcher
from services.api.stores import Stores

log = structlog.get_logger("lake.api.captions")

Answer = tuple[str, str, "str | None"]  # (caption, model version, moderation reason)


class NoModel(RuntimeError):
    """No production model is loaded (yet)."""


def caption_batch(loaded: Loaded, images: list[Image.Image]) -> list[str]:
    """One `caption()` call for the whole batch (runs in the batcher's worker thread)."""
    return loaded.captioner.caption(images, batch_size=len(images))


def _stats() -> dict:
    return {**new_stats(), "swaps": 0, "stored_hits": 0, "filtered": Counter(), "store_errors": 0}


@dataclass
class CaptionService:
    settings: Settings
    registry: Callable[[], Any] | None = None  # builds a lake.registry.Registry; default Registry.connect
    catalog: Callable[[], Any] | None = None  # builds the lake.catalog.Catalog captions are stored in
    tables: Tables | None = None  # where gold.captions is; default settings.tables
    stats: dict = field(default_factory=_stats)
    caption_batch: Callable[[Loaded, list[Image.Image]], list[str]] = caption_batch  # tests wrap it

    def __post_init__(self) -> None:
        from lake.moderation import get_filter

        self.moderate = get_filter(self.settings)
        self.tables = self.tables or self.settings.tables
        self.stores = Stores(lambda: self.settings, catalog=self.catalog, registry=self.registry)
        self.watcher = ModelWatcher(self.settings, registry=self.stores.registry, stats=self.stats)
        s = self.settings
        self.batcher = Batcher(
            self._run,
            finish=self._finish,
            max_batch=s.caption_max_batch,
            max_wait_s=s.caption_max_wait_ms / 1000,
            queue_size=s.caption_queue_size,
            stats=self.stats,
            name="caption",
        )
        self._cache: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def current(self) -> Loaded | None:
        return self.watcher.current

    @property
    def state(self) -> str:
        return self.watcher.state

    @property
    def kafka_ready(self) -> threading.Event:
        return self.watcher.kafka_ready

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.batcher.start()
        self._tasks = [asyncio.create_task(self.watcher.watch(), name="caption-watcher")]
        self._consumer = threading.Thread(target=self._consume, name="caption-promotions", daemon=True)
        self._consumer.start()

    def _consume(self) -> None:
        """The `models.promoted` consumer thread (the bench, which has no Kafka, replaces it)."""
        self.watcher.consume(self._stop)

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.batcher.stop(NoModel("the API is shutting down"))
        await asyncio.to_thread(self._consumer.join, 5)

    def describe(self) -> dict:
        s, current = self.stats, self.current
        return {
            "model_version": current.version if current else None,
            "state": self.state,
            "batches": s["batches"],
            "images": s["images"],
            "max_batch": s["max_batch"],
            "swaps": s["swaps"],
        }

    # ---- the lake's copy: computed once per (image, version), whichever replica or job did it ----------------------

    def require_model(self) -> Loaded:
        current = self.current
        if current is None:
            raise NoModel(
                "no production model yet"
                if self.state in ("no production model", "starting")
                else f"no model loaded yet ({self.state})"
            )
        return current

    def cached(self, key: str) -> Answer | None:
        """(caption, version, filter reason) remembered for ``key`` under the loaded version, or None."""
        version = self.require_model().version
        hit = self._cache.get((version, key))
        if hit is None:
            return None
        self._cache.move_to_end((version, key))
        return hit[0], version, hit[1]

    def lookup(self, image_id: str, version: str, *, in_lake: bool | None) -> FoundCaption | None:
        """The caption of (image, version) the lake holds: the catalog's, then gold.captions' when the image is in
        silver (``in_lake``; None: the catalog says whether it is), so the batch job may have captioned it.
        Raises when a store is unreachable."""
        cat = self.stores.catalog()
        if hit := api_caption(catalog=cat, image_id=image_id, model_version=version):
            return hit
        if in_lake is None:  # an upload: the same bytes may have come through bronze and silver before
            in_lake = cat.image(image_id) is not None
        if not in_lake:
            return None
        return batch_caption(table=self.tables.captions, image_id=image_id, model_version=version, query=self._trino)

    def _trino(self, sql: str, params: list) -> list[list]:
        from lake.clients import trino_query

        return trino_query(sql, params, s=self.settings)

    def stored(self, image_id: str, *, in_lake: bool | None = None) -> Answer | None:
        """(caption, version, filter reason) the lake already holds for ``image_id`` under the loaded version, or
        None; an unreachable store is a miss, not an error."""
        version = self.require_model().version
        try:
            hit = self.lookup(image_id, version, in_lake=in_lake)
        except Exception as e:  # noqa: BLE001 -- the catalog or Trino is down: compute the caption instead
            self.stats["store_errors"] += 1
            log.warning("stored caption look-up failed", error=str(e)[:200])
            return None
        if hit is None:
            return None
        self.stats["stored_hits"] += 1
        self._remember(version, image_id, hit.caption, hit.filtered)
        return hit.caption, version, hit.filtered

    def known(self, image_id: str) -> Answer | None:
        """The served model's caption of an image in the lake, if anyone computed it (never computes; for
        `GET /v1/images/{id}`); None without a model or when the stores are unreachable."""
        current = self.current
        if current is None:
            return None
        if hit := self._cache.get((current.version, image_id)):
            return hit[0], current.version, hit[1]
        try:
            found = self.lookup(image_id, current.version, in_lake=True)
        except Exception as e:  # noqa: BLE001 -- the image is still described; say what failed in the log
            log.warning("caption look-up for an image failed", image_id=image_id, error=str(e)[:200])
            return None
        return (found.caption, current.version, found.filtered) if found else None

    def store(self, image_id: str, version: str, caption: str, reason: str | None) -> None:
        """Keep the caption in the catalog (the batch job copies it into gold.captions, see caption_images)."""
        try:
            self.stores.catalog().store_caption(image_id, version, caption, reason)
        except Exception as e:  # noqa: BLE001 -- the answer stands; the batch job computes it later
            self.stats["store_errors"] += 1
            log.warning("storing a caption failed", image_id=image_id, error=str(e)[:200])

    # ---- computing -------------------------------------------------------------------------------------------------

    async def caption(self, image: Image.Image, key: str) -> Answer:
        """(caption, model version, filter reason) of ``image``, batched with whatever else is waiting; the
        caption has been through the moderation filter ("" and a reason when it was filtered)."""
        self.require_model()
        return await self.batcher.submit((image, key), self.settings.caption_timeout_s)

    def _run(self, items: list[tuple[Image.Image, str]]) -> list[tuple[str, str]]:
        """One batch in the worker thread: (raw caption, version) each, all from one model."""
        loaded = self.current  # read once: a swap during this batch does not touch it
        if loaded is None:
            raise NoModel("no production model yet")
        return [(raw, loaded.version) for raw in self.caption_batch(loaded, [image for image, _ in items])]

    def _finish(self, item: tuple[Image.Image, str], answer: tuple[str, str]) -> Answer:
        """On the event loop, for every caption computed: moderate, count, remember."""
        (_, key), (raw, version) = item, answer
        verdict = self.moderate(raw)
        if verdict.filtered:
            self.stats["filtered"][verdict.reason] += 1
        self._remember(version, key, verdict.text, verdict.reason)
        return verdict.text, version, verdict.reason

    def _remember(self, version: str, key: str, cap: str, reason: str | None = None) -> None:
        if self.settings.caption_cache_size <= 0:
            return
        self._cache[(version, key)] = (cap, reason)
        self._cache.move_to_end((version, key))
        while len(self._cache) > self.settings.caption_cache_size:
            self._cache.popitem(last=False)
