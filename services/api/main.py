"""Lake API (FastAPI): uploads, captions, search and query data (docs/architecture.md).
Routes (routes/): /healthz, /readyz, /metrics, POST /v1/images, GET /v1/images/{id}, POST /v1/captions,
GET /v1/search, GET /v1/images/{id}/similar, GET /v1/data/examples, GET /v1/events/{event_id}; with an admin key
GET /v1/admin/models, POST /v1/admin/models/{version}/promote, POST /v1/admin/models/{name}/rollback.

    uvicorn services.api.main:app --port 8000      # or: lake up api

The lifespan starts the caption service (caption_service.py) and the search service (search_service.py), and
closes the process's clients (stores.py) at shutdown; routes get all of them through deps.py.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from lake import __version__
from services.api import metrics
from services.api.caption_service import CaptionService
from services.api.routes import admin, captions, data, events, health, images, search
from services.api.search_service import SearchService


def create_app(caption_service: CaptionService | None = None, search_service: SearchService | None = None) -> FastAPI:
    """The app; ``caption_service`` replaces the one built from the settings (tests pass their own). The search
    service starts with the app when given (the served app passes one), else on the first search request."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from lake.config import get_settings

        svc = caption_service or CaptionService(get_settings())
        app.state.captions = svc
        app.state.stores = svc.stores  # one Catalog, Registry and MinIO client: the captioner's are the routes'
        await svc.start()  # loads the production model in the background: uploads are served meanwhile
        if search_service is not None:
            app.state.search = search_service.start()  # a thread loads the sentence model and the index
        try:
            yield
        finally:
            if getattr(app.state, "search", None) is not None:
                app.state.search.stop()
            await svc.stop()
            svc.stores.close()

    app = FastAPI(
        title="Lake API",
        version=__version__,
        description="Uploads, captions and search over the Lake image data lake.",
        lifespan=lifespan,
    )
    for route in (health, images, captions, search, data, events, admin):
        app.include_router(route.router)
    metrics.install(app)
    return app


app = create_app(search_service=SearchService())
