"""POST /v1/captions: the production captioner behind a dynamic micro-batcher, hot-swapped on promotion.

    curl -H "X-API-Key: lake-local-key" -F file=@cat.jpg localhost:8000/v1/captions
    curl -H "X-API-Key: lake-local-key" -H "content-type: application/json" \\
         -d '{"image_id": "<sha256>"}' localhost:8000/v1/captions        # its silver JPEG

`CaptionService` (one per API process, started by the app's lifespan) owns:
- the model: one reference to (version, captioner), replaced in a single assignment. A batch reads
  it once when it starts, so batches in flight finish on the model they began with.
- the batcher: one asyncio task. Requests wait in a bounded queue (full: 503 + Retry-After); the
  first waits at most ``caption_max_wait_ms`` for company, up to ``caption_max_batch`` go to one
  ``caption()`` call in a worker thread (torch releases the GIL, so the event loop keeps serving).
- the watcher: re-reads the registry's production version when a `models.promoted` event arrives
  (a Kafka consumer thread, every partition, no consumer group: each process sees every event)
  and every ``caption_poll_s`` in case an event was missed; a new version is fetched, loaded and
  warmed up in a thread before the swap, so a broken model never replaces a working one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image, ImageOps
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from lake.config import Settings
from lake.events import IMAGE_ID, Reason, Rejected
from lake.images import decode
from lake.normalize import MAX_SIDE, to_rgb
from lake.storage import read_object
from services.api.deps import ApiKey, MinioDep, SettingsDep
from services.api.routes.images import MULTIPART_OVERHEAD, STATUS, _limited, _problem, parse_multipart

log = structlog.get_logger("lake.api.captions")

JSON_LIMIT = 64 * 1024


class NoModel(RuntimeError):
    """No production model is loaded (yet)."""


class Overloaded(RuntimeError):
    """The batcher's queue is full."""


@dataclass(frozen=True)
class Loaded:
    version: str        # the registry id, DESIGN.md's model_version (e.g. compact-v3)
    captioner: Any      # models.captioner.Captioner


@dataclass
class _Job:
    image: Image.Image
    key: str
    future: asyncio.Future


def caption_batch(loaded: Loaded, images: list[Image.Image]) -> list[str]:
    """One `caption()` call for the whole batch (runs in the worker thread)."""
    return loaded.captioner.caption(images, batch_size=len(images))


