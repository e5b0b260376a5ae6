"""Liveness and readiness. /readyz answers 503 naming each store that is unreachable, and says which
caption model is loaded (informative only: the API serves uploads without one)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.deps import SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_object_store(settings) -> None:
    from lake.clients import minio_client

    missing = [b for b in settings.buckets if not minio_client(settings).bucket_exists(b)]
    if missing:
        raise RuntimeError(f"missing buckets {missing}")


def _check_catalog(settings) -> None:
    from lake.clients import mongo_client

    with mongo_client(settings, timeout_ms=2000) as c:
        c.admin.command("ping")


@router.get("/readyz", summary="Readiness: the stores the API needs are reachable")
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    checks = {"object_store": _check_object_store, "catalog": _check_catalog}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(asyncio.to_thread(check, settings), timeout=5)
            results[name] = "ok"
        except Exception as e:  # report, don't crash: readiness is a question, not a failure
            results[name] = f"error: {type(e).__name__}: {e}"[:300]
    ready = all(v == "ok" for v in results.values())
    svc = getattr(request.app.state, "captions", None)
    body = {"status": "ready" if ready else "not ready", "checks": results,
            "captioner": svc.describe() if svc is not None else None,
            "search": search.describe() if (search := getattr(request.app.state, "search", None)) else None}
    return JSONResponse(body,
                        status_code=200 if ready else 503)
