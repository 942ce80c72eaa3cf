"""Sharing meets int8 (a known failure elsewhere) and the paper's SQuAD chain on the default model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact, weights_bytes
from core.steps.base import get_step
from core.steps.share_layers import encoder_layers, layer_groups
from tests.core.steps_support import TEXTS, logits, make_ctx, minilm_state, sst2_tiny_state


def _run(state, ctx, step_id: str, **cfg):  # type: ignore[no-untyped-def]
    cls = get_step(step_id)
    return cls(cls.config_cls(**cfg)).apply(state, ctx)


def test_albert_style_sharing_then_int8_quantizes_and_stores_shared_layers_once(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    unshared = _run(sst2_tiny_state(tmp_path, layers=4, hidden=64), ctx, "quantize.dynamic_int8")
    save_artifact(unshared, tmp_path / "unshared")

    shared = _run(sst2_tiny_state(tmp_path, layers=4, hidden=64), ctx, "share_layers", targets=[2, 1], epochs=0)
    assert layer_groups(encoder_layers(shared.model)) == [[0, 1, 2, 3]]
    quantized = _run(shared, ctx, "quantize.dynamic_int8")
    layers = encoder_layers(quantized.model)
    # quantized once: every position runs the same packed int8 weights
    for i in range(1, 4):
        assert layers[i].attention.self.query._packed_params is layers[0].attention.self.query._packed_params
        assert layers[i].output.LayerNorm.weight is layers[0].output.LayerNorm.weight
    save_artifact(quantized, tmp_path / "shared")
    per_layer_int8 = sum(p.numel() for p in encoder_layers(shared.model)[0].parameters() if p.dim() == 2)
    saved = weights_bytes(tmp_path / "unshared") - weights_bytes(tmp_path / "shared")
    assert saved >= 3 * per_layer_int8  # three layers' int8 weights (at least) not stored again

    loaded = load_artifact(tmp_path / "shared").model
    loaded_layers = encoder_layers(loaded)
    assert loaded_layers[3].intermediate.dense._packed_params is loaded_layers[0].intermediate.dense._packed_params
    assert torch.equal(logits(quantized, quantized.tokenizer), logits(loaded, quantized.tokenizer))


@pytest.mark.slow
def test_paper_chain_on_squad_runs_on_the_default_model(tmp_path: Path) -> None:
    """finetune -> share_layers -> vocab.reduce -> quantize.linear_nbit on a tiny SQuAD 2.0 slice."""
    from core.measure import evaluate

    ctx = make_ctx(tmp_path, task="squad_v2")
    state = minilm_state(head="qa")
    train = {"epochs": 1.0, "batch_size": 8, "max_length": 128, "train_size": 16}
    state = _run(state, ctx, "finetune", lr=5e-5, **train)
    state = _run(state, ctx, "share_layers", targets=[3], distill=True, **train)
    state = _run(state, ctx, "vocab.reduce", keep_percent=25.0, corpus_limit=300)
    state = _run(state, ctx, "quantize.linear_nbit", bits=8)

    assert layer_groups(encoder_layers(state.model)) == [[0, 1], [2, 3], [4, 5]]
    assert state.model.config.vocab_size == len(state.tokenizer) < 30522 // 4 + 100
    assert [t["codec"] for t in state.transforms] == ["shared_layers", "nbit"]
    result = evaluate(state.model, state.tokenizer, ctx.task, "dev", limit=12, sample_seed=0, max_length=128)
    assert 0.0 <= result.metrics["f1"] <= 100.0 and result.examples == 12

    save_artifact(state, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    questions = [t + " ?" for t in TEXTS]
    batch = state.tokenizer(questions, TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        assert torch.equal(state.model(**batch).start_logits, loaded.model(**batch).start_logits)
    assert loaded.tokenizer.get_vocab() == state.tokenizer.get_vocab()
    # 6 -> 3 distinct layers, 1/4 of the vocabulary, 8 bits: one byte per distinct parameter
    params = sum(p.numel() for p in state.model.parameters())
    assert params < 22_700_000 * 0.45
    assert params <= weights_bytes(tmp_path / "art") <= params * 1.02 + 50_000