@dataclass
class CaptionService:
    settings: Settings
    registry: Callable[[], Any] | None = None   # builds a lake.registry.Registry; default Registry.connect
    catalog: Callable[[], Any] | None = None    # builds the lake.catalog.Catalog captions are stored in
    current: Loaded | None = None
    state: str = "starting"
    stats: dict = field(default_factory=lambda: {"batches": 0, "images": 0, "max_batch": 0, "sizes": Counter(),
                                                  "swaps": 0, "rejected_full": 0, "timeouts": 0, "stored_hits": 0,
                                                  "filtered": Counter(), "store_errors": 0})
    caption_batch: Callable[[Loaded, list[Image.Image]], list[str]] = caption_batch  # tests wrap it

    def __post_init__(self) -> None:
        from lake.moderation import get_filter

        self.moderate = get_filter(self.settings)
        self._cat = None
        self._cache: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        self._tasks: list[asyncio.Task] = []
        self._stop = threading.Event()
        self.kafka_ready = threading.Event()   # the consumer is positioned at the topic's end
        self._reg = None

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(self.settings.caption_queue_size)
        self._wake = asyncio.Event()
        self._caption_pool = ThreadPoolExecutor(1, thread_name_prefix="caption")
        self._load_pool = ThreadPoolExecutor(1, thread_name_prefix="caption-load")
        self._tasks = [asyncio.create_task(self._batcher(), name="caption-batcher"),
                       asyncio.create_task(self._watcher(), name="caption-watcher")]
        self._consumer = threading.Thread(target=self._consume, name="caption-promotions", daemon=True)
        self._consumer.start()

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(NoModel("the API is shutting down"))
        self._caption_pool.shutdown(wait=False, cancel_futures=True)
        self._load_pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._consumer.join, 5)

    def describe(self) -> dict:
        s = self.stats
        return {"model_version": self.current.version if self.current else None, "state": self.state,
                "batches": s["batches"], "images": s["images"], "max_batch": s["max_batch"], "swaps": s["swaps"]}

    # ---- captioning ------------------------------------------------------------------------------------------------

    def require_model(self) -> Loaded:
        if self.current is None:
            raise NoModel("no production model yet" if self.state in ("no production model", "starting")
                          else f"no model loaded yet ({self.state})")
        return self.current

    def cached(self, key: str) -> tuple[str, str, str | None] | None:
        """(caption, version, filter reason) remembered for ``key`` under the loaded version, or None."""
        loaded = self.require_model()
        hit = self._cache.get((loaded.version, key))
        if hit is not None:
            self._cache.move_to_end((loaded.version, key))
            return hit[0], loaded.version, hit[1]
        return None

    # ---- the lake's copy: computed once per (image, version), whichever replica or job did it ------------------

    def lake_catalog(self):
        """The catalog captions are stored in (also the admin routes' registry database)."""
        if self._cat is None:
            from lake.catalog import Catalog

            self._cat = self.catalog() if self.catalog else Catalog.connect(self.settings)
        return self._cat

    def model_registry(self):
        """The registry the served version comes from (also the admin routes')."""
        from lake.registry import Registry

        if self._reg is None:
            self._reg = self.registry() if self.registry else Registry.connect(self.settings)
        return self._reg

    def stored(self, image_id: str) -> tuple[str, str, str | None] | None:
        """(caption, version, filter reason) the loaded version already stored for ``image_id``, or None; an
        unreachable catalog is a miss, not an error."""
        version = self.require_model().version
        try:
            doc = self.lake_catalog().stored_caption(image_id, version)
        except Exception as e:  # noqa: BLE001 -- the catalog is down: compute the caption instead
            self.stats["store_errors"] += 1
            log.warning("stored caption look-up failed", error=str(e)[:200])
            return None
        if doc is None:
            return None
        self.stats["stored_hits"] += 1
        self._remember(version, image_id, doc["caption"], doc.get("filtered"))
        return doc["caption"], version, doc.get("filtered")

    def store(self, image_id: str, version: str, caption: str, reason: str | None) -> None:
        """Keep the caption in the catalog (`lake.gold.captions` takes it from there, see caption_images)."""
        try:
            self.lake_catalog().store_caption(image_id, version, caption, reason)
        except Exception as e:  # noqa: BLE001 -- the answer stands; the batch job computes it later
            self.stats["store_errors"] += 1
            log.warning("storing a caption failed", image_id=image_id, error=str(e)[:200])

    async def caption(self, image: Image.Image, key: str) -> tuple[str, str, str | None]:
        """(caption, model version, filter reason) of ``image``, batched with whatever else is waiting; the
        caption has been through the moderation filter ("" and a reason when it was filtered)."""
        self.require_model()
        job = _Job(image, key, self._loop.create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats["rejected_full"] += 1
            raise Overloaded(f"{self._queue.maxsize} caption requests are waiting already") from None
        try:  # wait_for cancels the job's future on timeout: the batcher then skips it
            return await asyncio.wait_for(job.future, self.settings.caption_timeout_s)
        except TimeoutError:
            self.stats["timeouts"] += 1
            raise

    async def _batcher(self) -> None:
        s = self.settings
        while True:
            batch = [await self._queue.get()]
            deadline = self._loop.time() + s.caption_max_wait_ms / 1000
            while len(batch) < s.caption_max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            live = [j for j in batch if not j.future.done()]  # timed out or disconnected: skip
            if not live:
                continue
            loaded = self.current  # read once: a swap during this batch does not touch it
            try:
                if loaded is None:
                    raise NoModel("no production model yet")
                captions = await self._loop.run_in_executor(self._caption_pool, self.caption_batch, loaded,
                                                            [j.image for j in live])
            except Exception as e:  # noqa: BLE001 -- every waiting request gets the error, the batcher lives on
                log.warning("caption batch failed", size=len(live), error=str(e)[:300])
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            self.stats["batches"] += 1
            self.stats["images"] += len(live)
            self.stats["sizes"][len(live)] += 1
            self.stats["max_batch"] = max(self.stats["max_batch"], len(live))
            for j, raw in zip(live, captions, strict=True):
                verdict = self.moderate(raw)
                if verdict.filtered:
                    self.stats["filtered"][verdict.reason] += 1
                self._remember(loaded.version, j.key, verdict.text, verdict.reason)
                if not j.future.done():
                    j.future.set_result((verdict.text, loaded.version, verdict.reason))

    def _remember(self, version: str, key: str, cap: str, reason: str | None = None) -> None:
        if self.settings.caption_cache_size <= 0:
            return
        self._cache[(version, key)] = (cap, reason)
        self._cache.move_to_end((version, key))
        while len(self._cache) > self.settings.caption_cache_size:
            self._cache.popitem(last=False)

    # ---- hot swap --------------------------------------------------------------------------------------------------

    async def _watcher(self) -> None:
        while True:
            self._wake.clear()
            try:
                loaded = await self._loop.run_in_executor(self._load_pool, self._check)
            except Exception as e:  # noqa: BLE001 -- registry or files unreachable: keep serving, retry later
                self.state = f"error: {type(e).__name__}: {e}"[:300]
                log.warning("caption model check failed", error=self.state)
            else:
                if loaded is not None:
                    previous, self.current = self.current, loaded   # the swap: one reference
                    self.stats["swaps"] += 1
                    log.info("caption model loaded", model=loaded.version,
                             previous=previous.version if previous else None)
                if self.current is not None:
                    self.state = "ready"
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.caption_poll_s)
            except TimeoutError:
                pass

    def _check(self) -> Loaded | None:
        """The production version loaded and warmed up when it differs from the one served, else None."""
        from lake.registry import ModelNotFound

        try:
            doc = self.model_registry().get(self.settings.caption_model)
        except ModelNotFound:
            if self.current is None:
                self.state = "no production model"
            return None  # nothing in production any more: keep serving what we have
        if self.current is not None and doc["_id"] == self.current.version:
            return None
        self.state = f"loading {doc['_id']}"
        from models.captioner import load

        captioner = load(self.model_registry().fetch(doc["_id"]))  # loads take turns inside load()
        captioner.caption([Image.new("RGB", (32, 32), "white")], batch_size=1)  # proves it works before the swap
        return Loaded(doc["_id"], captioner)

    def _consume(self) -> None:
        """Wake the watcher on every `models.promoted` event (a thread: kafka-python blocks)."""
        from kafka import KafkaConsumer, TopicPartition

        s, topic = self.settings, self.settings.topic_models_promoted
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=None,
                                         enable_auto_commit=False, client_id=f"lake-api-{os.getpid()}",
                                         request_timeout_ms=15000)
                parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                if not parts:
                    raise RuntimeError(f"topic {topic} does not exist")
                consumer.assign(parts)
                consumer.seek_to_end(*parts)
                for tp in parts:  # resolve the end now: an event sent after this point is seen
                    consumer.position(tp)
                self.kafka_ready.set()
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=500).values():
                        for r in records:
                            log.info("models.promoted received", promoted=r.value[:300].decode(errors="replace"))
                        if records:
                            self._loop.call_soon_threadsafe(self._wake.set)
            except Exception as e:  # noqa: BLE001 -- the poll fallback covers the gap; try again later
                self.kafka_ready.clear()
                log.warning("models.promoted consumer failed", error=str(e)[:300])
                self._stop.wait(self.settings.caption_poll_s)
            finally:
                if consumer is not None:
                    consumer.close()


