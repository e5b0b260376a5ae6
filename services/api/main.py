"""Lake API (FastAPI): uploads, captions, search and query data (see DESIGN.md).
Routes: /healthz, /readyz, /metrics, POST /v1/images, GET /v1/images/{id}, POST /v1/captions.

    uvicorn services.api.main:app --port 8000      # or: lake up api
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from lake import __version__
from services.api import captions, metrics
from services.api.routes import health, images


def create_app(caption_service: captions.CaptionService | None = None) -> FastAPI:
    """The app; ``caption_service`` replaces the one built from the settings (tests pass their own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from lake.config import get_settings

        svc = caption_service or captions.CaptionService(get_settings())
        app.state.captions = svc
        await svc.start()  # loads the production model in the background: uploads are served meanwhile
        try:
            yield
        finally:
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
    metrics.install(app)
    return app


app = create_app()
