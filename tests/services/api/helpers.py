"""What the API tests against the stack share: test images, a caption service on a registry of the test's own,
and the app served by an in-process uvicorn on a free port (the stack's API on :8000 runs the code it was
started with). The registry of tiny models is the `lake` fixture (conftest.py)."""

from __future__ import annotations

import io
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
from PIL import Image

from tests.utils.images import API_KEY

CAPTIONS = ["a red circle", "a blue square on the left", "a green triangle at the top", "two yellow stars"]


def png(seed: int, size: int = 48) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def service(lake, model: str | None = None, tables=None, **overrides):
    """A caption service on the test's registry; captions are stored in the test's catalog database
    (``tables``: where it reads gold.captions, default the lake's)."""
    from lake.catalog import Catalog
    from services.api.caption_service import CaptionService

    s = lake["settings"].model_copy(update={"caption_model": model or f"{lake['name']}:production", **overrides})
    return CaptionService(s, registry=lambda: lake["reg"], catalog=lambda: Catalog(lake["reg"].db), tables=tables)


@contextmanager
def serve(svc, wait_model: bool = True):
    """The app with ``svc`` under uvicorn in a thread; an httpx client with the write key."""
    import uvicorn

    from services.api.main import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started or (wait_model and svc.current is None):
            assert thread.is_alive() and time.monotonic() < deadline, f"API did not start: {svc.state}"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=30) as c:
            yield c
    finally:
        server.should_exit = True
        thread.join(15)


def post_file(c: httpx.Client, data: bytes, **kw) -> httpx.Response:
    return c.post("/v1/captions", files={"file": ("x.png", data, "image/png")}, **kw)
