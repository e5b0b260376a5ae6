"""Real-size BLIP-2 on a GPU: latency and memory of the project's own loading and captioning path.

Builds a BLIP-2 of Salesforce/blip2-opt-2.7b's shape (ViT-g 39 layers, Q-Former 12 layers with 32 queries, OPT-2.7b;
~3.7 B parameters) with random weights, entirely locally (no hub), saves it with `save_pretrained` (fp16
safetensors) next to a `Blip2Processor`, then goes through `models.captioner.load(dir, dtype=..., quantization=...)`
and `Captioner.caption(...)` -- the path the batch captioning job uses -- for each mode (fp16, fp16 + NF4, fp16 +
8-bit) and batch size, and reports load time, weight memory, latency, images/s and peak GPU memory.

    python -m bench.blip2_gpu                          # CUDA machine (+ bitsandbytes for nf4/8bit)
                                                       #   -> bench/results/blip2_gpu.json
    python -m bench.blip2_gpu --tiny                   # any CPU, seconds: a small config, fp32, quantization
                                                       #   rows skipped with load()'s reason -> a temp file
    python -m bench.blip2_gpu --batch-sizes 1,4 --modes fp16,fp16+nf4 --runs 5 --out /tmp/b.json

Each generate makes exactly ``--new-tokens`` tokens (min_new_tokens = max_new_tokens: random weights would
otherwise stop at any EOS), greedy. Figures per batch size: ``caption_ms`` is one `caption()` call (image
preprocessing, generate, decoding), ``generate_ms`` is `model.generate` alone on preprocessed inputs, both the
median of ``--runs`` timed calls after one warm-up (``torch.cuda.synchronize`` around each); ``peak_gib`` is
`torch.cuda.max_memory_allocated` over those calls (reset before them), weights included. The JSON is rewritten
after every mode, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DEFAULT_OUT = RESULTS / "blip2_gpu.json"
PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
GIB = 1024**3


@dataclass(frozen=True)
class Shape:
    """Tower sizes. `FULL` is Salesforce/blip2-opt-2.7b's (its config.json), `TINY` a CPU-sized stand-in."""

    image_size: int
    patch_size: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_mlp: int
    qformer_hidden: int
    qformer_layers: int
    qformer_heads: int
    qformer_mlp: int
    cross_attention_frequency: int
    num_query_tokens: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_ffn: int
    text_vocab: int
    text_positions: int


FULL = Shape(
    image_size=224,
    patch_size=14,
    vision_hidden=1408,
    vision_layers=39,
    vision_heads=16,
    vision_mlp=6144,
    qformer_hidden=768,
    qformer_layers=12,
    qformer_heads=12,
    qformer_mlp=3072,
    cross_attention_frequency=2,
    num_query_tokens=32,
    text_hidden=2560,
    text_layers=32,
    text_heads=32,
    text_ffn=10240,
    text_vocab=50272,
    text_positions=2048,
)
TINY = Shape(
    image_size=32,
    patch_size=8,
    vision_hidden=32,
    vision_layers=2,
    vision_heads=2,
    vision_mlp=64,
    qformer_hidden=32,
    qformer_layers=2,
    qformer_heads=2,
    qformer_mlp=64,
    cross_attention_frequency=2,
    num_query_tokens=4,
    text_hidden=32,
    text_layers=2,
    text_heads=2,
    text_ffn=64,
    text_vocab=96,
    text_positions=64,
)


