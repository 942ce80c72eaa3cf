"""Cross-layer sharing: the same Parameter objects at both positions, counted and stored once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact, weights_bytes
from core.errors import ConfigError
from core.steps.base import get_step
from core.steps.share_layers import ShareLayersConfig, encoder_layers, layer_groups, merge_plan
from tests.core.steps_support import logits, make_ctx, sst2_tiny_state


def _apply(state, tmp_path: Path, **cfg):  # type: ignore[no-untyped-def]
    step_cls = get_step("share_layers")
    return step_cls(step_cls.config_cls(**{"epochs": 0, **cfg})).apply(state, make_ctx(tmp_path))


def test_pairing_rule() -> None:
    six = [[i] for i in range(6)]
    assert merge_plan(six, 3) == [[[0], [1]], [[2], [3]], [[4], [5]]]
    assert merge_plan(six, 5) == [[[0], [1]], [[2]], [[3]], [[4]], [[5]]]  # lowest pair first
    three = [[0, 1], [2, 3], [4, 5]]
    assert merge_plan(three, 2) == [[[0, 1], [2, 3]], [[4, 5]]]  # odd count: top group alone
    with pytest.raises(ConfigError, match=r"intermediate targets \(e.g. \[3, 2, 1\]\)"):
        merge_plan(six, 1)
    with pytest.raises(ConfigError, match="targets"):
        ShareLayersConfig(targets=[2, 3])


def test_upper_layer_weights_replace_lower_and_are_the_same_objects(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path, layers=6)
    layers = encoder_layers(state.model)
    original = [{k: v.clone() for k, v in layer.state_dict().items()} for layer in layers]
    per_layer = sum(p.numel() for p in layers[0].parameters())
    total_before = sum(p.numel() for p in state.model.parameters())

    out = _apply(state, tmp_path, targets=[3, 2])
    layers = encoder_layers(out.model)
    assert layer_groups(layers) == [[0, 1, 2, 3], [4, 5]]
    for position in range(4):
        for (name, p), q in zip(layers[position].named_parameters(), layers[3].parameters(), strict=True):
            assert p is q, name
            assert torch.equal(p, original[3][name])  # layer 3 (the upper one) won
    assert next(layers[4].parameters()) is next(layers[5].parameters())
    assert torch.equal(layers[4].attention.self.query.weight, original[5]["attention.self.query.weight"])
    # parameters() counts a shared tensor once: 6 -> 2 distinct layers saves 4 layers' worth
    assert sum(p.numel() for p in out.model.parameters()) == total_before - 4 * per_layer
    assert out.info["share_layers"]["distinct_layers"] == 2
    assert [s["distinct_layers"] for s in out.info["share_layers"]["stages"]] == [3, 2]


def test_artifact_stores_shared_layers_once_and_reties_them(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path, layers=6, hidden=64)
    save_artifact(state, tmp_path / "before")
    per_layer_bytes = 4 * sum(p.numel() for p in encoder_layers(state.model)[0].parameters())
    out = _apply(state, tmp_path, targets=[3])
    save_artifact(out, tmp_path / "after")
    saved = weights_bytes(tmp_path / "before") - weights_bytes(tmp_path / "after")
    assert saved == pytest.approx(3 * per_layer_bytes, rel=0.02)  # minus a few header bytes
    loaded = load_artifact(tmp_path / "after")
    layers = encoder_layers(loaded.model)
    assert layer_groups(layers) == [[0, 1], [2, 3], [4, 5]]
    for a, b in zip(layers[0].parameters(), layers[1].parameters(), strict=True):
        assert a is b
    assert sum(p.numel() for p in loaded.model.parameters()) == sum(p.numel() for p in out.model.parameters())
    from core.measure import size_report

    shared_report = size_report(loaded.model, tmp_path / "after")
    assert shared_report.params == sum(p.numel() for p in out.model.parameters())
    assert size_report(state.model).params == shared_report.params  # same model object, now shared
    assert torch.equal(logits(out, out.tokenizer), logits(loaded.model, loaded.tokenizer))


def test_already_shared_model_is_merged_further(tmp_path: Path) -> None:
    state = _apply(sst2_tiny_state(tmp_path, layers=6), tmp_path, targets=[3])
    out = _apply(state, tmp_path, targets=[2, 1])
    assert layer_groups(encoder_layers(out.model)) == [[0, 1, 2, 3, 4, 5]]
    assert [t["codec"] for t in out.transforms] == ["shared_layers"]
    with pytest.raises(ConfigError, match="already has 1 distinct"):
        _apply(out, tmp_path, targets=[1])


def test_fine_tuning_after_each_merge_keeps_the_ties(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path, layers=4)
    out = _apply(state, tmp_path, targets=[2, 1], epochs=1.0, train_size=24, batch_size=8, max_length=32, lr=1e-3)
    layers = encoder_layers(out.model)
    assert layer_groups(layers) == [[0, 1, 2, 3]]
    stages = out.info["share_layers"]["stages"]
    assert [s["training"]["steps"] for s in stages] == [3, 3]  # 24 examples / batch 8, after each merge
    # trained through both positions, still one tensor
    assert layers[0].attention.self.query.weight is layers[3].attention.self.query.weight
    before = sst2_tiny_state(tmp_path, layers=4)
    assert not torch.equal(layers[3].attention.self.query.weight, encoder_layers(before.model)[3].attention.self.query.weight)


def test_sharing_after_sketching_is_refused(tmp_path: Path) -> None:
    cls = get_step("sketch.random")
    state = cls(cls.config_cls(m_attention=16, m_ffn_out=24, epochs=0)).apply(sst2_tiny_state(tmp_path, layers=4), make_ctx(tmp_path))
    with pytest.raises(ConfigError, match="before sketch.random"):
        _apply(state, tmp_path, targets=[2])
