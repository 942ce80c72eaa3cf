"""Random sketching: S is Rademacher/sqrt(m) with E[S^T S] = I, rebuilt from its seed, never stored."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact
from core.errors import ConfigError
from core.steps._sketched_linear import SketchedLinear, rademacher
from core.steps.base import get_step
from core.steps.sketch import SketchConfig, sketch_targets
from tests.core.steps_support import logits, make_ctx, sst2_tiny_state


def test_sketch_entries_are_plus_minus_one_over_root_m() -> None:
    s = rademacher(64, 100, seed=3)
    assert set(torch.unique(s * math.sqrt(64)).tolist()) == {-1.0, 1.0}
    assert torch.equal(s, rademacher(64, 100, seed=3))
    assert not torch.equal(s, rademacher(64, 100, seed=4))


def test_s_transpose_s_approaches_identity_at_the_theoretical_rate() -> None:
    """||S^T S - I||_F^2 has expectation n(n-1)/m: off-diagonal entries have variance 1/m."""
    n = 48
    errors = []
    for m in (8, 32, 128, 512):
        squared = [float(((rademacher(m, n, seed) .T @ rademacher(m, n, seed)) - torch.eye(n)).pow(2).sum())
                   for seed in range(20)]
        mean_sq = sum(squared) / len(squared)
        assert mean_sq == pytest.approx(n * (n - 1) / m, rel=0.1), m
        errors.append(math.sqrt(mean_sq))
        diag = torch.diagonal(rademacher(m, n, 0).T @ rademacher(m, n, 0))
        assert torch.allclose(diag, torch.ones(n))  # exactly 1 on the diagonal
    assert errors == sorted(errors, reverse=True)


def test_sketched_linear_computes_w_st_s_x() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(40, 7)
    sketched = SketchedLinear.from_linear(linear, 16, seed=11)
    x = torch.randn(5, 40)
    s = rademacher(16, 40, 11)
    expected = x @ (linear.weight @ s.T @ s).T + linear.bias
    assert torch.allclose(sketched(x), expected, atol=1e-5)
    assert "sketch" not in sketched.state_dict()


def test_groups_cover_bert_layers(tmp_path: Path) -> None:
    model = sst2_tiny_state(tmp_path, layers=1).model
    targets = {name: field for name, _, field in sketch_targets(model, SketchConfig(m_attention=8, m_ffn_in=8, m_ffn_out=8))}
    assert targets == {
        "bert.encoder.layer.0.attention.self.query": "m_attention",
        "bert.encoder.layer.0.attention.self.key": "m_attention",
        "bert.encoder.layer.0.attention.self.value": "m_attention",
        "bert.encoder.layer.0.attention.output.dense": "m_attention",
        "bert.encoder.layer.0.intermediate.dense": "m_ffn_in",
        "bert.encoder.layer.0.output.dense": "m_ffn_out",
    }  # never the pooler or the classifier


def _apply(state, tmp_path: Path, **cfg):  # type: ignore[no-untyped-def]
    step_cls = get_step("sketch.random")
    return step_cls(step_cls.config_cls(**{"epochs": 0, **cfg})).apply(state, make_ctx(tmp_path))


def test_m_not_below_input_width_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="m_attention") as info:
        _apply(sst2_tiny_state(tmp_path, hidden=32), tmp_path, m_attention=32, m_ffn_out=16)
    assert info.value.field == "m_attention"
    with pytest.raises(ConfigError, match="m_attention"):
        SketchConfig(m_attention=0, m_ffn_out=0)


def test_sketched_model_reloads_to_identical_outputs_without_storing_s(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path, hidden=32)
    params_before = sum(p.numel() for p in state.model.parameters())
    out = _apply(state, tmp_path, m_attention=16, m_ffn_in=8, m_ffn_out=24)
    layers = out.transforms[-1]["layers"]
    assert len(layers) == 2 * 6
    assert sum(p.numel() for p in out.model.parameters()) < params_before
    folder = tmp_path / "art"
    save_artifact(out, folder)
    loaded = load_artifact(folder)
    assert torch.equal(logits(out, out.tokenizer), logits(loaded.model, loaded.tokenizer))
    raw = (folder / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert not [k for k in header if "sketch" in k]
    for name, spec in layers.items():
        assert header[name + ".weight"]["shape"] == [spec["out"], spec["m"]]
        s_bytes = rademacher(spec["m"], spec["in"], spec["seed"]).numpy().tobytes()
        assert s_bytes[:64] not in raw  # no float copy of S anywhere in the file


def test_sketching_is_deterministic_given_the_seed(tmp_path: Path) -> None:
    a = _apply(sst2_tiny_state(tmp_path), tmp_path, m_attention=16, m_ffn_out=24)
    b = _apply(sst2_tiny_state(tmp_path), tmp_path, m_attention=16, m_ffn_out=24)
    assert torch.equal(logits(a, a.tokenizer), logits(b, b.tokenizer))


def test_fine_tuning_trains_w_st_and_leaves_s_alone(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path)
    out = _apply(state, tmp_path, m_attention=16, m_ffn_out=24, epochs=1.0, train_size=24, batch_size=8,
                 max_length=32, lr=1e-3)
    query = out.model.bert.encoder.layer[0].attention.self.query
    assert torch.equal(query.sketch, rademacher(16, 32, query.seed))
    untrained = _apply(sst2_tiny_state(tmp_path), tmp_path, m_attention=16, m_ffn_out=24)
    assert not torch.equal(query.weight, untrained.model.bert.encoder.layer[0].attention.self.query.weight)
    assert out.info["sketch.random"]["training"]["steps"] == 3
    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert torch.equal(logits(out.model.eval(), out.tokenizer), logits(loaded.model, loaded.tokenizer))


def _dense_inputs(state, tmp_path: Path, name: str, rows: int, max_length: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The real-token inputs of layer ``name`` on the rows the step calibrates on (tokens x in)."""
    from core.steps.training import MODEL_INPUTS, batches, train_data

    ctx = make_ctx(tmp_path)
    data = train_data(state, ctx, train_size=rows, max_length=max_length)
    seen = []
    module = state.model.get_submodule(name)
    for batch in batches(state, ctx, data.features, batch_size=16):
        hook = module.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
        with torch.inference_mode():
            state.model.eval()(**{k: v for k, v in batch.items() if k in MODEL_INPUTS})
        hook.remove()
        seen[-1] = seen[-1].reshape(-1, seen[-1].shape[-1])[batch["attention_mask"].reshape(-1).bool()]
    return torch.cat(seen).double()


