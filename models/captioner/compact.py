"""The compact BLIP-2: a small `Blip2Config`, a word-level tokenizer trained here, and their processor.

    from models.captioner.compact import CompactConfig, build
    model, processor = build(CompactConfig(), captions=["a small red circle on the left", ...])

Same classes as a real BLIP-2 checkpoint (`Blip2ForConditionalGeneration`, `Blip2Processor`), so
`save_pretrained` / `models.captioner.load` treat both alike. Two things differ from transformers' defaults,
both measured to matter when training from scratch (README.md):

- `Blip2VisionConfig.initializer_range` defaults to 1e-10 (meant for loading pretrained weights): a vision
  tower built from it starts at zero and barely trains. We use 0.02 everywhere.
- `query_tokens` start at zeros (all queries identical); we draw them from N(0, 0.02), and the ViT position
  embeddings are fixed 2-D sin-cos (frozen during training) so where an object is survives into the queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipImageProcessorPil,
    PreTrainedTokenizerFast,
)

from models.captioner.vocab import shapes_vocabulary

PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
SPECIALS = (PAD, UNK, BOS, EOS, IMAGE)


@dataclass(frozen=True)
class CompactConfig:
    """Shape of the compact model. Fields (type, default):

    image_size (int, 64): side the processor resizes images to (Shapes images are 128 px).
    patch_size (int, 8): ViT patch side; (image_size / patch_size)^2 patches.
    vision_hidden (int, 128), vision_layers (int, 2), vision_heads (int, 4): the ViT.
    qformer_hidden (int, 128), qformer_layers (int, 2), qformer_heads (int, 4): the Q-Former (cross-attention
        in every layer).
    num_query_tokens (int, 16): learned queries; also the number of `<image>` tokens in the text.
    text_hidden (int, 128), text_layers (int, 2), text_heads (int, 4): the OPT decoder.
    mlp_ratio (int, 4): feed-forward width / hidden size, all three towers.
    max_text_tokens (int, 40): OPT positions (queries + caption + specials).
    init_std (float, 0.02): weight init of every tower (see the module docstring).
    sincos_positions (bool, True): 2-D sin-cos ViT position embeddings instead of random ones.
    """

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    qformer_hidden: int = 128
    qformer_layers: int = 2
    qformer_heads: int = 4
    num_query_tokens: int = 16
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    mlp_ratio: int = 4
    max_text_tokens: int = 40
    init_std: float = 0.02
    sincos_positions: bool = True


# ---- tokenizer ------------------------------------------------------------------------------------------------


def train_tokenizer(captions: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over lower-cased whitespace words; `<s> caption </s>` when special tokens are on."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(captions, trainers.WordLevelTrainer(special_tokens=list(SPECIALS)))
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A word-level ``tok`` (whose vocabulary has the special tokens) as the tokenizer Blip2Processor takes:
    ``<s> caption </s>`` with special tokens, padded on the right."""
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))]
    )
    # <image> is in the vocabulary already; Blip2Processor registers it as its special image token (it does
    # not cope with a tokenizer-level `image_token` string in transformers 5.23)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def build_processor(config: CompactConfig, tokenizer: PreTrainedTokenizerFast) -> Blip2Processor:
    size = {"height": config.image_size, "width": config.image_size}
    image_processor = BlipImageProcessorPil(size=size, do_convert_rgb=True)
    return Blip2Processor(
        image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=config.num_query_tokens
    )


# ---- model ----------------------------------------------------------------------------------------------------


def blip2_config(config: CompactConfig, tokenizer: PreTrainedTokenizerFast) -> Blip2Config:
    c, std = config, config.init_std
    vision = dict(
        hidden_size=c.vision_hidden,
        intermediate_size=c.mlp_ratio * c.vision_hidden,
        num_hidden_layers=c.vision_layers,
        num_attention_heads=c.vision_heads,
        image_size=c.image_size,
        patch_size=c.patch_size,
        initializer_range=std,
    )
    qformer = dict(
        hidden_size=c.qformer_hidden,
        intermediate_size=c.mlp_ratio * c.qformer_hidden,
        num_hidden_layers=c.qformer_layers,
        num_attention_heads=c.qformer_heads,
        cross_attention_frequency=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        vocab_size=2,
        max_position_embeddings=c.max_text_tokens,
        initializer_range=std,
    )
    text = dict(
        model_type="opt",
        vocab_size=len(tokenizer),
        hidden_size=c.text_hidden,
        word_embed_proj_dim=c.text_hidden,
        ffn_dim=c.mlp_ratio * c.text_hidden,
        num_hidden_layers=c.text_layers,
        num_attention_heads=c.text_heads,
        max_position_embeddings=c.max_text_tokens,
        dropout=0.0,
        attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        init_std=std,
    )
    return Blip2Config(
        vision_config=vision,
        qformer_config=qformer,
        text_config=text,
        num_query_tokens=c.num_query_tokens,
        initializer_range=std,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
    )


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) MAE-style 2-D sin-cos embedding: half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"sin-cos positions need a hidden size divisible by 4, not {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    parts = [f(axis.reshape(-1, 1) * freqs) for axis in (rows, cols) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1).float()


def build_model(config: CompactConfig, tokenizer: PreTrainedTokenizerFast) -> Blip2ForConditionalGeneration:
    """A freshly initialised compact BLIP-2 (fp32, CPU)."""
    model = Blip2ForConditionalGeneration(blip2_config(config, tokenizer))
    with torch.no_grad():
        model.query_tokens.normal_(0.0, config.init_std)
        emb = model.vision_model.embeddings
        if config.sincos_positions:
            grid = config.image_size // config.patch_size
            emb.position_embedding.zero_()  # the class token's position stays 0
            emb.position_embedding[0, 1:] = sincos_2d(grid, config.vision_hidden)
    return model


def build(config: CompactConfig, captions: Iterable[str]) -> tuple[Blip2ForConditionalGeneration, Blip2Processor]:
    """Model and processor for ``config``, the tokenizer trained on ``captions`` plus the Shapes vocabulary."""
    processor = build_processor(config, train_tokenizer([*captions, *shapes_vocabulary()]))
    return build_model(config, processor.tokenizer), processor


POSITIONS_PARAMETER = "vision_model.embeddings.position_embedding"


def frozen_parameter_names(model: Blip2ForConditionalGeneration) -> tuple[str, ...]:
    """Parameters that training leaves alone: the ViT positions when they are the fixed 2-D sin-cos ones
    (a compact model, new or saved), nothing for a model with learned positions (a real BLIP-2)."""
    emb = model.vision_model.embeddings
    grid, dim = emb.image_size // emb.patch_size, emb.embed_dim
    pos = emb.position_embedding.detach()[0]
    fixed = dim % 4 == 0 and not pos[0].any() and torch.allclose(pos[1:].float(), sincos_2d(grid, dim), atol=1e-6)
    return (POSITIONS_PARAMETER,) if fixed else ()


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
