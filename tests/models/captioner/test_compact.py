"""The compact config, its locally trained tokenizer and processor (models/captioner/compact.py)."""

from __future__ import annotations

import torch
from PIL import Image

from models.captioner.compact import CompactConfig, build, sincos_2d, train_tokenizer
from models.captioner.train import _tokenise

CAPTIONS = ["a small red circle on the left", "a large blue square above a small green star"]


def test_tokenizer_round_trip_and_specials():
    tok = train_tokenizer(CAPTIONS)
    enc = tok(CAPTIONS[1])
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids[-1] == tok.eos_token_id
    assert len(enc.input_ids) == len(CAPTIONS[1].split()) + 2
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == CAPTIONS[1]
    assert tok.decode(tok("A  Small RED circle").input_ids, skip_special_tokens=True) == "a small red circle"
    assert tok.convert_ids_to_tokens(tok("a purple hexagon").input_ids)[2:4] == ["<unk>", "<unk>"]


def test_processor_and_model_agree_on_image_tokens(tiny_config):
    model, processor = build(tiny_config, CAPTIONS)
    assert processor.num_query_tokens == model.config.num_query_tokens == tiny_config.num_query_tokens
    image_id = model.config.image_token_index
    assert processor.tokenizer.convert_tokens_to_ids(processor.image_token.content) == image_id
    images = [Image.new("RGB", (128, 128), (250, 250, 250))] * 2
    enc = processor(images=images, text=CAPTIONS, padding=True, return_tensors="pt")
    assert (enc.input_ids[:, : tiny_config.num_query_tokens] == image_id).all()
    assert enc.pixel_values.shape == (2, 3, tiny_config.image_size, tiny_config.image_size)
    ids, labels = _tokenise(processor, CAPTIONS, tiny_config.num_query_tokens)  # the training path
    assert torch.equal(ids, enc.input_ids)
    assert (labels[:, : tiny_config.num_query_tokens] == -100).all()
    assert model(**enc, labels=labels).loss.isfinite()


def test_initialisation_is_trainable_from_scratch(tiny_config):
    model, _ = build(tiny_config, CAPTIONS)
    assert 0.01 < model.vision_model.encoder.layers[0].mlp.fc1.weight.std() < 0.04  # not transformers' 1e-10
    assert model.query_tokens.std() > 0.01  # queries differ
    grid = tiny_config.image_size // tiny_config.patch_size
    pos = model.vision_model.embeddings.position_embedding[0]
    assert torch.equal(pos[1:], sincos_2d(grid, tiny_config.vision_hidden)) and not pos[0].any()


def test_sincos_rows_and_columns_differ():
    emb = sincos_2d(4, 16)
    assert emb.shape == (16, 16)
    assert len({tuple(r.tolist()) for r in emb}) == 16
    assert CompactConfig().image_size % CompactConfig().patch_size == 0


def test_held_back_concept_keeps_its_token(tiny_config):
    _, processor = build(tiny_config, ["a small red circle on the left"])  # no star in the training captions
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids("star") != tok.unk_token_id
    assert (
        tok.decode(tok("a large gray star below a small orange triangle").input_ids, skip_special_tokens=True)
        == "a large gray star below a small orange triangle"
    )


def test_only_sincos_positions_are_frozen(tiny_config):
    from dataclasses import replace

    from models.captioner.compact import frozen_parameter_names

    fixed, _ = build(tiny_config, CAPTIONS)
    learned, _ = build(replace(tiny_config, sincos_positions=False), CAPTIONS)
    assert frozen_parameter_names(fixed) == ("vision_model.embeddings.position_embedding",)
    assert frozen_parameter_names(learned) == ()
