"""Shared resources for routes, as `Annotated[..., Depends(...)]` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from lake.config import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]
