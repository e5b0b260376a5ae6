"""Shared resources for routes, as `Annotated[..., Depends(...)]` aliases."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader
from kafka import KafkaProducer
from minio import Minio

from lake.config import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="A write key (LAKE_API_KEYS) or, for /v1/admin, an admin key (LAKE_ADMIN_KEYS)")


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


def get_minio(settings: SettingsDep) -> Minio:
    from lake.clients import minio_client

    return minio_client(settings)


def get_kafka(settings: SettingsDep) -> KafkaProducer:
    from lake.bus import get_producer

    return get_producer(settings)


ApiKey = Annotated[str, Depends(require_api_key)]
AdminKey = Annotated[str, Depends(require_admin_key)]
MinioDep = Annotated[Minio, Depends(get_minio)]
KafkaDep = Annotated[KafkaProducer, Depends(get_kafka)]
