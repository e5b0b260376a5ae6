"""bench/serving.py at a toy size (the tiny model, a few requests at 1 and 4 clients): the real app serves it in
this process with stubs for the stack, writes serving.json with every figure, and batching forms batches of more
than one image at 4 clients (no timing assertions; no servers).

    .lake/venvs/core/bin/python -m pytest -q -p no:cacheprovider tests/bench/test_serving.py
"""

from __future__ import annotations

import json
import os

import pytest

from bench import serving  # imports neither torch nor transformers: the offline switches below still apply

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from models.captioner.compact import CompactConfig
    from tests.models.captioner.conftest import TINY

    out = tmp_path_factory.mktemp("serving") / "serving.json"
    # a longer wait than the API's 10 ms: on a busy machine 4 clients must still meet in one batch
    returned = serving.main(
        ["--clients", "1,4", "--requests", "6,24", "--max-wait-ms", "50", "--out", str(out)],
        model_config=CompactConfig(**TINY),
    )
    return returned, json.loads(out.read_text())


def test_help_names_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        serving.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--clients", "--requests", "--max-batch", "--max-wait-ms", "--model-dir", "--out"):
        assert option in text


@pytest.mark.slow
def test_results_file_shape(toy):
    returned, data = toy
    assert data == json.loads(json.dumps(returned))  # the file is what main() returned
    assert data["benchmark"] == "serving" and data["cores"] >= 1 and data["torch_threads"] >= 1
    assert data["model"]["parameters"] > 0 and data["model"]["config"]["image_size"] == 32
    assert data["settings"] == {**data["settings"], "max_batch": 16, "max_wait_ms": 50, "cache_size": 0}
    assert [(r["mode"], r["clients"], r["requests"]) for r in data["runs"]] == [
        ("batched", 1, 6),
        ("batch1", 1, 6),
        ("batched", 4, 24),
        ("batch1", 4, 24),
    ]
    for r in data["runs"]:
        assert r["errors"] == 0 and r["images_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["images_batched"] == r["requests"]  # every timed request ran the model: nothing came from a cache
        assert sum(int(k) * n for k, n in r["batch_sizes"].items()) == r["requests"]
        assert r["mean_caption_tokens"] >= 0 and r["api_cpu_ms_per_request"] > 0
    assert set(data["speedup"]) == {"1", "4"} and data["goal_clients"] == 4 and isinstance(data["goal_met"], bool)
    assert data["stack_calls"] == {m: {"stored_hits": 0, "store_errors": 0} for m in ("batched", "batch1")}
    assert set(data["captions_identical"]) == {"1", "4"}
    rss = data["rss_mib"]
    # all three are positive; no order: in a test process that already holds other tests' memory, a collection
    # while the tiny model loads can leave RSS lower after the load than before it
    assert min(rss["before_load"], rss["model_loaded"], rss["after_bench"]) > 0
    assert len(data["load_average_before"]) == len(data["load_average_after"]) == 3


@pytest.mark.slow
def test_batching_forms_batches_and_batch1_does_not(toy):
    _, data = toy
    runs = {(r["mode"], r["clients"]): r for r in data["runs"]}
    assert runs["batched", 4]["max_batch"] > 1 and runs["batched", 4]["batches"] < 24
    assert all(runs["batch1", c]["batch_sizes"] == {"1": n} for c, n in ((1, 6), (4, 24)))
