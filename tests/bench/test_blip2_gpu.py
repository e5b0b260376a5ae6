"""bench/blip2_gpu.py on a CPU: the --tiny path builds, saves and loads a small BLIP-2 through
models.captioner.load and writes the JSON that the GPU run writes (no network, seconds)."""

from __future__ import annotations

import json
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from bench import blip2_gpu  # noqa: E402


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("blip2_gpu") / "tiny.json"
    returned = blip2_gpu.main(["--tiny", "--runs", "1", "--batch-sizes", "1,3", "--new-tokens", "5", "--out", str(out)])
    return returned, json.loads(out.read_text())


def test_help_names_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        blip2_gpu.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--tiny", "--modes", "--batch-sizes", "--new-tokens", "--out", "--deadline-s"):
        assert option in text


def test_json_shape(tiny_results):
    returned, data = tiny_results
    assert data == json.loads(json.dumps(returned))  # the file is what main() returned
    assert data["benchmark"] == "blip2_gpu" and data["tiny"] is True
    env = data["environment"]
    for key in ("device", "torch", "transformers", "bitsandbytes", "python"):
        assert key in env
    model = data["model"]
    assert isinstance(model["parameters"], int) and model["parameters"] > 0
    assert set(model["parameters_per_tower"]) == {"vision_model", "qformer", "language_model"}
    assert data["settings"]["batch_sizes"] == [1, 3]
    assert [m["mode"] for m in data["modes"]] == ["fp32", "fp32+nf4", "fp32+8bit"]


def test_fp32_rows_measure_every_batch_size(tiny_results):
    _, data = tiny_results
    fp32 = data["modes"][0]
    assert fp32["status"] == "ok" and fp32["finite_logits"] is True
    assert fp32["load_s"] >= 0 and fp32["parameter_dtypes"] == ["float32"]
    assert [r["batch_size"] for r in fp32["rows"]] == [1, 3]
    for row in fp32["rows"]:
        assert row["caption_ms"] > 0 and row["generate_ms"] > 0 and row["images_per_s"] > 0
        assert row["new_tokens"] == 5  # min_new_tokens = max_new_tokens, whatever the random weights say
        assert row["runs"] == 1 and len(row["caption_runs_ms"]) == 1
        assert row["peak_gib"] is None  # no CUDA here


def test_quantization_rows_say_why_they_were_skipped(tiny_results):
    _, data = tiny_results
    for mode in data["modes"][1:]:
        assert mode["status"] == "skipped" and mode["rows"] == []
        assert mode["reason"].startswith("CaptionerError:") and "CUDA" in mode["reason"]


def test_full_shape_is_blip2_opt_2_7b():
    """The full config has blip2-opt-2.7b's parameter count (built on the meta device: no memory, no time)."""
    import torch
    from transformers import Blip2ForConditionalGeneration

    processor = blip2_gpu.build_processor(blip2_gpu.FULL)
    config = blip2_gpu.blip2_config(blip2_gpu.FULL, processor.tokenizer)
    with torch.device("meta"):
        model = Blip2ForConditionalGeneration._from_config(config, dtype=torch.float16)
    assert sum(p.numel() for p in model.parameters()) == 3_744_679_936
    assert config.qformer_config.encoder_hidden_size == 1408 and config.num_query_tokens == 32
    assert config.image_token_index == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert len(processor.tokenizer) == config.text_config.vocab_size == 50272


def test_markdown_table_lists_every_mode(tiny_results):
    _, data = tiny_results
    table = blip2_gpu.markdown(data)
    assert "| fp32 | 1 |" in table and "| fp32 | 3 |" in table and "fp32+nf4 | - | skipped" in table
