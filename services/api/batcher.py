"""A dynamic micro-batcher: one asyncio task gathers waiting requests into batches and runs each batch in a
worker thread, so the event loop keeps serving while the model works (torch releases the GIL).

Requests wait in a bounded queue (full: ``Overloaded``). The first waits at most ``max_wait_s`` for company;
up to ``max_batch`` go to one ``run(items)`` call. A request that timed out or whose client went away is
skipped, not computed. An error in ``run`` is every waiting request's answer; the batcher lives on.

    batcher = Batcher(lambda images: model.caption(images), max_batch=16, max_wait_s=0.01, queue_size=256)
    await batcher.start()
    caption = await batcher.submit(image, timeout_s=30)     # TimeoutError, Overloaded
    await batcher.stop(RuntimeError("shutting down"))       # fails whatever still waits
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("lake.api.batcher")


class Overloaded(RuntimeError):
    """The batcher's queue is full."""


@dataclass
class _Job:
    item: Any
    future: asyncio.Future


def new_stats() -> dict:
    """The batcher's counters (the caption service adds its own; /metrics reads them)."""
    return {"batches": 0, "images": 0, "max_batch": 0, "sizes": Counter(), "rejected_full": 0, "timeouts": 0}


class Batcher:
    """``finish(item, answer)``: runs on the event loop for every answer computed, also one whose request
    timed out meanwhile (a cache can keep it); what it returns is the request's answer."""

    def __init__(
        self,
        run: Callable[[list[Any]], list[Any]],
        *,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        finish: Callable[[Any, Any], Any] | None = None,
        stats: dict | None = None,
        name: str = "batcher",
    ):
        self.run, self.finish, self.max_batch, self.max_wait_s = run, finish, max_batch, max_wait_s
        self.queue_size, self.name = queue_size, name
        self.stats = stats if stats is not None else new_stats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    def qsize(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.queue_size)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._task = asyncio.create_task(self._serve(), name=self.name)

    async def stop(self, error: Exception) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(error)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: Any, timeout_s: float) -> Any:
        """``run``'s answer for ``item``, computed in a batch with whatever else is waiting."""
        job = _Job(item, self._loop.create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats["rejected_full"] += 1
            raise Overloaded(f"{self._queue.maxsize} {self.name} requests are waiting already") from None
        try:  # wait_for cancels the job's future on timeout: the batcher then skips it
            return await asyncio.wait_for(job.future, timeout_s)
        except TimeoutError:
            self.stats["timeouts"] += 1
            raise

    async def _gather(self) -> list[_Job]:
        batch = [await self._queue.get()]
        deadline = self._loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
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
        return batch

    async def _serve(self) -> None:
        while True:
            live = [j for j in await self._gather() if not j.future.done()]  # timed out or disconnected: skip
            if not live:
                continue
            try:
                answers = await self._loop.run_in_executor(self._pool, self.run, [j.item for j in live])
            except Exception as e:  # noqa: BLE001 -- every waiting request gets the error, the batcher lives on
                log.warning("batch failed", batcher=self.name, size=len(live), error=str(e)[:300])
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            s = self.stats
            s["batches"] += 1
            s["images"] += len(live)
            s["sizes"][len(live)] += 1
            s["max_batch"] = max(s["max_batch"], len(live))
            for j, answer in zip(live, answers, strict=True):
                if self.finish is not None:
                    answer = self.finish(j.item, answer)
                if not j.future.done():
                    j.future.set_result(answer)
