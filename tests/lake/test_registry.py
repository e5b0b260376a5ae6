"""lake/registry.py's `fetch`: concurrent fetches of one version download it once and never replace the copy
a caller is already reading (two model watchers sharing a cache raced so: "no file named model.safetensors").

    .lake/venvs/core/bin/python -m pytest -q tests/lake/test_registry.py
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lake.registry import Registry

FILES = {"config.json": b"{}", "model.safetensors": b"w" * 4096}
DOC = {
    "_id": "m-v2",
    "name": "m",
    "version": 2,
    "prefix": "m/v2/",
    "files": [{"name": n, "sha256": hashlib.sha256(b).hexdigest()} for n, b in FILES.items()],
}


class SlowStore:
    """fget_object as MinIO's, slowly, counting the downloads."""

    def __init__(self) -> None:
        self.gets = 0
        self.lock = threading.Lock()

    def fget_object(self, bucket: str, key: str, path: str) -> None:
        with self.lock:
            self.gets += 1
        time.sleep(0.05)
        with open(path, "wb") as f:
            f.write(FILES[key.rsplit("/", 1)[1]])


def test_concurrent_fetches_download_once_and_keep_the_first_copy(tmp_path, monkeypatch):
    store = SlowStore()
    reg = Registry(db=None, mc=store, cache=tmp_path)
    monkeypatch.setattr(reg, "get", lambda spec: DOC)

    def fetch_and_read(_: int) -> bytes:
        target = reg.fetch("m-v2")
        time.sleep(0.1)  # a caller loading the weights while the other fetches finish
        return (target / "model.safetensors").read_bytes()

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(fetch_and_read, range(6))) == {FILES["model.safetensors"]}
    assert store.gets == len(FILES)  # one download of each file
    assert reg.fetch("m-v2") == tmp_path / "m" / "v2" and store.gets == len(FILES)
