"""Which variants the exported backends run: a clear message for those they cannot, and the others
measured (n-bit, sketched and shared layers export and agree)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.backends.deploy import EXPORT_FAILED, OK, UNSUPPORTED, deploy_all, deploy_variant
from core.backends.errors import ExportFailed, UnsupportedVariant
from core.backends.export import export_onnx
from core.steps.base import get_step
from tests.core.steps_support import make_ctx, sst2_tiny_state, tiny_task


def _apply(state: Any, tmp_path: Path, step_id: str, **cfg: Any) -> Any:
    cls = get_step(step_id)
    return cls(cls.config_cls(**cfg)).apply(state, make_ctx(tmp_path))


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({}, ("torch dynamic int8", "quantized::linear_dynamic", "quantize.static_int8 with backend")),
        ({"backend": "torchao", "embeddings_int8": False}, ("torchao int8 tensors", "aten._int_mm")),
    ],
    ids=["torch-dynamic-int8", "torchao"],
)
def test_int8_torch_variants_get_a_message_per_backend_and_torch_still_runs(
    tmp_path: Path, config: dict[str, Any], names: tuple[str, ...]
) -> None:
    state = _apply(sst2_tiny_state(tmp_path), tmp_path, "quantize.dynamic_int8", **config)
    variants = deploy_all(state.model, state.tokenizer, tiny_task(), ["torch", "onnxruntime", "openvino"],
                          tmp_path / "out", threads=1)  # fmt: skip
    assert variants["torch"].status == OK
    for backend, title in (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO")):
        v = variants[backend]
        assert v.status == UNSUPPORTED and v.session is None
        assert v.message.startswith(f"{title} cannot run")
        assert all(n in v.message for n in names), v.message
        assert "Traceback" not in v.message and "\n" not in v.message
    with pytest.raises(UnsupportedVariant):
        export_onnx(state.model, state.tokenizer, "classification", tmp_path / "x.onnx")


def test_exporter_failures_become_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.backends.export as export

    def boom(*args: Any) -> None:
        raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX opset version 17 is not supported\n"
                           "Traceback (most recent call last):\n  File ...")  # fmt: skip

    monkeypatch.setattr(export, "_run_exporter", boom)
    state = sst2_tiny_state(tmp_path)
    with pytest.raises(ExportFailed) as err:
        export_onnx(state.model, state.tokenizer, "classification", tmp_path / "m.onnx")
    message = str(err.value)
    assert "(Exporting the operator 'aten::frobnicate' to ONNX opset version 17 is not supported)" in message
    assert "Traceback" not in message and "\n" not in message
    v = deploy_variant(state.model, state.tokenizer, tiny_task(), "onnxruntime", tmp_path / "ort", threads=1)
    assert v.status == EXPORT_FAILED and "other backends are still measured" in v.message
    assert not (tmp_path / "ort").exists() and not (tmp_path / "ort.partial").exists()  # nothing half-written


def test_openvino_conversion_failures_name_the_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import openvino

    def fails(*args: Any, **kwargs: Any) -> None:  # the shape of OpenVINO's OpConversionFailure text
        raise RuntimeError("Check 'false' failed at src/frontends/common_translators/src/unconverted_ops_report.cpp:151:\n"
                           "FrontEnd API failed with OpConversionFailure:\nModel wasn't fully converted. Failed operations "
                           "detailed log:\n-- aten::frobnicate with a message:\nNo translator found\nSummary: ...")
    monkeypatch.setattr(openvino, "convert_model", fails)
    state = sst2_tiny_state(tmp_path)
    v = deploy_variant(state.model, state.tokenizer, tiny_task(), "openvino", tmp_path / "ov", threads=1)
    assert v.status == EXPORT_FAILED and v.session is None
    assert "(aten::frobnicate with a message:)" in v.message and "\n" not in v.message


@pytest.mark.parametrize(
    ("step_id", "config", "note"),
    [
        ("quantize.linear_nbit", {"bits": 8}, "dequantized to fp32 at load"),
        ("sketch.random", {"m_attention": 16, "m_ffn_out": 32, "epochs": 0}, "random matrices S"),
    ],
    ids=["nbit", "sketch"],
)
def test_nbit_and_sketched_variants_export_to_both_backends_and_agree(
    tmp_path: Path, step_id: str, config: dict[str, Any], note: str
) -> None:
    state = _apply(sst2_tiny_state(tmp_path, layers=4), tmp_path, step_id, **config)
    variants = deploy_all(state.model, state.tokenizer, tiny_task(), ["onnxruntime", "openvino"], tmp_path / "out",
                          threads=1, transforms=state.transforms)  # fmt: skip
    for v in variants.values():
        assert v.status == OK, v.message
        assert v.round_trip.agreement == 1.0 and v.round_trip.max_abs_diff < 1e-4
        assert any(note in n for n in v.export.notes), v.export.notes


def test_shared_layers_export_to_both_backends_and_are_stored_once(tmp_path: Path) -> None:
    from core.backends.export import export_openvino

    state = sst2_tiny_state(tmp_path, layers=4, hidden=64)
    plain = {"onnxruntime": export_onnx(state.model, state.tokenizer, "classification", tmp_path / "p.onnx").bytes,
             "openvino": export_openvino(state.model, state.tokenizer, "classification", tmp_path / "p.xml").bytes}
    layer = sum(p.numel() for p in state.model.base_model.encoder.layer[0].parameters()) * 4  # fp32 bytes
    shared = _apply(state, tmp_path, "share_layers", targets=[2], epochs=0)  # ties the layers in place
    variants = deploy_all(shared.model, shared.tokenizer, tiny_task(), ["onnxruntime", "openvino"], tmp_path / "out",
                          threads=1, transforms=shared.transforms)  # fmt: skip
    for backend, v in variants.items():
        assert v.status == OK, v.message
        assert v.round_trip.agreement == 1.0 and v.round_trip.max_abs_diff < 1e-4
        assert any("stores each shared weight once" in n for n in v.export.notes)
        assert plain[backend] - v.export.bytes == pytest.approx(2 * layer, rel=0.05)  # 4 layers -> 2 distinct
