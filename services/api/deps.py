"""Every shared resource a route needs, as an `Annotated[..., Depends(...)]` alias: the settings, the keys, the
process's clients (one Catalog, Registry and MinIO client, see stores.py; the Kafka producer), services
(the captioner, search) and the lake's tables. Tests replace a getter with
``app.dependency_overrides[get_catalog] = ...``.

    @router.get("/thing")
    def thing(_: ApiKey, catalog: CatalogDep, svc: CaptionsDep): ...
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from kafka import KafkaProducer
from minio import Minio

from lake.catalog import Catalog
from lake.config import Settings, get_settings
from lake.registry import Registry
from lake.tables import Tables
from services.api.caption_service import CaptionService
from services.api.search_service import SearchService
from services.api.stores import Stores

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_tables(settings: SettingsDep) -> Tables:
    """The lake's Iceberg tables (tests point the routes at a namespace of their own)."""
    return settings.tables


TablesDep = Annotated[Tables, Depends(get_tables)]

# ---- keys ------------------------------------------------------------------------------------------------------

_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="A write key (LAKE_API_KEYS) or, for /v1/admin, an admin key (LAKE_ADMIN_KEYS)",
)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, {"reason": "unauthorized", "message": message}, headers={"WWW-Authenticate": "APIKey"})


def _known(key: str, keys: list) -> bool:
    """Constant-time comparison against every configured key."""
    return any(secrets.compare_digest(key.encode(), k.get_secret_value().encode()) for k in keys)


def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(_api_key)] = None) -> str:
    """The X-API-Key header holds a write key."""
    if key is None:
        raise _unauthorized("missing X-API-Key header")
    if not _known(key, settings.api_keys):
        raise _unauthorized("invalid API key")
    return key


def require_admin_key(settings: SettingsDep, key: Annotated[str | None, Security(_api_key)] = None) -> str:
    """The X-API-Key header holds an admin key; a write key is known but not enough (403)."""
    if key is None:
        raise _unauthorized("missing X-API-Key header")
    if not _known(key, settings.admin_keys):
        if _known(key, settings.api_keys):
            raise HTTPException(403, {"reason": "forbidden", "message": "a write key cannot use /v1/admin"})
        raise _unauthorized("invalid API key")
    return key


def key_id(key: str) -> str:
    """How logs and the registry's history name a key: a short hash, never the key."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


ApiKey = Annotated[str, Depends(require_api_key)]
AdminKey = Annotated[str, Depends(require_admin_key)]

# ---- the process's clients -------------------------------------------------------------------------------------

_create = threading.Lock()


def _once(request: Request, name: str, make):
    """``app.state.<name>``: the one the lifespan made, else one made on first use (an app run without its
    lifespan, as some tests do)."""
    value = getattr(request.app.state, name, None)
    if value is None:
        with _create:
            value = getattr(request.app.state, name, None)
            if value is None:
                value = make()
                setattr(request.app.state, name, value)
    return value


def get_stores(request: Request) -> Stores:
    return _once(request, "stores", lambda: Stores(get_settings))


StoresDep = Annotated[Stores, Depends(get_stores)]


def get_catalog(stores: StoresDep) -> Catalog:
    return stores.catalog()


def get_registry(stores: StoresDep) -> Registry:
    return stores.registry()


def get_minio(stores: StoresDep) -> Minio:
    return stores.minio()


def get_kafka(settings: SettingsDep) -> KafkaProducer:
    from lake.bus import get_producer

    return get_producer(settings)  # one per process and brokers (lake.bus)


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MinioDep = Annotated[Minio, Depends(get_minio)]
KafkaDep = Annotated[KafkaProducer, Depends(get_kafka)]

# ---- services --------------------------------------------------------------------------------------------------


def get_captions(request: Request) -> CaptionService:
    """The captioner the app's lifespan started."""
    return request.app.state.captions


def get_search(request: Request) -> SearchService:
    """The app's search service: the one its lifespan started, else one started on first use."""
    return _once(request, "search", lambda: SearchService().start())


CaptionsDep = Annotated[CaptionService, Depends(get_captions)]
SearchDep = Annotated[SearchService, Depends(get_search)]
