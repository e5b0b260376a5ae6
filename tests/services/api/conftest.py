"""Fixtures of the API tests against the stack: two tiny model versions in a registry of the test module's own
(a scratch catalog database, a unique model name), and the reference captions of a direct `load(dir)`."""

from __future__ import annotations

import uuid

import pytest
from PIL import Image

from tests.services.api.helpers import CAPTIONS


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
