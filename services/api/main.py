"""Lake API (FastAPI): uploads, captions, search and query data (see DESIGN.md).
Routes: /healthz, /readyz, POST /v1/images, GET /v1/images/{id}.

    uvicorn services.api.main:app --port 8000      # or: lake up api
"""

from __future__ import annotations

from fastapi import FastAPI

from lake import __version__
from services.api.routes import health, images


def create_app() -> FastAPI:
    app = FastAPI(
        title="Lake API",
        version=__version__,
        description="Uploads, captions and search over the Lake image data lake.",
    )
    app.include_router(health.router)
    app.include_router(images.router)
    return app


app = create_app()