# ---- HTTP ----------------------------------------------------------------------------------------------------------

class CaptionPublic(BaseModel):
    caption: str = Field(description='the caption; "" when the moderation filter withheld it')
    model_version: str = Field(description="the registry version that wrote it, e.g. compact-v3")
    image_id: str | None = Field(None, description="the image's id: the one named, or the sha256 of the upload")
    cached: bool = Field(description="answered without running the model: this process's cache, or the caption "
                                     "the lake already stores for this image and version")
    filtered: str | None = Field(None, description="why the moderation filter withheld the caption, if it did")


def get_captions(request: Request) -> CaptionService:
    return request.app.state.captions


CaptionsDep = Annotated[CaptionService, Depends(get_captions)]
router = APIRouter(prefix="/v1/captions", tags=["captions"])


def _image_id(value: object) -> str:
    if not isinstance(value, str) or not IMAGE_ID.fullmatch(value.strip()):
        raise _problem(400, "bad_image_id", "image_id must be 64 lower-case hex digits (the sha256 of the image)")
    return value.strip()


async def _read_request(request: Request, limit: int) -> tuple[bytes | None, str | None]:
    """(image bytes, None) or (None, image_id), from multipart, JSON, a urlencoded form or a raw body."""
    ctype = request.headers.get("content-type", "")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise _problem(413, "too_large", f"body of {length} bytes; the limit is {limit}")
    if ctype.startswith("application/json"):
        body = b"".join([c async for c in _limited(request, JSON_LIMIT)])
        try:
            doc = json.loads(body)
        except ValueError:
            raise _problem(400, "bad_json", 'the body is not JSON: send {"image_id": "<sha256>"}') from None
        if not isinstance(doc, dict) or "image_id" not in doc:
            raise _problem(400, "bad_json", 'JSON body needs "image_id"; upload new images as multipart `file`')
        return None, _image_id(doc["image_id"])
    if ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form(max_files=0, max_fields=8)
        return None, _image_id(form.get("image_id"))
    if not ctype.startswith("multipart/form-data"):
        return b"".join([c async for c in _limited(request, limit)]), None
    form = await parse_multipart(request, limit, max_fields=8)
    try:
        upload, image_id = form.get("file"), form.get("image_id")
        if (upload is None) == (image_id is None):
            raise _problem(400, "missing_file", "send either a `file` part with the image or an `image_id` field")
        if image_id is not None:
            return None, _image_id(image_id)
        if not isinstance(upload, UploadFile):
            raise _problem(400, "missing_file", "`file` must be a file part with the image bytes")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise _problem(413, "too_large", f"file over {limit} bytes")
        return data, None
    finally:
        await form.close()


