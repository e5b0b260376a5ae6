"""Caption search: GET /v1/search?q=&k= and GET /v1/images/{image_id}/similar?k=, over the index that
`lake search index` publishes (lake/search_index.py).

    curl 'localhost:8000/v1/search?q=a+red+star+on+the+left&k=5'
    curl 'localhost:8000/v1/images/<sha256>/similar?k=5'

`SearchService` (one per API process) owns the sentence model and the current index. A daemon thread loads
both (startup never waits for them), then re-reads ``s3://gold/search/current.json`` every ``poll_s`` and loads
a new version before swapping it in (one reference assignment: a request reads it once, so it finishes on the
version it began with). Until both are loaded the routes answer 503 with Retry-After. The vectors are
memory-mapped: API workers on one host share them through the page cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from lake.events import IMAGE_ID
from lake.search import Embedder
from lake.search_index import NPROBE, CaptionIndex, Hit

log = structlog.get_logger("lake.api.search")

MAX_K = 100          # candidate setting: search_max_k
MAX_QUERY = 500      # characters; captions are a sentence
POLL_S = 30.0        # candidate setting: search_poll_s
RETRY_AFTER = "10"   # seconds: loading the model and the index takes a few


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
                    log.info("search index loaded", version=new.version, size=new.index.size,
                             previous=previous.version if previous else None)
                self.state = "ready" if self.current is not None else "no index yet (run `lake search index`)"
            except Exception as e:  # noqa: BLE001 -- store or files unreachable: keep serving, retry later
                self.state = f"error: {type(e).__name__}: {e}"[:300]
                log.warning("search index check failed", error=self.state)
            self._stop.wait(self.poll_s)

    def describe(self) -> dict:
        return {"state": self.state, "version": self.current.version if self.current else None,
                "size": self.current.index.size if self.current else 0, "swaps": self.swaps}

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


# ---- HTTP ----------------------------------------------------------------------------------------------------------

class SearchHit(BaseModel):
    image_id: str
    caption: str = Field(description="the caption that was indexed (the newest model caption, else a human one)")
    score: float = Field(description="cosine similarity of the caption embeddings, -1..1")


_create = threading.Lock()


def get_search(request: Request) -> SearchService:
    """The app's service: the one its lifespan started, else one started on first use."""
    svc = getattr(request.app.state, "search", None)
    if svc is None:
        with _create:
            svc = getattr(request.app.state, "search", None)
            if svc is None:
                svc = request.app.state.search = SearchService().start()
    return svc


SearchDep = Annotated[SearchService, Depends(get_search)]
router = APIRouter(tags=["search"])
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many results, at most {MAX_K}")]
NOT_READY = {503: {"description": "no index loaded yet (see Retry-After)"}}


def _not_ready(e: NotReady) -> HTTPException:
    return HTTPException(503, {"reason": "not_ready", "message": f"search is not ready: {e}"},
                         headers={"Retry-After": RETRY_AFTER})


def _public(hits: list[Hit]) -> list[SearchHit]:
    return [SearchHit(image_id=h.image_id, caption=h.caption, score=round(h.score, 5)) for h in hits]


@router.get("/v1/search", summary="Images whose captions mean what `q` says (cosine of sentence embeddings)",
            response_model=list[SearchHit], responses={400: {}, 422: {}, **NOT_READY})
def search_captions(svc: SearchDep, response: Response,
                    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY, description="text to look for")],
                    k: K = 10) -> list[SearchHit]:
    text = q.strip()
    if not text or "\x00" in text:
        raise HTTPException(400, {"reason": "bad_query", "message": "q must be non-empty text without NUL"})
    try:
        version, hits = svc.search(text, k)
    except NotReady as e:
        raise _not_ready(e) from e
    response.headers["X-Search-Index-Version"] = str(version)
    return _public(hits)


@router.get("/v1/images/{image_id}/similar", summary="Images whose captions are nearest this image's",
            response_model=list[SearchHit], responses={404: {}, 422: {}, **NOT_READY})
def similar_images(svc: SearchDep, response: Response,
                   image_id: Annotated[str, Path(pattern=IMAGE_ID.pattern)], k: K = 10) -> list[SearchHit]:
    try:
        version, hits = svc.similar(image_id, k)
    except NotReady as e:
        raise _not_ready(e) from e
    except KeyError:
        raise HTTPException(404, {"reason": "not_found", "message": f"image {image_id} is not in the search "
                                  "index: unknown, or not captioned and indexed yet"}) from None
    response.headers["X-Search-Index-Version"] = str(version)
    return _public(hits)