def log(msg: str) -> None:
    print(f"[blip2_gpu {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- the checkpoint ------------------------------------------------------------------------------------------


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer with exactly ``vocab_size`` entries (specials first, then ``w5``, ``w6``...), so
    every id the random decoder emits decodes. `<image>` is an ordinary vocabulary entry, as in compact.py:
    `Blip2Processor` registers it as its image token."""
    from tokenizers import Tokenizer, models

    from models.captioner.compact import wrap_tokenizer

    specials = [PAD, UNK, BOS, EOS, IMAGE]
    vocab = {tok: i for i, tok in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), vocab_size)})
    return wrap_tokenizer(Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK)))


def image_processor_class():
    """`BlipImageProcessor` (what a real BLIP-2 checkpoint names; torchvision-backed in transformers 5) where
    torchvision is installed, else the PIL one it would fall back to (without the warning)."""
    import transformers

    try:
        import torchvision  # noqa: F401

        return transformers.BlipImageProcessor
    except ImportError:
        return getattr(transformers, "BlipImageProcessorPil", transformers.BlipImageProcessor)


def build_processor(shape: Shape):
    from transformers import Blip2Processor

    tokenizer = build_tokenizer(shape.text_vocab)
    image_processor = image_processor_class()(
        size={"height": shape.image_size, "width": shape.image_size},
        do_convert_rgb=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    return Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=shape.num_query_tokens)


def blip2_config(shape: Shape, tokenizer):
    from transformers import Blip2Config, Blip2QFormerConfig, Blip2VisionConfig, OPTConfig

    s = shape
    # initializer_range 0.02 everywhere (transformers' vision default, 1e-10, underflows to 0 in fp16: the
    # ViT would multiply zeros, which is not what a trained one costs)
    vision = Blip2VisionConfig(
        hidden_size=s.vision_hidden,
        intermediate_size=s.vision_mlp,
        num_hidden_layers=s.vision_layers,
        num_attention_heads=s.vision_heads,
        image_size=s.image_size,
        patch_size=s.patch_size,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        initializer_range=0.02,
    )
    qformer = Blip2QFormerConfig(
        hidden_size=s.qformer_hidden,
        intermediate_size=s.qformer_mlp,
        num_hidden_layers=s.qformer_layers,
        num_attention_heads=s.qformer_heads,
        cross_attention_frequency=s.cross_attention_frequency,
        encoder_hidden_size=s.vision_hidden,
        initializer_range=0.02,
    )
    text = OPTConfig(
        vocab_size=s.text_vocab,
        hidden_size=s.text_hidden,
        word_embed_proj_dim=s.text_hidden,
        ffn_dim=s.text_ffn,
        num_hidden_layers=s.text_layers,
        num_attention_heads=s.text_heads,
        max_position_embeddings=s.text_positions,
        do_layer_norm_before=True,
        dropout=0.0,
        attention_dropout=0.0,
        init_std=0.02,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Blip2Config(
        vision_config=vision,
        qformer_config=qformer,
        text_config=text,
        num_query_tokens=s.num_query_tokens,
        initializer_range=0.02,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
    )


def build_checkpoint(shape: Shape, out_dir: Path, device: str, save_dtype: str) -> dict:
    """Random-weight BLIP-2 of ``shape`` saved to ``out_dir`` (safetensors in ``save_dtype``) with its processor.
    Built directly on ``device`` in fp32 (normal init there is fast), then cast and saved."""
    import torch
    from transformers import Blip2ForConditionalGeneration

    t0 = time.perf_counter()
    processor = build_processor(shape)
    config = blip2_config(shape, processor.tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = Blip2ForConditionalGeneration._from_config(config, dtype=torch.float32)
    model.to(device)
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.02)  # transformers starts them at zeros: all queries identical
    params = sum(p.numel() for p in model.parameters())
    per_tower = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("vision_model", "qformer", "language_model")
    }
    model.to(getattr(torch, save_dtype))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    t_save = time.perf_counter() - t0
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in out_dir.rglob("*.safetensors"))
    return {
        "parameters": params,
        "parameters_per_tower": per_tower,
        "shape": asdict(shape),
        "saved_dtype": save_dtype,
        "safetensors_gib": round(size / GIB, 3),
        "build_s": round(t_build, 2),
        "save_s": round(t_save, 2),
        "image_processor": type(processor.image_processor).__name__,
    }


# ---- measuring -----------------------------------------------------------------------------------------------


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _timed(fn, cuda: bool) -> tuple[float, object]:
    _sync(cuda)
    t0 = time.perf_counter()
    out = fn()
    _sync(cuda)
    return time.perf_counter() - t0, out


def make_images(n: int, side: int, seed: int = 0):
    """``n`` distinct noise RGB images of ``side`` px (the processor resizes them as it would a real upload)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(n)]


