"""Global magnitude pruning equals torch's reference, is permanent, and its artifact shrinks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from core.artifacts import load_artifact, save_artifact, weights_bytes
from core.errors import ConfigError
from core.state import ModelState
from core.steps.base import get_step
from core.steps.prune import decode_sparse, encode_sparse, pack_bits, select_modules, unpack_bits
from tests.core.steps_support import make_ctx, outputs, sample_batch, tiny_state, tiny_task

STEP = get_step("prune.global_magnitude")


def _prune(state: ModelState, tmp_path: Path, **cfg: object) -> ModelState:
    return STEP(STEP.config_cls(**cfg)).apply(state, make_ctx(tmp_path, tiny_task()))


def _study_modules_by_hand(model: torch.nn.Module) -> list[torch.nn.Module]:
    mods = []
    for layer in model.bert.encoder.layer:
        att = layer.attention
        mods += [att.self.query, att.self.key, att.self.value, att.output.dense, layer.intermediate.dense,
                 layer.output.dense]
    return mods


@pytest.mark.parametrize("amount", [0.1, 0.4, 0.9])
def test_mask_equals_torch_global_unstructured_on_the_study_layers(tmp_path: Path, amount: float) -> None:
    state = tiny_state(tmp_path, layers=3)
    reference = copy.deepcopy(state.model)
    ref_mods = _study_modules_by_hand(reference)
    prune.global_unstructured([(m, "weight") for m in ref_mods], pruning_method=prune.L1Unstructured, amount=amount)
    out = _prune(state, tmp_path, amount=amount)
    got_mods = _study_modules_by_hand(out.model)
    total = sum(m.weight.numel() for m in ref_mods)
    zeros = 0
    for ref, got in zip(ref_mods, got_mods, strict=True):
        assert torch.equal(ref.weight_mask == 0, got.weight == 0)
        assert torch.equal(ref.weight, got.weight)
        zeros += int((got.weight == 0).sum())
    assert zeros == round(amount * total)
    assert out.info["prune.global_magnitude"]["sparsity"] == pytest.approx(zeros / total)


def test_pruning_is_permanent_and_leaves_other_weights_alone(tmp_path: Path) -> None:
    state = tiny_state(tmp_path)
    out = _prune(state, tmp_path, amount=0.5)
    assert set(out.model.state_dict()) == set(state.model.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in out.model.state_dict())
    assert all(not m._forward_pre_hooks for m in out.model.modules())
    for name in ("bert.embeddings.word_embeddings.weight", "classifier.weight", "bert.pooler.dense.weight"):
        assert torch.equal(out.model.state_dict()[name], state.model.state_dict()[name])
    # the input model is not modified
    assert int((state.model.bert.encoder.layer[0].attention.self.query.weight == 0).sum()) == 0


def test_sparsity_is_reported_per_group(tmp_path: Path) -> None:
    out = _prune(tiny_state(tmp_path), tmp_path, amount=0.3, groups=["query", "ffn_in", "layernorm"])
    groups = out.info["prune.global_magnitude"]["groups"]
    assert set(groups) == {"query", "ffn_in", "layernorm"}
    assert groups["query"]["modules"] == 2 and groups["layernorm"]["modules"] == 5  # emb + 2 per layer
    for g, rep in groups.items():
        mods = select_modules(out.model, [g])[g]
        z = sum(int((m.weight == 0).sum()) for _, m in mods)
        assert rep["zeros"] == z and rep["sparsity"] == pytest.approx(z / rep["params"])
    assert out.model.bert.encoder.layer[0].attention.self.key.weight.ne(0).all()


def test_group_selection_covers_distilbert_and_refuses_unknown_architectures() -> None:
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
    )

    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32))
    sel = select_modules(distil, ["query", "key", "value", "attention_output", "ffn_in", "ffn_out", "classifier"])
    assert [n for n, _ in sel["query"]] == ["distilbert.transformer.layer.0.attention.q_lin",
                                            "distilbert.transformer.layer.1.attention.q_lin"]
    assert next(n for n, _ in sel["ffn_out"]) == "distilbert.transformer.layer.0.ffn.lin2"
    assert {n for n, _ in sel["classifier"]} == {"pre_classifier", "classifier"}
    gpt2 = GPT2ForSequenceClassification(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, pad_token_id=0))
    with pytest.raises(ConfigError, match="gpt2"):
        select_modules(gpt2, ["query"])


def test_invalid_configs_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="amount") as e:
        STEP.config_cls(amount=1.5)
    assert e.value.field == "amount"
    with pytest.raises(ConfigError, match="groups") as e:
        STEP.config_cls(groups=["query", "mlp"])
    assert e.value.field == "groups"
    with pytest.raises(ConfigError, match="groups"):
        STEP.config_cls(groups=[])


def test_artifact_shrinks_with_sparsity_and_reloads_exactly(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    batch = sample_batch(state.tokenizer)
    sizes = []
    for amount in (0.0, 0.3, 0.6, 0.9):
        out = _prune(state, tmp_path, amount=amount)
        folder = tmp_path / f"art{amount}"
        save_artifact(out, folder)
        sizes.append(weights_bytes(folder))
        loaded = load_artifact(folder).model
        for k, v in out.model.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), k
        assert torch.equal(outputs(out.model, batch), outputs(loaded, batch))
    save_artifact(state, tmp_path / "dense")
    dense = weights_bytes(tmp_path / "dense")
    assert sizes[0] <= dense  # amount 0: every tensor falls back to dense storage
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3]


@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 0.97, 1.0])
def test_sparse_encoding_is_lossless_and_picks_the_smallest_layout(density: float) -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(37, 53, generator=g)
    t[torch.rand(t.shape, generator=g) >= density] = 0
    layout, parts = encode_sparse(t)
    n, nnz = t.numel(), int((t != 0).sum())
    expected = min({"dense": 4 * n, "bitmask": (n + 7) // 8 + 4 * nnz, "indices": 8 * nnz}.items(), key=lambda kv: kv[1])[0]
    assert layout == expected
    if layout != "dense":
        assert torch.equal(decode_sparse(layout, parts, list(t.shape), t.dtype), t)


def test_bit_packing_matches_numpy() -> None:
    mask = torch.rand(1001, generator=torch.Generator().manual_seed(1)) > 0.5
    packed = pack_bits(mask)
    assert np.array_equal(packed.numpy(), np.packbits(mask.numpy()))
    assert torch.equal(unpack_bits(packed, mask.numel()), mask)
