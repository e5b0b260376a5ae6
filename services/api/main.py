"""Lake API (FastAPI): uploads, captions, search and query data (see DESIGN.md).
Routes: /healthz, /readyz, /metrics, POST /v1/images, GET /v1/images/{id}, POST /v1/captions,
GET /v1/search, GET /v1/images/{id}/similar, GET /v1/data/examples; with an admin key GET /v1/admin/models,
POST /v1/admin/models/{version}/promote, POST /v1/admin/models/{name}/rollback.

    uvicorn services.api.main:app --port 8000      # or: lake up api
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from lake import __version__
from services.api import admin, captions, data, metrics, search
from services.api.routes import health, images


def create_app(caption_service: captions.CaptionService | None = None,
               search_service: search.SearchService | None = None) -> FastAPI:
    """The app; ``caption_service`` replaces the one built from the settings (tests pass their own). The search
    service starts with the app when given (the served app passes one), else on the first search request."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from lake.config import get_settings

        svc = caption_service or captions.CaptionService(get_settings())
        app.state.captions = svc
        await svc.start()  # loads the production model in the background: uploads are served meanwhile
        if search_service is not None:
            app.state.search = search_service.start()  # a thread loads the sentence model and the index
        try:
            yield
        finally:
            if getattr(app.state, "search", None) is not None:
                app.state.search.stop()
            await svc.stop()

    app = FastAPI(
        title="Lake API",
        version=__version__,
        description="Uploads, captions and search over the Lake image data lake.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(images.router)
    app.include_router(captions.router)
    app.include_router(search.router)
    app.include_router(data.router)
    app.include_router(admin.router)
    metrics.install(app)
    return app


app = create_app(search_service=search.SearchService())
