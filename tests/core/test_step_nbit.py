"""Linear n-bit quantization: the published formula, dense bit packing, exact artifact round trip."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from core.artifacts import folder_bytes, load_artifact, save_artifact
from core.errors import ConfigError
from core.state import FLOAT, TRAINABLE
from core.steps.base import get_step
from core.steps.nbit import LinearNbitConfig, dequantize, pack_bits, quantize, tensor_range, unpack_bits
from tests.core.steps_support import logits, make_ctx, minilm_state, sst2_tiny_state


def _reference_pack(codes: np.ndarray, bits: int) -> bytes:
    """Bit string written out digit by digit: the obvious (slow) definition of dense packing."""
    text = "".join(format(int(c), f"0{bits}b") for c in codes)
    text += "0" * (-len(text) % 8)
    return bytes(int(text[i : i + 8], 2) for i in range(0, len(text), 8))


@pytest.mark.parametrize("bits", range(1, 17))
def test_packing_matches_the_bit_string_definition_and_round_trips(bits: int) -> None:
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, size=37)
    packed = pack_bits(codes, bits)
    assert packed.tobytes() == _reference_pack(codes, bits)
    assert np.array_equal(unpack_bits(packed, bits, codes.size), codes)


def test_packing_spans_several_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.steps.nbit as nbit

    monkeypatch.setattr(nbit, "_CHUNK", 64)
    codes = np.random.default_rng(0).integers(0, 1 << 5, size=1000)
    packed = pack_bits(codes, 5)
    assert packed.tobytes() == _reference_pack(codes, 5)
    assert np.array_equal(unpack_bits(packed, 5, 1000), codes)


@pytest.mark.parametrize("bits", [1, 2, 4, 6, 8, 10, 12, 16])
def test_round_trip_error_is_at_most_half_a_step(bits: int) -> None:
    x = torch.randn(5000, generator=torch.Generator().manual_seed(bits)) * 3 + 1
    lo, hi = tensor_range(x)
    q = quantize(x, bits, lo, hi)
    assert int(q.min()) >= 0 and int(q.max()) <= (1 << bits) - 1
    error = (dequantize(q, bits, lo, hi) - x).abs()
    half_step = (hi - lo) / ((1 << bits) - 1) / 2
    assert float(error.max()) <= half_step * (1 + 1e-5)
    # min and max themselves are grid points
    assert float(dequantize(q, bits, lo, hi).min()) == lo and float(dequantize(q, bits, lo, hi).max()) == pytest.approx(hi)


def test_sixteen_bits_is_as_good_as_fp16() -> None:
    x = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    lo, hi = tensor_range(x)
    error16 = (dequantize(quantize(x, 16, lo, hi), 16, lo, hi) - x).abs().max()
    error_fp16 = (x.half().float() - x).abs().max()
    assert float(error16) <= float(error_fp16)


def test_constant_tensor_is_exact() -> None:
    x = torch.full((3, 4), 0.25)
    lo, hi = tensor_range(x)
    q = quantize(x, 4, lo, hi)
    assert torch.equal(q, torch.zeros(3, 4, dtype=torch.int64))
    assert torch.equal(dequantize(q, 4, lo, hi), x)


def test_bits_outside_one_to_sixteen_are_refused() -> None:
    with pytest.raises(ConfigError, match="bits"):
        LinearNbitConfig(bits=0)
    with pytest.raises(ConfigError, match="bits"):
        LinearNbitConfig(bits=17)


def _apply(state, tmp_path: Path, **cfg):  # type: ignore[no-untyped-def]
    step_cls = get_step("quantize.linear_nbit")
    return step_cls(step_cls.config_cls(**cfg)).apply(state, make_ctx(tmp_path))


def test_step_holds_dequantized_values_and_stops_training(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    out = _apply(state, tmp_path, bits=3)
    assert FLOAT in out.traits and TRAINABLE not in out.traits
    for name, value in out.model.state_dict().items():
        if not value.is_floating_point():
            continue
        lo, hi = tensor_range(before[name])
        assert len(torch.unique(value)) <= 8, name
        assert float((value - before[name]).abs().max()) <= (hi - lo) / 7 / 2 * (1 + 1e-5) + 1e-12, name


def test_skip_options_leave_layernorm_bias_and_embeddings_alone(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    out = _apply(state, tmp_path, bits=2, skip_layernorm=True, skip_bias=True, skip_embeddings=True)
    after = out.model.state_dict()
    kept = [k for k in after if "LayerNorm" in k or k.endswith(".bias") or "embeddings" in k]
    changed = [k for k in after if after[k].is_floating_point() and not torch.equal(after[k], before[k])]
    assert kept and all(torch.equal(after[k], before[k]) for k in kept)
    assert changed and not set(changed) & set(kept)


@pytest.mark.parametrize("bits", [1, 4, 8, 13, 16])
def test_artifact_reloads_to_the_same_outputs(tmp_path: Path, bits: int) -> None:
    state = sst2_tiny_state(tmp_path)
    out = _apply(state, tmp_path, bits=bits)
    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert torch.equal(logits(out, out.tokenizer), logits(loaded.model, loaded.tokenizer))
    reference = out.model.state_dict()
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[name]), name


def _weights_layout(folder: Path) -> tuple[int, dict]:
    """(header bytes, header dict) of the safetensors file: everything that is not tensor data."""
    raw = (folder / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return 8 + n, json.loads(raw[8 : 8 + n])


def _check_size(state, tmp_path: Path, bits: int, **cfg) -> None:  # type: ignore[no-untyped-def]
    floats = {k: v for k, v in state.model.state_dict().items() if v.is_floating_point()}
    others = {k: v for k, v in state.model.state_dict().items() if not v.is_floating_point()}
    out = _apply(state, tmp_path, bits=bits, **cfg)
    quantized = [k for k in floats if k in out.transforms[-1]["grids"]]
    kept_fp32 = [k for k in floats if k not in quantized]
    theoretical = (
        sum((floats[k].numel() * bits + 7) // 8 for k in quantized)  # packed codes
        + 8 * len(quantized)  # fp32 min and max
        + sum(4 * floats[k].numel() for k in kept_fp32)
        + sum(v.numel() * v.element_size() for v in others.values())
    )
    folder = tmp_path / "art"
    total = save_artifact(out, folder)
    header, layout = _weights_layout(folder)
    data = (folder / "model.safetensors").stat().st_size - header
    assert data <= theoretical * 1.02 and data >= theoretical
    # headers: the safetensors index, config, manifest, tokenizer — bounded, not hiding weights
    side_files = total - (folder / "model.safetensors").stat().st_size
    tokenizer_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith(("tokenizer", "vocab", "special")))
    assert header <= 200 * len(layout)
    assert side_files - tokenizer_bytes <= 10_000 + 200 * len(quantized)
    assert total <= (theoretical + header + side_files) * 1.02


@pytest.mark.parametrize("bits", [3, 8])
def test_tiny_artifact_is_the_packed_size(tmp_path: Path, bits: int) -> None:
    _check_size(sst2_tiny_state(tmp_path, layers=2, hidden=64), tmp_path, bits)


def test_tiny_artifact_with_fp32_layernorm_is_the_packed_size(tmp_path: Path) -> None:
    _check_size(sst2_tiny_state(tmp_path, layers=2, hidden=64), tmp_path, 5, skip_layernorm=True, skip_bias=True)


@pytest.mark.slow
def test_minilm_artifact_is_the_packed_size_and_much_smaller(tmp_path: Path) -> None:
    state = minilm_state()
    save_artifact(state, tmp_path / "fp32")
    fp32_bytes = folder_bytes(tmp_path / "fp32")
    _check_size(state, tmp_path, 6)
    six_bit = folder_bytes(tmp_path / "art")
    tokenizer = sum(p.stat().st_size for p in (tmp_path / "art").iterdir() if p.name.startswith(("tokenizer", "vocab")))
    # 6/32 of the weights, plus the tokenizer files both folders carry
    assert six_bit - tokenizer == pytest.approx((fp32_bytes - tokenizer) * 6 / 32, rel=0.02)


def test_a_reloaded_artifact_saves_again_to_the_same_bytes(tmp_path: Path) -> None:
    from core.state import ModelState

    out = _apply(sst2_tiny_state(tmp_path), tmp_path, bits=5)
    save_artifact(out, tmp_path / "a")
    loaded = load_artifact(tmp_path / "a")
    again = ModelState(model=loaded.model, tokenizer=loaded.tokenizer, task=out.task, head=out.head,
                       transforms=loaded.manifest["transforms"], traits=out.traits)
    save_artifact(again, tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


# --- mixed precision ---------------------------------------------------------------------------
def _levels(value: torch.Tensor) -> int:
    return len(torch.unique(value))


def test_layer_bits_give_each_part_its_own_width_and_zero_keeps_float(tmp_path: Path) -> None:
    from core.layers import tensor_parts

    state = sst2_tiny_state(tmp_path, layers=3, hidden=64)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    out = _apply(state, tmp_path, bits=8, layer_bits=[2, 0, 3], embedding_bits=4, head_bits=0)
    parts = tensor_parts(out.model)
    after = out.model.state_dict()
    width = {0: 2, 2: 3, "embeddings": 4}
    for name, value in after.items():
        if not value.is_floating_point() or value.numel() < 64:
            continue
        part = parts[name]
        if part in (1, "head"):
            assert torch.equal(value, before[name]), name  # kept in float
        else:
            assert _levels(value) <= 2 ** width[part], name
            if _levels(before[name]) > 2 ** width[part]:
                assert not torch.equal(value, before[name]), name
    entry = out.transforms[-1]
    assert entry["bits"] == 8 and set(entry["tensor_bits"].values()) == {2, 3, 4}  # 8 never differs, so never listed
    assert not any(parts[n] in (1, "head") for n in entry["grids"])


def test_mixed_artifact_reloads_to_the_same_outputs_and_packs_each_tensor_at_its_width(tmp_path: Path) -> None:
    state = sst2_tiny_state(tmp_path, layers=3, hidden=64)
    out = _apply(state, tmp_path, bits=6, layer_bits=[3, 0, 6], embedding_bits=5)
    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    assert torch.equal(logits(out, out.tokenizer), logits(loaded.model, loaded.tokenizer))
    reference = out.model.state_dict()
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[name]), name
    _header, layout = _weights_layout(tmp_path / "art")
    stored = loaded.manifest["transforms"][-1]
    bits_of = {**dict.fromkeys(stored["shapes"], stored["bits"]), **stored.get("tensor_bits", {})}
    for name, shape in stored["shapes"].items():
        numel = int(np.prod(shape))
        begin, end = layout[name + ".nbit_packed"]["data_offsets"]
        assert end - begin == (numel * bits_of[name] + 7) // 8, name
    assert sorted(set(stored["tensor_bits"].values())) == [3, 5]


def test_uniform_layer_bits_store_exactly_what_bits_alone_stores(tmp_path: Path) -> None:
    """Backward compatibility: no per-tensor entry when nothing differs, so old readers read it."""
    state = sst2_tiny_state(tmp_path, layers=2)
    save_artifact(_apply(state, tmp_path, bits=5), tmp_path / "a")
    save_artifact(_apply(state, tmp_path, bits=5, layer_bits=[5, 5], embedding_bits=5, head_bits=5), tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "tensor_bits" not in manifest["transforms"][-1]


def test_an_old_artifact_without_per_tensor_bits_still_loads(tmp_path: Path) -> None:
    out = _apply(sst2_tiny_state(tmp_path), tmp_path, bits=4)
    save_artifact(out, tmp_path / "art")
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert set(manifest["transforms"][-1]) == {"codec", "bits", "shapes"}  # the layout before mixed precision
    loaded = load_artifact(tmp_path / "art")
    assert torch.equal(logits(out, out.tokenizer), logits(loaded.model, loaded.tokenizer))


def test_layer_bits_of_the_wrong_length_name_the_field_and_the_layer_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"layer_bits.*3 value\(s\).*2 layers"):
        _apply(sst2_tiny_state(tmp_path, layers=2), tmp_path, bits=8, layer_bits=[8, 8, 8])
    with pytest.raises(ConfigError, match="layer_bits"):
        LinearNbitConfig(layer_bits=[8, 17])
