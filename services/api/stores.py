"""The API process's clients: one Catalog, one Registry (sharing the catalog's MongoDB client) and one MinIO
client, built on first use and closed at shutdown. Routes get them through deps.py (CatalogDep, RegistryDep,
MinioDep); the caption service uses the same ones.

    stores = Stores(get_settings)            # or Stores(get_settings, catalog=lambda: Catalog(db)) in tests
    stores.catalog().stored_caption(image_id, "compact-v3")
    stores.close()                           # the app's lifespan does this
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from lake.config import Settings

log = structlog.get_logger("lake.api.stores")


class Stores:
    """``catalog`` / ``registry``: factories that replace the ones built from the settings (tests, the bench);
    what a factory returns belongs to its caller and is not closed here."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        *,
        catalog: Callable[[], Any] | None = None,
        registry: Callable[[], Any] | None = None,
    ):
        self._settings, self._make_catalog, self._make_registry = settings, catalog, registry
        self._lock = threading.Lock()
        self._catalog = self._registry = self._minio = None
        self._owned: list[Callable[[], None]] = []  # closers of what was built here

    def catalog(self):
        """The lake.catalog.Catalog (MongoDB database ``settings.mongo_db``)."""
        with self._lock:
            if self._catalog is None:
                if self._make_catalog is not None:
                    self._catalog = self._make_catalog()
                else:
                    from lake.catalog import Catalog

                    self._catalog = Catalog.connect(self._settings())
                    self._owned.append(self._catalog.db.client.close)
            return self._catalog

    def registry(self):
        """The lake.registry.Registry, on the catalog's database and client."""
        if self._registry is None:
            made = self._make_registry() if self._make_registry is not None else None
            if made is None:
                from lake.registry import Registry

                made = Registry.connect(self._settings(), db=self.catalog().db)
            with self._lock:
                self._registry = self._registry or made
        return self._registry

    def minio(self):
        """The process's MinIO client (lake.clients keeps one per endpoint and credentials)."""
        if self._minio is None:
            from lake.clients import minio_client

            with self._lock:
                if self._minio is None:
                    self._minio = minio_client(self._settings())
                    self._owned.append(self._minio._http.clear)  # its pooled connections; the client stays usable
        return self._minio

    def close(self) -> None:
        with self._lock:
            closers, self._owned = self._owned, []
            self._catalog = self._registry = self._minio = None
        for close in closers:
            try:
                close()
            except Exception as e:  # noqa: BLE001 -- shutting down: say so and go on
                log.warning("closing a store client failed", error=str(e)[:200])
