"""Train the compact BLIP-2 from scratch (or go on from a checkpoint) on (image, caption) pairs.

    lake datasets shapes make data/shapes -n 40000
    python -m models.captioner.train data/shapes out/compact --minutes 14 --eval
    python -m models.captioner.train --help

`train()` is the pure core: examples in, a `save_pretrained` directory (model + processor), a loss-curve PNG and
``train_result.json`` out. The budget is wall-clock (``minutes``) or ``steps``; the learning rate follows warmup
plus a cosine over whichever budget ends first, so a time-boxed run still anneals. The whole training set is
decoded once to a uint8 tensor and captions tokenised once: a step is pure tensor work.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import torch
import typer

from models.captioner.compact import CompactConfig, build, frozen_parameter_names, parameter_count
from models.captioner.data import ShapesRecord, decode_images, normalize, read_shapes

Example = tuple[object, str]  # (PIL image | encoded bytes | path, caption)


@dataclass(frozen=True)
class TrainConfig:
    """Fields (type, default):

    model (CompactConfig, CompactConfig()): the architecture when starting from scratch.
    batch_size (int, 32); lr (float, 5e-4): peak AdamW learning rate; weight_decay (float, 0.01).
    warmup_steps (int, 150); final_lr_ratio (float, 0.02): the cosine ends at lr * final_lr_ratio.
    minutes (float | None, 14.0) and steps (int | None, None): the budget, whichever ends first.
    threads (int | None, None): torch intra-op threads (None: torch's default, all cores).
    checkpoint_minutes (float, 5.0): how often ``out_dir/checkpoint`` is rewritten.
    grad_clip (float, 1.0); seed (int, 0); device (str, "cpu"): where the steps run ("cuda" on a GPU).
    """

    model: CompactConfig = field(default_factory=CompactConfig)
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 150
    final_lr_ratio: float = 0.02
    minutes: float | None = 14.0
    steps: int | None = None
    threads: int | None = None
    checkpoint_minutes: float = 5.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"  # "cuda" where a GPU is lent: the same steps, faster

    def __post_init__(self) -> None:
        if not self.minutes and not self.steps:
            raise ValueError("a training budget is needed: minutes or steps (or both)")


@dataclass(frozen=True)
class Progress:
    step: int
    fraction: float  # of the budget used, 0..1
    loss: float
    lr: float
    images_per_s: float
    elapsed_s: float


@dataclass(frozen=True)
class TrainResult:
    out_dir: str
    steps: int
    images_seen: int
    epochs: float
    minutes: float  # the whole call: decoding, steps and saving
    images_per_s: float  # training steps only
    final_loss: float  # mean of the last 50 steps
    parameters: int
    config: dict


def _schedule(cfg: TrainConfig, step: int, fraction: float) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.final_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))


def _tokenise(processor, captions: Sequence[str], num_query_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids as Blip2Processor(images, text) makes them (image tokens, <s> caption </s>), and labels."""
    tok = processor.tokenizer
    enc = tok(list(captions), padding=True, return_tensors="pt")
    image_id = tok.convert_tokens_to_ids(processor.image_token.content)
    image = torch.full((len(captions), num_query_tokens), image_id, dtype=torch.long)
    ids = torch.cat([image, enc.input_ids], dim=1)
    labels = ids.masked_fill(ids == image_id, -100).masked_fill(ids == tok.pad_token_id, -100)
    return ids, labels


def save_loss_curve(losses: Sequence[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, lw=0.5, alpha=0.4, label="step")
    k = max(1, len(losses) // 50)
    smooth = [sum(losses[max(0, i - k) : i + 1]) / len(losses[max(0, i - k) : i + 1]) for i in range(len(losses))]
    ax.plot(smooth, lw=1.5, label=f"mean of {k + 1}")
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="captioner training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    examples: Sequence[Example],
    config: TrainConfig,
    out_dir: str | Path,
    progress: Callable[[Progress], None] | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train on ``examples`` and write model, processor, loss curve and result to ``out_dir``.
    ``init_from``: a directory written by an earlier run; its architecture and tokenizer are kept (the compact
    tokenizer knows every Shapes word, held-back ones included; other new words become ``<unk>``)."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    captions = [c for _, c in examples]
    if init_from:
        model = Blip2ForConditionalGeneration.from_pretrained(init_from, dtype=torch.float32)
        processor = Blip2Processor.from_pretrained(init_from)
    else:
        model, processor = build(config.model, captions)
    frozen = frozen_parameter_names(model)
    pixels = decode_images([im for im, _ in examples], processor.image_processor)
    ids, labels = _tokenise(processor, captions, model.config.num_query_tokens)
    lengths = (ids != processor.tokenizer.pad_token_id).sum(1)
    dev = torch.device(config.device)
    model.to(dev)
    pixels, ids, labels = pixels.to(dev), ids.to(dev), labels.to(dev)  # a few hundred MB at most

    params = [p for n, p in model.named_parameters() if n not in frozen]
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    model.train()
    budget_s = config.minutes * 60 if config.minutes else math.inf
    max_steps = config.steps or math.inf
    gen = torch.Generator().manual_seed(config.seed)
    order, cursor, step, seen, losses = torch.randperm(len(examples), generator=gen), 0, 0, 0, []
    loop_start = last_ckpt = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - loop_start
        fraction = max(elapsed / budget_s, step / max_steps)
        if fraction >= 1.0:
            break
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(len(examples), generator=gen), 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += len(idx)
        width = int(lengths[idx].max())  # trim padding: captions differ in length
        idx = idx.to(dev)
        lr = _schedule(config, step, fraction)
        for group in opt.param_groups:
            group["lr"] = lr
        out = model(
            pixel_values=normalize(pixels[idx], processor.image_processor),
            input_ids=ids[idx, :width],
            attention_mask=(ids[idx, :width] != processor.tokenizer.pad_token_id).long(),
            labels=labels[idx, :width],
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        step, seen = step + 1, seen + len(idx)
        losses.append(out.loss.item())
        now = time.perf_counter()
        if progress:
            progress(Progress(step, min(1.0, fraction), losses[-1], lr, seen / (now - loop_start), now - loop_start))
        if now - last_ckpt > config.checkpoint_minutes * 60:
            model.save_pretrained(out_dir / "checkpoint")
            last_ckpt = now
    train_s = time.perf_counter() - loop_start

    model.eval()
    model.to("cpu")
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    save_loss_curve(losses, out_dir / "loss_curve.png")
    tail = losses[-50:] or [math.nan]
    result = TrainResult(
        str(out_dir),
        step,
        seen,
        seen / max(1, len(examples)),
        (time.perf_counter() - start) / 60,
        seen / max(train_s, 1e-9),
        sum(tail) / len(tail),
        parameter_count(model),
        asdict(config),
    )
    (out_dir / "train_result.json").write_text(json.dumps(asdict(result), indent=1))
    return result


@contextmanager
def progress_bar(console=None) -> Iterator[Callable[[Progress], None]]:
    """A rich progress bar over the budget; yields the ``progress`` callback for `train`."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=1.0, info="")

        def report(p: Progress) -> None:
            if p.step % 10 == 0:
                bar.update(
                    task,
                    completed=p.fraction,
                    info=f"step {p.step} loss {p.loss:.3f} lr {p.lr:.1e} {p.images_per_s:.0f} img/s",
                )

        yield report


def shapes_examples(records: Sequence[ShapesRecord], target: str = "first") -> list[Example]:
    """(path, caption) pairs: ``first``: reference 1 only (one deterministic template), ``all``: all three."""
    if target not in ("first", "all"):
        raise ValueError(f"target must be first or all, not {target!r}")
    return [(r.path, c) for r in records for c in (r.captions[:1] if target == "first" else r.captions)]


def main(
    shapes_dir: Annotated[Path, typer.Argument(help="A folder from `lake datasets shapes make` (its train split).")],
    out_dir: Annotated[Path, typer.Argument(help="Where the model, processor and loss curve go.")],
    minutes: Annotated[float, typer.Option(help="Wall-clock budget for the steps.")] = 14.0,
    steps: Annotated[int, typer.Option(help="Step budget (0: none); whichever ends first.")] = 0,
    batch_size: Annotated[int, typer.Option()] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option()] = TrainConfig.lr,
    threads: Annotated[int, typer.Option(help="torch threads (0: all cores).")] = 0,
    target: Annotated[str, typer.Option(help="first: reference 1 only; all: every reference.")] = "first",
    seed: Annotated[int, typer.Option(help="Initialisation and batch order.")] = 0,
    init_from: Annotated[Path | None, typer.Option(help="Go on from this model directory.")] = None,
    evaluate: Annotated[bool, typer.Option("--eval", help="Caption the test split and score it after.")] = False,
) -> None:
    """Train the compact captioner on a Shapes folder."""
    from rich.console import Console

    console = Console()
    examples = shapes_examples(read_shapes(shapes_dir, "train"), target)
    config = TrainConfig(
        minutes=minutes, steps=steps or None, batch_size=batch_size, lr=lr, threads=threads or None, seed=seed
    )
    console.print(f"training on {len(examples)} examples from {shapes_dir} -> {out_dir}")
    with progress_bar(console) as report:
        result = train(examples, config, out_dir, report, init_from=init_from)
    console.print(
        f"{result.steps} steps, {result.epochs:.1f} epochs, {result.images_per_s:.0f} img/s, "
        f"{result.minutes:.1f} min, loss {result.final_loss:.3f}, {result.parameters:,} parameters"
    )
    if evaluate:
        from models.captioner.evaluate import evaluate_shapes, print_report

        print_report(evaluate_shapes(out_dir, shapes_dir, "test"), console)


if __name__ == "__main__":
    typer.run(main)