def _decode(data: bytes, s: Settings) -> Image.Image:
    """The front door's checks and decoder (lake.images), then what silver does: orient, RGB.
    JPEGs decode at the smallest DCT scale still at least silver's size (the model sees far less)."""
    def draft(w: int, h: int) -> tuple[int, int]:
        scale = min(1.0, MAX_SIDE / max(w, h))
        return max(1, round(w * scale)), max(1, round(h * scale))

    try:
        img, info = decode(data, max_bytes=s.max_upload_bytes, max_pixels=s.max_image_pixels, draft=draft)
        try:
            return to_rgb(ImageOps.exif_transpose(img))
        except Rejected:
            raise
        except Exception as e:  # noqa: BLE001 -- decodes but does not convert: still bad data
            raise Rejected(Reason.CORRUPT_IMAGE, f"{info.content_type} does not convert: {e}"[:300]) from e
    except Rejected as e:
        raise _problem(STATUS.get(e.reason, 400), getattr(e.reason, "value", str(e.reason)), e.message) from e


def _silver_jpeg(mc, image_id: str) -> bytes | None:
    from spark_jobs.silver.normalize_images import SILVER_BUCKET, silver_key

    return read_object(mc, SILVER_BUCKET, silver_key(image_id))


@router.post(
    "",
    summary="Caption an image: multipart `file` (or the raw bytes as the body), or an `image_id` in silver "
            '(JSON {"image_id": ...} or a form field)',
    response_model=CaptionPublic,
    responses={400: {}, 401: {}, 404: {"description": "no silver image with that id"}, 413: {}, 415: {}, 422: {},
               503: {"description": "no production model yet, or the queue is full (see Retry-After)"},
               504: {"description": "not captioned within caption_timeout_s"}},
)
async def create_caption(request: Request, _: ApiKey, settings: SettingsDep, mc: MinioDep,
                         svc: CaptionsDep) -> CaptionPublic:
    try:
        svc.require_model()  # before reading a body that could not be captioned anyway
        data, image_id = await _read_request(request, settings.max_upload_bytes)
        key = image_id or hashlib.sha256(data).hexdigest()  # DESIGN.md: image_id = sha256 of the uploaded bytes
        if hit := svc.cached(key) or await run_in_threadpool(svc.stored, key):
            return CaptionPublic(caption=hit[0], model_version=hit[1], image_id=key, cached=True, filtered=hit[2])
        if image_id:
            data = await run_in_threadpool(_silver_jpeg, mc, image_id)
            if data is None:
                raise _problem(404, "not_found", f"no image {image_id} in silver: unknown, or not normalized yet "
                                                 "(`lake layers run`); upload it as `file` to caption it now")
        image = await run_in_threadpool(_decode, data, settings)
        caption, version, reason = await svc.caption(image, key)
        await run_in_threadpool(svc.store, key, version, caption, reason)
    except NoModel as e:
        raise HTTPException(503, {"reason": "no_model", "message": str(e)}, headers={"Retry-After": "30"}) from e
    except Overloaded as e:
        raise HTTPException(503, {"reason": "overloaded", "message": str(e)}, headers={"Retry-After": "1"}) from e
    except TimeoutError as e:
        raise HTTPException(504, {"reason": "timeout", "message": f"not captioned within "
                                                                  f"{settings.caption_timeout_s} s"}) from e
    return CaptionPublic(caption=caption, model_version=version, image_id=key, cached=False, filtered=reason)
