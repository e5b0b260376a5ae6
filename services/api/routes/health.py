"""Liveness and readiness. /readyz answers 503 naming each store that is unreachable, and says which
caption model is loaded and which search index (informative only: the API serves uploads without them).

    curl localhost:8000/healthz
    curl localhost:8000/readyz
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api import crud
from services.api.deps import SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the stores the API needs are reachable")
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    checks = {"object_store": crud.ping_object_store, "catalog": crud.ping_catalog}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(asyncio.to_thread(lambda c=check: c(settings=settings)), timeout=5)
            results[name] = "ok"
        except Exception as e:  # noqa: BLE001 -- report, don't crash: readiness is a question, not a failure
            results[name] = f"error: {type(e).__name__}: {e}"[:300]
    ready = all(v == "ok" for v in results.values())
    svc = getattr(request.app.state, "captions", None)
    search = getattr(request.app.state, "search", None)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": results,
        "captioner": svc.describe() if svc is not None else None,
        "search": search.describe() if search is not None else None,
    }
    return JSONResponse(body, status_code=200 if ready else 503)
