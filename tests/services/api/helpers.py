"""What the API tests against the stack share: test images, two tiny model versions in a registry of the test
module's own (the `lake` fixture: a scratch catalog database, a unique model name), the reference captions of a
direct `load(dir)` (`direct`), a caption service on that registry, and the app served by an in-process uvicorn
on a free port (the stack's API on :8000 runs the code it was started with). conftest.py hands the fixtures to
tests/services/api; other suites import them from here.

    from tests.services.api.helpers import lake, png, serve, service  # noqa: F401 -- fixtures
"""

from __future__ import annotations

import io
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
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


@pytest.fixture(scope="module")
def lake(stack_up, tmp_path_factory):
    """Two tiny versions ``<name>-v1`` (production) and ``-v2`` in a scratch catalog database."""
    import torch

    from lake.clients import minio_client, mongo_client
    from lake.registry import Registry
    from lake.tables import MODELS_BUCKET
    from models.captioner.compact import CompactConfig, build
    from tests.models.captioner.conftest import TINY

    name = f"t{uuid.uuid4().hex[:10]}"
    client = mongo_client(stack_up)
    db = client[name]
    reg = Registry(db, minio_client(stack_up), tmp_path_factory.mktemp("models"))
    versions = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model, processor = build(CompactConfig(**TINY), CAPTIONS)
        out = tmp_path_factory.mktemp(f"tiny{seed}")
        model.save_pretrained(out)
        processor.save_pretrained(out)
        versions.append(reg.register(name, out, dataset={"id": "test"}, train={}, run_id="test")["_id"])
    reg.set_stage(versions[0], "production", by="test", reason="first model")
    try:
        yield {"name": name, "reg": reg, "v1": versions[0], "v2": versions[1], "settings": stack_up}
    finally:
        client.drop_database(name)
        mc = minio_client(stack_up)
        for o in mc.list_objects(MODELS_BUCKET, prefix=f"{name}/", recursive=True):
            mc.remove_object(MODELS_BUCKET, o.object_name)


@pytest.fixture(scope="module")
def direct(lake):
    """``direct(version, images)``: what `load(dir).caption` says, the reference for the API."""
    from models.captioner import load  # one load at a time in this process, also while the API loads one

    models = {}

    def caption(version: str, images: list[Image.Image]) -> list[str]:
        if version not in models:
            models[version] = load(lake["reg"].fetch(version))
        return models[version].caption(images)

    return caption