@pytest.mark.parametrize("name", ["bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.1.output.dense"])
def test_least_squares_init_matches_scipy_on_the_calibration_activations(tmp_path: Path, name: str) -> None:
    import scipy.linalg

    dense = sst2_tiny_state(tmp_path, hidden=32)
    x = _dense_inputs(dense, tmp_path, name, rows=40, max_length=32)
    w = dense.model.get_submodule(name).weight.detach().double()
    out = _apply(sst2_tiny_state(tmp_path, hidden=32), tmp_path, m_attention=16, m_ffn_out=24,
                 init="least_squares", calibration_rows=40, max_length=32)
    sketched = out.model.get_submodule(name)
    sx = (x @ sketched.sketch.double().T).numpy()
    reference = scipy.linalg.lstsq(sx, (x @ w.T).numpy())[0].T
    assert sketched.weight.detach().double().numpy() == pytest.approx(reference, rel=1e-3, abs=1e-5)
    wx = (x @ w.T).numpy()
    error = float(((sx @ reference.T - wx) ** 2).sum() ** 0.5 / (wx**2).sum() ** 0.5)
    info = out.info["sketch.random"]
    assert info["init"] == "least_squares" and info["calibration_rows"] == 40
    assert info["calibration_relative_error"][name] == pytest.approx(error, abs=2e-4)


def test_least_squares_init_keeps_the_model_closer_to_the_dense_one(tmp_path: Path) -> None:
    dense = logits(sst2_tiny_state(tmp_path, hidden=32).model, sst2_tiny_state(tmp_path, hidden=32).tokenizer)
    gaps = {}
    for init in ("product", "least_squares"):
        out = _apply(sst2_tiny_state(tmp_path, hidden=32), tmp_path, m_attention=8, m_ffn_out=16, init=init,
                     calibration_rows=64, max_length=32)
        gaps[init] = float((logits(out.model, out.tokenizer) - dense).norm() / dense.norm())
    assert gaps["least_squares"] < gaps["product"] / 2, gaps
    with pytest.raises(ConfigError, match="init"):
        SketchConfig(init="svd")


def test_too_few_calibration_tokens_for_m_are_refused_naming_the_field(tmp_path: Path) -> None:
    """m unknowns per output need more than m tokens; fewer would fit the calibration tokens exactly."""
    with pytest.raises(ConfigError, match="raise calibration_rows") as info:
        _apply(sst2_tiny_state(tmp_path, hidden=32), tmp_path, m_attention=31, m_ffn_out=0, init="least_squares",
               calibration_rows=1, max_length=16)  # at most 16 tokens for 31 unknowns per output
    assert info.value.field == "calibration_rows"


def test_least_squares_on_shared_layers_pools_their_tokens_and_keeps_them_shared(tmp_path: Path) -> None:
    import scipy.linalg

    from core.steps.share_layers import encoder_layers

    share = get_step("share_layers")
    state = share(share.config_cls(targets=[2], epochs=0)).apply(sst2_tiny_state(tmp_path, layers=4, hidden=64),
                                                               make_ctx(tmp_path))
    name0, name1 = "bert.encoder.layer.0.output.dense", "bert.encoder.layer.1.output.dense"
    x = torch.cat([_dense_inputs(state, tmp_path, n, rows=40, max_length=32) for n in (name0, name1)])
    w = state.model.get_submodule(name0).weight.detach().double()
    out = _apply(state, tmp_path, m_attention=32, m_ffn_out=64, init="least_squares", calibration_rows=40,
                 max_length=32)
    layers = encoder_layers(out.model)
    assert layers[0].output.dense.weight is layers[1].output.dense.weight
    sketched = layers[0].output.dense
    reference = torch.from_numpy(scipy.linalg.lstsq((x @ sketched.sketch.double().T).numpy(), (x @ w.T).numpy())[0].T)
    assert float((sketched.weight.detach().double() - reference).norm() / reference.norm()) < 1e-3
