"""Shared resources for routes, as `Annotated[..., Depends(...)]` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader
from kafka import KafkaProducer
from minio import Minio

from lake.config import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required for writes")


def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(_api_key)] = None) -> str:
    """Constant-time check of the X-API-Key header against the configured keys."""
    if key is None:
        raise HTTPException(401, {"reason": "unauthorized", "message": "missing X-API-Key header"},
                            headers={"WWW-Authenticate": "APIKey"})
    if not any(secrets.compare_digest(key.encode(), k.get_secret_value().encode()) for k in settings.api_keys):
        raise HTTPException(401, {"reason": "unauthorized", "message": "invalid API key"},
                            headers={"WWW-Authenticate": "APIKey"})
    return key


def get_minio(settings: SettingsDep) -> Minio:
    from lake.clients import minio_client

    return minio_client(settings)


def get_kafka(settings: SettingsDep) -> KafkaProducer:
    from lake.bus import get_producer

    return get_producer(settings)


ApiKey = Annotated[str, Depends(require_api_key)]
MinioDep = Annotated[Minio, Depends(get_minio)]
KafkaDep = Annotated[KafkaProducer, Depends(get_kafka)]
