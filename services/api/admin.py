"""Admin routes: the model registry over HTTP for runbooks and on-call, with an admin key only
(``LAKE_ADMIN_KEYS``; a write key gets 403). The same operations as `lake model list|promote|rollback`
(lake/retrain.py), recorded in the registry's history and ``catalog.lake.promotions`` under the key's short
hash (never the key), announced on `models.promoted` so every API replica swaps at once.

    curl -H "X-API-Key: lake-local-admin-key" localhost:8000/v1/admin/models
    curl -X POST -H "X-API-Key: lake-local-admin-key" \\
         'localhost:8000/v1/admin/models/compact-v3/promote?reason=fixes+stars'
    curl -X POST -H "X-API-Key: lake-local-admin-key" 'localhost:8000/v1/admin/models/compact/rollback?reason=bad+v3'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel

from lake.registry import NAME_PATTERN, VERSION_PATTERN
from services.api.deps import AdminKey, key_id, require_admin_key

log = structlog.get_logger("lake.api.admin")

NAME = rf"^{NAME_PATTERN}$"
VERSION = rf"^{VERSION_PATTERN}$"
Reason = Annotated[str, Query(min_length=1, max_length=500, description="Recorded with the stage change.")]

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin_key)],
                   responses={401: {"description": "No key or an unknown one"},
                              403: {"description": "A write key, not an admin key"}})


class ModelVersion(BaseModel):
    model_version: str
    name: str
    version: int
    stage: str
    created_at: datetime
    dataset: str | None
    cider: float | None
    changed_by: str | None
    changed_at: datetime | None
    reason: str | None


def _utc(at: datetime | None) -> datetime | None:
    """The catalog hands back naive UTC datetimes: say that they are UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def version_row(doc: dict) -> ModelVersion:
    last = (doc.get("history") or [{}])[-1]
    overall = (doc.get("evaluation") or {}).get("overall") or {}
    return ModelVersion(model_version=doc["_id"], name=doc["name"], version=doc["version"], stage=doc["stage"],
                        created_at=_utc(doc["created_at"]), dataset=(doc.get("dataset") or {}).get("id"),
                        cider=overall.get("CIDEr"), changed_by=last.get("by"), changed_at=_utc(last.get("at")),
                        reason=last.get("reason"))


def _stores(request: Request):
    svc = request.app.state.captions
    return svc.lake_catalog(), svc.model_registry()


def _change(action, **kw) -> ModelVersion:
    from pymongo.errors import PyMongoError

    from lake.registry import ModelNotFound
    from lake.retrain import NothingToRollBack

    try:
        return version_row(action(**kw))
    except ModelNotFound as e:
        raise HTTPException(404, {"reason": "not_found", "message": str(e)}) from None
    except NothingToRollBack as e:
        raise HTTPException(409, {"reason": "no_change", "message": str(e)}) from None
    except PyMongoError as e:  # the registry is unreachable: nothing was changed, or the history says what was
        raise HTTPException(503, {"reason": "registry_unavailable", "message": str(e)[:200]},
                            headers={"Retry-After": "5"}) from None


@router.get("/models", summary="Every registered model version: stage, data set, CIDEr, last change")
def models(request: Request, name: Annotated[str | None, Query(pattern=NAME)] = None) -> list[ModelVersion]:
    _, reg = _stores(request)
    return [version_row(d) for d in reg.versions(name) if d["stage"] != "uploading"]


@router.post("/models/{version}/promote", summary="Make a version production (the current one is archived)",
             responses={404: {"description": "No such version"}, 409: {"description": "Already production"}})
def promote(request: Request, key: AdminKey, version: Annotated[str, Path(pattern=VERSION)],
            reason: Reason = "promoted through the admin API") -> ModelVersion:
    from lake.retrain import promote as run_promote

    cat, reg = _stores(request)
    log.info("admin promote", model=version, by=key_id(key))
    return _change(run_promote, version=version, by=f"api {key_id(key)}", reason=reason, catalog=cat, registry=reg)


@router.post("/models/{name}/rollback", summary="Make the previous production version production again",
             responses={404: {"description": "No such model"}, 409: {"description": "Nothing to roll back to"}})
def rollback(request: Request, key: AdminKey, name: Annotated[str, Path(pattern=NAME)],
             to: Annotated[str | None, Query(pattern=VERSION, description="This version instead")] = None,
             reason: Reason = "rolled back through the admin API") -> ModelVersion:
    from lake.retrain import rollback as run_rollback

    cat, reg = _stores(request)
    log.info("admin rollback", model=name, to=to, by=key_id(key))
    return _change(run_rollback, name=name, to=to, by=f"api {key_id(key)}", reason=reason, catalog=cat,
                   registry=reg)
