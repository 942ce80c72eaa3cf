"""The structure/quantization steps compose: sharing survives sketching and n-bit packing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from core.artifacts import load_artifact, save_artifact, weights_bytes
from core.steps.base import all_steps, get_step
from core.steps.share_layers import encoder_layers, layer_groups
from tests.core.steps_support import logits, make_ctx, sst2_tiny_state

STEP_MODULES = ("core.steps.nbit", "core.steps.sketch", "core.steps.vocab", "core.steps.share_layers")


def test_step_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        f"for name in {STEP_MODULES!r}: __import__(name)\n"
        "from core.steps.base import all_steps\n"
        "all_steps()\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False", out.stderr


def test_steps_are_registered_with_their_categories() -> None:
    ids = {s.id: s.category for s in all_steps()}
    assert ids["quantize.linear_nbit"] == "Quantization"
    assert ids["sketch.random"] == ids["vocab.reduce"] == ids["share_layers"] == "Structure"
    for step_id in ("quantize.linear_nbit", "sketch.random", "vocab.reduce", "share_layers"):
        cls = get_step(step_id)
        cls.config_cls.from_dict(cls.config_cls().to_dict())  # defaults valid and JSON round trip
        assert cls.config_cls.describe()


def _run(state, tmp_path: Path, step_id: str, **cfg):  # type: ignore[no-untyped-def]
    cls = get_step(step_id)
    return cls(cls.config_cls(**cfg)).apply(state, make_ctx(tmp_path))


def test_share_then_sketch_then_nbit_round_trips_and_stays_shared(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path, layers=4, hidden=64)
    state = _run(state, tmp_path, "share_layers", targets=[2], epochs=0)
    state = _run(state, tmp_path, "sketch.random", m_attention=32, m_ffn_out=64, epochs=0)
    layers = encoder_layers(state.model)
    assert layers[0].attention.self.query.weight is layers[1].attention.self.query.weight
    assert layers[0].attention.self.query.sketch.shape == (32, 64)
    assert sum(p.numel() for p in state.model.parameters()) < sum(
        p.numel() for p in sst2_tiny_state(tmp_path, layers=4, hidden=64).model.parameters()
    ) / 2
    save_artifact(state, tmp_path / "float")
    state = _run(state, tmp_path, "quantize.linear_nbit", bits=6)
    save_artifact(state, tmp_path / "art")
    assert weights_bytes(tmp_path / "art") < weights_bytes(tmp_path / "float") / 4  # 6/32 + headers
    loaded = load_artifact(tmp_path / "art").model
    loaded_layers = encoder_layers(loaded)
    assert layer_groups(loaded_layers) == [[0, 1], [2, 3]]
    assert loaded_layers[2].output.dense.weight is loaded_layers[3].output.dense.weight
    assert torch.equal(logits(state, state.tokenizer), logits(loaded, state.tokenizer))