def measure_batch(captioner, images, batch_size: int, new_tokens: int, runs: int, slow_s: float) -> dict:
    import torch

    cuda = captioner.device.type == "cuda"
    gen = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "num_beams": 1}
    batch = images[:batch_size]
    warm_s, captions = _timed(lambda: captioner.caption(batch, batch_size=batch_size, **gen), cuda)
    assert len(captions) == batch_size, (len(captions), batch_size)
    n = runs if warm_s < slow_s else 1  # a very slow mode (8-bit at a large batch) gets one timed run

    inputs = captioner.processor(images=[im.convert("RGB") for im in batch], return_tensors="pt").to(captioner.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(captioner.dtype)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    gen_s, cap_s = [], []
    with torch.inference_mode():
        for _ in range(n):
            s, ids = _timed(lambda: captioner.model.generate(**inputs, **gen), cuda)
            gen_s.append(s)
    for _ in range(n):
        s, _ = _timed(lambda: captioner.caption(batch, batch_size=batch_size, **gen), cuda)
        cap_s.append(s)
    prompt = captioner.model.config.num_query_tokens + 1  # generate() puts <image> x queries + <s> first
    out_len = int(ids.shape[1])
    row = {
        "batch_size": batch_size,
        "runs": n,
        "caption_ms": round(1000 * statistics.median(cap_s), 1),
        "caption_runs_ms": [round(1000 * s, 1) for s in cap_s],
        "images_per_s": round(batch_size / statistics.median(cap_s), 2),
        "generate_ms": round(1000 * statistics.median(gen_s), 1),
        "generate_runs_ms": [round(1000 * s, 1) for s in gen_s],
        "generate_images_per_s": round(batch_size / statistics.median(gen_s), 2),
        "ms_per_new_token": round(1000 * statistics.median(gen_s) / new_tokens, 2),
        "warmup_ms": round(1000 * warm_s, 1),
        "output_tokens": out_len,
        "new_tokens": out_len - prompt if out_len > new_tokens else out_len,
        "peak_gib": None,
        "peak_over_start_gib": None,
        "sample_caption": captions[0][:60],
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        row["peak_gib"] = round(peak / GIB, 3)
        row["peak_over_start_gib"] = round((peak - before) / GIB, 3)
    return row


def finite_check(captioner) -> bool:
    """One short generate at batch 1 whose raw logits must be finite (random fp16 weights must not overflow)."""
    import torch

    inputs = captioner.processor(images=make_images(1, 64, seed=1), return_tensors="pt").to(captioner.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(captioner.dtype)
    with torch.inference_mode():
        out = captioner.model.generate(
            **inputs, max_new_tokens=2, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
    return bool(all(torch.isfinite(s).all() for s in out.logits))


def run_mode(
    model_dir: Path,
    mode: str,
    batch_sizes: list[int],
    images,
    new_tokens: int,
    runs: int,
    slow_s: float,
    deadline: float,
) -> dict:
    import torch

    from models.captioner import CaptionerError, load

    dtype, _, quant = mode.partition("+")
    entry: dict = {
        "mode": mode,
        "dtype": dtype,
        "quantization": quant or None,
        "status": "ok",
        "reason": None,
        "rows": [],
    }
    cuda = torch.cuda.is_available()
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    try:
        t0 = time.perf_counter()
        captioner = load(model_dir, dtype=dtype, quantization=quant or None)
        _sync(cuda)
        entry["load_s"] = round(time.perf_counter() - t0, 2)
    except CaptionerError as e:
        entry.update(status="skipped", reason=f"CaptionerError: {e}")
        log(f"{mode}: skipped: {e}")
        return entry
    except Exception as e:  # a bitsandbytes/CUDA mismatch and the like: keep the text, go on with the next mode
        entry.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:])
        log(f"{mode}: load failed: {type(e).__name__}: {e}")
        return entry
    model = captioner.model
    entry["footprint_gib"] = round(model.get_memory_footprint() / GIB, 3)
    entry["parameter_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()})
    if cuda:
        entry["weights_gib"] = round((torch.cuda.memory_allocated() - base) / GIB, 3)
        entry["load_peak_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 3)
    log(f"{mode}: loaded in {entry['load_s']} s, footprint {entry['footprint_gib']} GiB")
    try:
        entry["finite_logits"] = finite_check(captioner)
        for bs in batch_sizes:
            if time.monotonic() > deadline:
                entry["rows"].append({"batch_size": bs, "skipped": "deadline (--deadline-s) passed"})
                log(f"{mode} batch {bs}: skipped, deadline passed")
                continue
            try:
                row = measure_batch(captioner, images, bs, new_tokens, runs, slow_s)
            except torch.OutOfMemoryError as e:
                row = {"batch_size": bs, "error": f"OutOfMemoryError: {str(e)[:300]}"}
                gc.collect()
                torch.cuda.empty_cache()
            entry["rows"].append(row)
            log(
                f"{mode} batch {bs}: "
                + ", ".join(
                    f"{k}={row.get(k)}"
                    for k in ("caption_ms", "generate_ms", "images_per_s", "peak_gib", "new_tokens", "error")
                )
            )
    except Exception as e:
        entry.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:])
        log(f"{mode}: failed: {type(e).__name__}: {e}")
    del captioner, model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return entry


def environment() -> dict:
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": "cpu",
        "gpu_memory_gib": None,
        "bitsandbytes": None,
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(device=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / GIB, 1))
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except Exception as e:  # not installed, or it failed to load its CUDA library
        env["bitsandbytes"] = f"unavailable: {type(e).__name__}: {str(e)[:200]}"
    return env


def markdown(results: dict) -> str:
    lines = [
        "| mode | batch | caption ms | images/s | generate ms | ms/token | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in results["modes"]:
        if m["status"] != "ok" and not m["rows"]:
            lines.append(f"| {m['mode']} | - | {m['status']}: {str(m['reason'])[:80]} | | | | |")
            continue
        for r in m["rows"]:
            if "caption_ms" not in r:
                lines.append(f"| {m['mode']} | {r['batch_size']} | {r.get('skipped') or r.get('error')} | | | | |")
                continue
            lines.append(
                f"| {m['mode']} | {r['batch_size']} | {r['caption_ms']} | {r['images_per_s']} | "
                f"{r['generate_ms']} | {r['ms_per_new_token']} | {r['peak_gib']} |"
            )
    lines += ["", "| mode | load s | weights GiB (allocated) | footprint GiB |", "|---|---|---|---|"]
    for m in results["modes"]:
        lines.append(f"| {m['mode']} | {m.get('load_s')} | {m.get('weights_gib')} | {m.get('footprint_gib')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m bench.blip2_gpu",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--tiny", action="store_true", help="a small config, fp32: runs on a CPU in seconds")
    p.add_argument(
        "--modes",
        default=None,
        help="comma list of DTYPE[+QUANT] (default fp16,fp16+nf4,fp16+8bit; --tiny: fp32,fp32+nf4,fp32+8bit)",
    )
    p.add_argument("--batch-sizes", default=None, help="comma list (default 1,4,16,64; --tiny: 1,4)")
    p.add_argument("--new-tokens", type=int, default=20, help="tokens each generate makes (default 20)")
    p.add_argument("--runs", type=int, default=3, help="timed calls per figure, after one warm-up (default 3)")
    p.add_argument(
        "--slow-s",
        type=float,
        default=15.0,
        help="a warm-up slower than this gets one timed run instead of --runs (default 15)",
    )
    p.add_argument("--image-side", type=int, default=None, help="side of the input images (default 256)")
    p.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="skip batch sizes not started this many seconds after start (default none)",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="where to save the checkpoint (default a temp dir, deleted at the end)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON file (default {DEFAULT_OUT.relative_to(RESULTS.parent.parent)}; --tiny: a temp file)",
    )
    a = p.parse_args(argv)

    start = time.monotonic()
    deadline = start + a.deadline_s if a.deadline_s else float("inf")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not a.tiny:
        p.error("no CUDA GPU here: the real-size run needs one (use --tiny to check the script on a CPU)")
    shape = TINY if a.tiny else FULL
    default_dtype = "fp16" if cuda else "fp32"
    modes = (a.modes or f"{default_dtype},{default_dtype}+nf4,{default_dtype}+8bit").split(",")
    batch_sizes = [int(b) for b in (a.batch_sizes or ("1,4" if a.tiny else "1,4,16,64")).split(",")]
    out = a.out or (Path(tempfile.gettempdir()) / "blip2_gpu_tiny.json" if a.tiny else DEFAULT_OUT)
    device = "cuda" if cuda else "cpu"

    results: dict = {
        "benchmark": "blip2_gpu",
        "tiny": a.tiny,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment(),
        "settings": {
            "batch_sizes": batch_sizes,
            "modes": modes,
            "new_tokens": a.new_tokens,
            "runs": a.runs,
            "slow_s": a.slow_s,
            "image_side": a.image_side or 256,
            "decoding": "greedy, min_new_tokens = max_new_tokens",
        },
        "model": None,
        "modes": [],
    }
    log(f"environment: {results['environment']}")

    def write() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    tmp = None
    model_dir = a.model_dir
    if model_dir is None:
        tmp = tempfile.mkdtemp(prefix="blip2_gpu_")
        model_dir = Path(tmp) / "model"
    try:
        log(f"building a {'tiny' if a.tiny else 'full-size'} BLIP-2 with random weights on {device} -> {model_dir}")
        results["model"] = build_checkpoint(shape, model_dir, device, "float16" if cuda else "float32")
        log(
            f"built {results['model']['parameters']:,} parameters in {results['model']['build_s']} s, saved "
            f"{results['model']['safetensors_gib']} GiB in {results['model']['save_s']} s"
        )
        write()
        images = make_images(max(batch_sizes), a.image_side or 256)
        for mode in modes:
            log(f"mode {mode}")
            results["modes"].append(
                run_mode(model_dir, mode, batch_sizes, images, a.new_tokens, a.runs, a.slow_s, deadline)
            )
            results["elapsed_s"] = round(time.monotonic() - start, 1)
            write()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - start, 1)
    write()
    print(markdown(results))
    log(f"wrote {out} ({results['elapsed_s']} s)")
    return results


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    main(sys.argv[1:])
