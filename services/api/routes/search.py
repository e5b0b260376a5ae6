"""Caption search: GET /v1/search?q=&k= and GET /v1/images/{image_id}/similar?k=, answered by the process's
SearchService (search_service.py); 503 + Retry-After until it has loaded the sentence model and an index.

    curl 'localhost:8000/v1/search?q=a+red+star+on+the+left&k=5'
    curl 'localhost:8000/v1/images/<sha256>/similar?k=5'
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from lake.search_index import Hit
from lake.tables import IMAGE_ID
from services.api.deps import SearchDep
from services.api.errors import problem
from services.api.schemas import SearchHitPublic
from services.api.search_service import NotReady

MAX_K = 100  # candidate setting: search_max_k
MAX_QUERY = 500  # characters; captions are a sentence
RETRY_AFTER = "10"  # seconds: loading the model and the index takes a few

router = APIRouter(tags=["search"])
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many results, at most {MAX_K}")]
NOT_READY = {503: {"description": "no index loaded yet (see Retry-After)"}}


def _not_ready(e: NotReady) -> HTTPException:
    return problem(503, "not_ready", f"search is not ready: {e}", retry_after=int(RETRY_AFTER))


def _public(hits: list[Hit]) -> list[SearchHitPublic]:
    return [SearchHitPublic(image_id=h.image_id, caption=h.caption, score=round(h.score, 5)) for h in hits]


@router.get(
    "/v1/search",
    summary="Images whose captions mean what `q` says (cosine of sentence embeddings)",
    response_model=list[SearchHitPublic],
    responses={400: {}, 422: {}, **NOT_READY},
)
def search_captions(
    svc: SearchDep,
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY, description="text to look for")],
    k: K = 10,
) -> list[SearchHitPublic]:
    text = q.strip()
    if not text or "\x00" in text:
        raise problem(400, "bad_query", "q must be non-empty text without NUL")
    try:
        version, hits = svc.search(text, k)
    except NotReady as e:
        raise _not_ready(e) from e
    response.headers["X-Search-Index-Version"] = str(version)
    return _public(hits)


@router.get(
    "/v1/images/{image_id}/similar",
    summary="Images whose captions are nearest this image's",
    response_model=list[SearchHitPublic],
    responses={404: {}, 422: {}, **NOT_READY},
)
def similar_images(
    svc: SearchDep, response: Response, image_id: Annotated[str, Path(pattern=IMAGE_ID.pattern)], k: K = 10
) -> list[SearchHitPublic]:
    try:
        version, hits = svc.similar(image_id, k)
    except NotReady as e:
        raise _not_ready(e) from e
    except KeyError:
        raise problem(
            404, "not_found", f"image {image_id} is not in the search index: unknown, or not captioned and indexed yet"
        ) from None
    response.headers["X-Search-Index-Version"] = str(version)
    return _public(hits)
