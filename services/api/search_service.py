"""Caption search over the index that `lake search index` publishes (lake/search_index.py), for
`GET /v1/search` and `GET /v1/images/{id}/similar` (routes/search.py).

`SearchService` (one per API process) owns the sentence model and the current index. A daemon thread loads
both (startup never waits for them), then re-reads the search pointer in the gold bucket every ``poll_s`` and
loads a new version before swapping it in (one reference assignment: a request reads it once, so it finishes on
the version it began with). Until both are loaded a search raises ``NotReady``. The vectors are memory-mapped:
API workers on one host share them through the page cache.

    svc = SearchService().start()
    version, hits = svc.search("a red star on the left", 5)
    version, hits = svc.similar("<sha256>", 5)            # KeyError: not in the index
    svc.stop()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from lake.search import Embedder
from lake.search_index import NPROBE, CaptionIndex, Hit

log = structlog.get_logger("lake.api.search")

POLL_S = 30.0  # candidate setting: search_poll_s


class NotReady(RuntimeError):
    """No index or no sentence model loaded (yet)."""


def check_current(held: CaptionIndex | None) -> CaptionIndex | None:
    """The published version when it differs from ``held``, else None (MinIO; runs in the loader thread)."""
    from lake.clients import minio_client
    from lake.search_index import load_current, read_pointer

    pointer = read_pointer(minio_client())
    if pointer is None or (held is not None and pointer["version"] == held.version):
        return None
    return load_current(pointer)


def load_embedder() -> Embedder:
    from lake.search import minilm_embedder

    return minilm_embedder()


@dataclass
class SearchService:
    check: Callable[[CaptionIndex | None], CaptionIndex | None] = check_current
    make_embedder: Callable[[], Embedder] = load_embedder
    poll_s: float = POLL_S
    nprobe: int = NPROBE
    current: CaptionIndex | None = None
    embed: Embedder | None = None
    state: str = "starting"

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    def start(self) -> SearchService:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="search-loader", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.embed is None:
                    self.state = "loading the sentence model"
                    embed = self.make_embedder()
                    embed(["warm up"])  # proves it works and pays the first call's cost here
                    self.embed = embed
                if self.current is None:
                    self.state = "loading the index"
                new = self.check(self.current)
                if new is not None:
                    previous, self.current = self.current, new  # the swap: one reference
                    self.swaps += 1
                    log.info(
                        "search index loaded",
                        version=new.version,
                        size=new.index.size,
                        previous=previous.version if previous else None,
                    )
                self.state = "ready" if self.current is not None else "no index yet (run `lake search index`)"
            except Exception as e:  # noqa: BLE001 -- store or files unreachable: keep serving, retry later
                self.state = f"error: {type(e).__name__}: {e}"[:300]
                log.warning("search index check failed", error=self.state)
            self._stop.wait(self.poll_s)

    def describe(self) -> dict:
        return {
            "state": self.state,
            "version": self.current.version if self.current else None,
            "size": self.current.index.size if self.current else 0,
            "swaps": self.swaps,
        }

    def _ready(self) -> tuple[CaptionIndex, Embedder]:
        current, embed = self.current, self.embed  # read once
        if current is None or embed is None:
            raise NotReady(self.state)
        return current, embed

    def search(self, text: str, k: int) -> tuple[int, list[Hit]]:
        current, embed = self._ready()
        return current.version, current.search(embed([text]), k, self.nprobe)[0]

    def similar(self, image_id: str, k: int) -> tuple[int, list[Hit]]:
        """KeyError when ``image_id`` is not in the index."""
        current, _ = self._ready()
        return current.version, current.similar(image_id, k, self.nprobe)
