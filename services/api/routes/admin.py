"""Admin routes: the model registry over HTTP for runbooks and on-call, with an admin key only
(``LAKE_ADMIN_KEYS``; a write key gets 403). The same operations as `lake model list|promote|rollback`
(lake/retrain.py), recorded in the registry's history and the catalog's ``promotions`` under the key's short
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
from fastapi import APIRouter, Depends, Path, Query

from lake.registry import NAME_PATTERN, VERSION_PATTERN
from services.api import crud
from services.api.deps import AdminKey, CatalogDep, RegistryDep, key_id, require_admin_key
from services.api.errors import problem
from services.api.schemas import ModelVersionPublic

log = structlog.get_logger("lake.api.admin")

NAME = rf"^{NAME_PATTERN}$"
VERSION = rf"^{VERSION_PATTERN}$"
Reason = Annotated[str, Query(min_length=1, max_length=500, description="Recorded with the stage change.")]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin_key)],
    responses={401: {"description": "No key or an unknown one"}, 403: {"description": "A write key, not an admin key"}},
)


def _utc(at: datetime | None) -> datetime | None:
    """The catalog hands back naive UTC datetimes: say that they are UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def version_row(doc: dict) -> ModelVersionPublic:
    last = (doc.get("history") or [{}])[-1]
    overall = (doc.get("evaluation") or {}).get("overall") or {}
    return ModelVersionPublic(
        model_version=doc["_id"],
        name=doc["name"],
        version=doc["version"],
        stage=doc["stage"],
        created_at=_utc(doc["created_at"]),
        dataset=(doc.get("dataset") or {}).get("id"),
        cider=overall.get("CIDEr"),
        changed_by=last.get("by"),
        changed_at=_utc(last.get("at")),
        reason=last.get("reason"),
    )


def _change(action, **kw) -> ModelVersionPublic:
    from pymongo.errors import PyMongoError

    from lake.registry import ModelNotFound
    from lake.retrain import NothingToRollBack

    try:
        return version_row(action(**kw))
    except ModelNotFound as e:
        raise problem(404, "not_found", str(e)) from None
    except NothingToRollBack as e:
        raise problem(409, "no_change", str(e)) from None
    except PyMongoError as e:  # the registry is unreachable: nothing was changed, or the history says what was
        raise problem(503, "registry_unavailable", str(e)[:200], retry_after=5) from None


@router.get("/models", summary="Every registered model version: stage, data set, CIDEr, last change")
def models(registry: RegistryDep, name: Annotated[str | None, Query(pattern=NAME)] = None) -> list[ModelVersionPublic]:
    return [version_row(d) for d in crud.model_versions(registry=registry, name=name)]


@router.post(
    "/models/{version}/promote",
    summary="Make a version production (the current one is archived)",
    responses={404: {"description": "No such version"}, 409: {"description": "Already production"}},
)
def promote(
    key: AdminKey,
    catalog: CatalogDep,
    registry: RegistryDep,
    version: Annotated[str, Path(pattern=VERSION)],
    reason: Reason = "promoted through the admin API",
) -> ModelVersionPublic:
    from lake.retrain import promote as run_promote

    log.info("admin promote", model=version, by=key_id(key))
    return _change(
        run_promote, version=version, by=f"api {key_id(key)}", reason=reason, catalog=catalog, registry=registry
    )


@router.post(
    "/models/{name}/rollback",
    summary="Make the previous production version production again",
    responses={404: {"description": "No such model"}, 409: {"description": "Nothing to roll back to"}},
)
def rollback(
    key: AdminKey,
    catalog: CatalogDep,
    registry: RegistryDep,
    name: Annotated[str, Path(pattern=NAME)],
    to: Annotated[str | None, Query(pattern=VERSION, description="This version instead")] = None,
    reason: Reason = "rolled back through the admin API",
) -> ModelVersionPublic:
    from lake.retrain import rollback as run_rollback

    log.info("admin rollback", model=name, to=to, by=key_id(key))
    return _change(
        run_rollback, name=name, to=to, by=f"api {key_id(key)}", reason=reason, catalog=catalog, registry=registry
    )
