"""Dynamic int8: real int8 kernels, within a stated SNR of fp32, stored int8, reloads exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from core.artifacts import load_artifact, save_artifact, weights_bytes
from core.errors import ConfigError
from core.models import ModelRef, load_model, load_tokenizer
from core.state import FLOAT, TRAINABLE, ModelState
from core.steps._int8_modules import Int8Embedding
from core.steps.base import get_step
from core.steps.training import train
from tests.core.steps_support import make_ctx, outputs, sample_batch, tiny_state, tiny_task

STEP = get_step("quantize.dynamic_int8")


def _quantize(state: ModelState, tmp_path: Path, **cfg: object) -> ModelState:
    return STEP(STEP.config_cls(**cfg)).apply(state, make_ctx(tmp_path, tiny_task(state.head)))


def snr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).mean() / (reference - approx).pow(2).mean()))


def _hidden(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model.base_model(**batch).last_hidden_state


def test_int8_modules_replace_every_linear_and_traits_change(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, hidden=64)
    q = _quantize(state, tmp_path)
    assert not any(type(m) is torch.nn.Linear for m in q.model.modules())
    assert sum(isinstance(m, DynamicLinear) for m in q.model.modules()) == 2 * 6 + 2  # 6 per layer + pooler + head
    emb = q.model.bert.embeddings.word_embeddings
    assert isinstance(emb, Int8Embedding) and emb.weight_int8.dtype == torch.int8
    assert q.traits == (state.traits - {FLOAT, TRAINABLE}) | {"int8"}
    assert q.model.bert.encoder.layer[0].attention.self.query.weight().qscheme() == torch.per_channel_affine
    # the fp32 input is untouched
    assert type(state.model.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear


@pytest.mark.parametrize("cfg", [{}, {"per_channel": False}, {"activation_range": "full"}])
def test_outputs_stay_within_the_stated_snr_of_fp32(tmp_path: Path, cfg: dict) -> None:
    state = tiny_state(tmp_path, hidden=64)
    batch = sample_batch(state.tokenizer)
    q = _quantize(state, tmp_path, **cfg)
    assert snr_db(_hidden(state.model, batch), _hidden(q.model, batch)) >= 30.0
    # the untrained random head gives near-zero logits, so compare logits with the head kept fp32
    qh = _quantize(state, tmp_path, quantize_head=False, **cfg)
    assert snr_db(outputs(state.model, batch), outputs(qh.model, batch)) >= 30.0


def test_int8_embedding_matches_per_row_symmetric_quantization() -> None:
    emb = torch.nn.Embedding(10, 6)
    q = Int8Embedding.from_float(emb)
    w = emb.weight.detach()
    scale = w.abs().amax(1) / 127
    assert torch.equal(q.weight_int8, torch.round(w / scale[:, None]).to(torch.int8))
    ids = torch.tensor([[1, 4, 9]])
    assert torch.allclose(q(ids), emb(ids), atol=float(scale.max()) / 2 + 1e-7)


@pytest.mark.parametrize("cfg", [{}, {"per_channel": False, "embeddings_int8": False}, {"activation_range": "full"}])
def test_artifact_stores_int8_and_reloads_to_identical_outputs(tmp_path: Path, cfg: dict) -> None:
    state = tiny_state(tmp_path, hidden=64)
    q = _quantize(state, tmp_path, **cfg)
    save_artifact(q, tmp_path / "q")
    loaded = load_artifact(tmp_path / "q").model
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(q.model, batch), outputs(loaded, batch))
    query = loaded.bert.encoder.layer[1].attention.self.query
    assert isinstance(query, DynamicLinear) and query.version == q.model.bert.encoder.layer[1].attention.self.query.version
    with safe_open(str(tmp_path / "q" / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("bert.encoder.layer.1.attention.self.query.weight::int8").dtype == torch.int8
        if cfg.get("embeddings_int8", True):
            assert f.get_tensor("bert.embeddings.word_embeddings.weight_int8").dtype == torch.int8


def test_shared_linear_weights_are_quantized_and_stored_once(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    layers = state.model.bert.encoder.layer
    layers[1].intermediate.dense.weight = layers[0].intermediate.dense.weight
    layers[1].intermediate.dense.bias = layers[0].intermediate.dense.bias
    q = _quantize(state, tmp_path)
    ql = q.model.bert.encoder.layer
    assert ql[1].intermediate.dense._packed_params is ql[0].intermediate.dense._packed_params
    save_artifact(q, tmp_path / "q")
    loaded = load_artifact(tmp_path / "q")
    assert loaded.manifest["transforms"][-1]["linears"]["bert.encoder.layer.1.intermediate.dense"]["same_as"] == (
        "bert.encoder.layer.0.intermediate.dense"
    )
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(q.model, batch), outputs(loaded.model, batch))


def test_pruned_then_quantized_model_reloads_exactly(tmp_path: Path) -> None:
    prune = get_step("prune.global_magnitude")
    state = prune(prune.config_cls(amount=0.4)).apply(tiny_state(tmp_path, hidden=64), make_ctx(tmp_path, tiny_task()))
    q = _quantize(state, tmp_path)
    save_artifact(q, tmp_path / "pq")
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(q.model, batch), outputs(load_artifact(tmp_path / "pq").model, batch))


def test_quantized_model_cannot_be_trained(tmp_path: Path) -> None:
    q = _quantize(tiny_state(tmp_path), tmp_path)
    with pytest.raises(ConfigError, match="quantized"):
        train(q, make_ctx(tmp_path, tiny_task()), epochs=1, lr=1e-3, batch_size=4, max_length=16,
              warmup_ratio=0.0, train_size=4)


def test_invalid_engine_is_refused() -> None:
    with pytest.raises(ConfigError, match="engine"):
        STEP.config_cls(engine="cuda")


@pytest.mark.slow
def test_minilm_int8_artifact_ratio_and_fidelity(tmp_path: Path) -> None:
    """The packaged MiniLM: artifact <= 0.30x of fp32 with int8 embeddings; sentence vectors stay close.

    Hidden-state SNR is modest (about 11 dB with 7-bit activations, 16 dB with 8-bit) because the
    FFN inputs hold outliers (max ~28 vs rms ~0.8); the task-metric cost is measured in
    benchmarks/bench_tinybert.py.
    """
    ref = ModelRef.parse("all-MiniLM-L6-v2")
    state = ModelState(load_model(ref, "classification", 2).eval(), load_tokenizer(ref), "sst2", "classification")
    q = _quantize(state, tmp_path)
    fp32 = save_artifact(state, tmp_path / "fp32")
    int8 = save_artifact(q, tmp_path / "int8")
    assert weights_bytes(tmp_path / "int8") / weights_bytes(tmp_path / "fp32") <= 0.30
    assert int8 / fp32 <= 0.30
    batch = dict(state.tokenizer(["a gripping, funny and moving film", "the plot is dull and the acting worse"],
                                 return_tensors="pt", padding=True))
    h, hq = _hidden(state.model, batch), _hidden(q.model, batch)
    assert snr_db(h, hq) >= 9.0
    cos = torch.nn.functional.cosine_similarity(h.mean(1), hq.mean(1))
    assert bool((cos >= 0.95).all())
    full = _quantize(state, tmp_path, activation_range="full")
    assert snr_db(h, _hidden(full.model, batch)) >= 13.0
    assert torch.equal(outputs(q.model, batch), outputs(load_artifact(tmp_path / "int8").model, batch))


# --- the torchao backend ---------------------------------------------------------------------------

def _is_torchao_int8(weight: object) -> bool:
    return type(weight).__name__ == "Int8Tensor" and weight.qdata.dtype == torch.int8  # type: ignore[attr-defined]


def test_torchao_backend_quantizes_every_linear_within_the_snr_and_reloads_exactly(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, hidden=64)
    q = _quantize(state, tmp_path, backend="torchao")
    linears = [m for m in q.model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * 6 + 2 and all(_is_torchao_int8(m.weight) for m in linears)
    assert q.info["quantize.dynamic_int8"]["backend"] == "torchao"
    batch = sample_batch(state.tokenizer)
    assert snr_db(_hidden(state.model, batch), _hidden(q.model, batch)) >= 30.0
    size = save_artifact(q, tmp_path / "q")
    loaded = load_artifact(tmp_path / "q").model
    assert torch.equal(outputs(q.model, batch), outputs(loaded, batch))
    assert _is_torchao_int8(loaded.bert.encoder.layer[1].attention.self.query.weight)
    with safe_open(str(tmp_path / "q" / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("bert.encoder.layer.1.attention.self.query.weight::qdata").dtype == torch.int8
    # stored int8 like the torch backend: the two artifacts are within a few percent of each other
    torch_q = _quantize(state, tmp_path)
    torch_size = save_artifact(torch_q, tmp_path / "t")
    assert abs(size / torch_size - 1) < 0.05
    # measured like any variant: every weight counted once, and the same non-zeros as torch's int8
    from core.measure import size_report

    ours, theirs = size_report(loaded, tmp_path / "q"), size_report(load_artifact(tmp_path / "t").model, tmp_path / "t")
    assert ours.params == theirs.params  # (both count the int8 embeddings' per-row scales)
    assert ours.artifact_bytes == size
    assert abs(ours.nonzero_params - theirs.nonzero_params) <= 0.01 * theirs.params


def test_torchao_backend_keeps_shared_weights_shared(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    layers = state.model.bert.encoder.layer
    layers[1].output.dense.weight = layers[0].output.dense.weight
    q = _quantize(state, tmp_path, backend="torchao")
    ql = q.model.bert.encoder.layer
    assert ql[1].output.dense.weight is ql[0].output.dense.weight and _is_torchao_int8(ql[0].output.dense.weight)
    save_artifact(q, tmp_path / "q")
    loaded = load_artifact(tmp_path / "q").model.bert.encoder.layer
    assert loaded[1].output.dense.weight is loaded[0].output.dense.weight
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(q.model, batch), outputs(load_artifact(tmp_path / "q").model, batch))


@pytest.mark.parametrize(("cfg", "field"), [({"backend": "onnx"}, "backend"),
                                            ({"backend": "torchao", "per_channel": False}, "per_channel"),
                                            ({"backend": "torchao", "activation_range": "full"}, "activation_range")])
def test_impossible_backend_settings_are_refused_naming_the_field(cfg: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        STEP.config_cls(**cfg)
    assert info.value.field == field


def test_the_torchao_backend_without_torchao_installed_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    with pytest.raises(ConfigError, match=r"compression-workbench\[torchao\]") as info:
        STEP.config_cls(backend="torchao")
    assert info.value.field == "backend"
    STEP.config_cls()  # the torch backend needs nothing more


# --- layers kept in float (mixed precision) ------------------------------------------------------
def test_layers_kept_in_float_stay_fp32_and_the_artifact_reloads_identically(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=3, hidden=64)
    q = _quantize(state, tmp_path, keep_float_layers=[1])
    layers = q.model.bert.encoder.layer
    assert all(type(m) is torch.nn.Linear for m in layers[1].modules() if isinstance(m, torch.nn.Linear))
    assert sum(isinstance(m, DynamicLinear) for m in layers[1].modules()) == 0
    assert sum(isinstance(m, DynamicLinear) for m in layers[0].modules()) == 6
    assert sum(isinstance(m, DynamicLinear) for m in layers[2].modules()) == 6
    assert torch.equal(layers[1].intermediate.dense.weight, state.model.bert.encoder.layer[1].intermediate.dense.weight)
    save_artifact(q, tmp_path / "q")
    loaded = load_artifact(tmp_path / "q")
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(q.model, batch), outputs(loaded.model, batch))
    assert type(loaded.model.bert.encoder.layer[1].attention.self.query) is torch.nn.Linear
    assert isinstance(loaded.model.bert.encoder.layer[2].attention.self.query, DynamicLinear)
    with safe_open(str(tmp_path / "q" / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("bert.encoder.layer.1.attention.self.query.weight").dtype == torch.float32
    assert q.info["quantize.dynamic_int8"]["float_layers"] == [1]


def test_keeping_a_layer_in_float_is_closer_to_fp32_than_quantizing_it(tmp_path: Path) -> None:
    state = tiny_state(tmp_path, layers=2, hidden=64)
    batch = sample_batch(state.tokenizer)
    reference = _hidden(state.model, batch)
    every = snr_db(reference, _hidden(_quantize(state, tmp_path, embeddings_int8=False).model, batch))
    kept = snr_db(reference, _hidden(_quantize(state, tmp_path, embeddings_int8=False, keep_float_layers=[0, 1]).model,
                                      batch))
    assert kept > every + 20  # nothing of the encoder quantized but the pooler: far closer


@pytest.mark.parametrize(("layers", "message"), [([5], "layer.*5.*0-1"), ([0, 0], "twice")])
def test_wrong_float_layers_are_refused_naming_the_field(tmp_path: Path, layers: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _quantize(tiny_state(tmp_path, layers=2, hidden=64), tmp_path, keep_float_layers=layers)
    assert info.value.field == "keep_float_layers"
