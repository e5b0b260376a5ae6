"""Talk to the running API as its users do: a client with the first write key, uploads with
human captions, and a probe that waits until the API captions with a given model version
(`lake model serving`, the last task of the lake_retrain DAG, and the demo's learning loop).

    from lake.apps.serving import wait_served
    wait_served("compact-v3", within=60)
"""

from __future__ import annotations

import io
import time

from lake.config import get_settings

PROBE_SEED = 5  # images the lake never sees: the same probes before and after


def api_client():
    """An httpx client for the running API with the first write key."""
    import httpx

    s = get_settings()
    return httpx.Client(
        base_url=f"http://{s.host}:{s.api_port}", headers={"X-API-Key": s.api_keys[0].get_secret_value()}, timeout=60
    )


def upload_by_api(files, captions: dict[str, list[str]], source: str) -> None:
    """POST each file to /v1/images with its human captions (8 at a time), as a web app does."""
    from concurrent.futures import ThreadPoolExecutor

    with api_client() as api, ThreadPoolExecutor(8) as pool:

        def post(path):
            r = api.post(
                f"/v1/images?source={source}",
                files={"file": (path.name, path.read_bytes())},
                data={"captions": captions[path.name]},
            )
            r.raise_for_status()

        list(pool.map(post, files))


def probes(n: int = 6) -> list[tuple[str, bytes, str]]:
    """``n`` star images (file name, PNG bytes, first human caption), drawn apart from every upload."""
    from lake.datasets.shapes import generate

    return [(s.filename, s.data, s.captions[0]) for s in generate(n, seed=PROBE_SEED, star="only", fmt="png")]


def ask_api(images: list[tuple[str, bytes, str]]) -> list[dict]:
    """POST /v1/captions for each probe; the answers (caption, model_version)."""
    with api_client() as api:
        return [
            api.post("/v1/captions", files={"file": (name, io.BytesIO(data), "image/png")}).raise_for_status().json()
            for name, data, _ in images
        ]


def wait_served(version: str, within: float = 90.0) -> float:
    """Seconds until the running API answers with ``version`` (it swaps on `models.promoted`)."""
    import httpx

    image = probes(1)
    start = time.monotonic()
    while True:
        try:
            if ask_api(image)[0]["model_version"] == version:
                return time.monotonic() - start
        except httpx.HTTPStatusError as e:  # 503 while the API loads its first model
            if e.response.status_code != 503:
                raise
        if time.monotonic() - start > within:
            raise SystemExit(
                f"the API at :{get_settings().api_port} still does not serve {version} after "
                f"{within:.0f} s: see `lake logs api`"
            )
        time.sleep(0.2)
