"""Which variants the exported backends can run, and what exporting the others means.

ONNX Runtime runs the ONNX export, OpenVINO its own conversion of the torch module; the verdict
is the same for both. Found by exporting each variant type (tests/core/test_backends_variants.py):

- torch dynamic int8 (``quantize.dynamic_int8``, backend torch): cannot export. Its Linear layers
  call ``quantized::linear_dynamic`` on packed fbgemm weights, which neither ONNX exporter nor
  OpenVINO's PyTorch frontend can translate ("PackedParams represented as FrameworkNode").
  ``quantize.static_int8`` is the int8 route for these backends.
- torchao int8 tensors (backend torchao): cannot export (``aten._int_mm`` on a tensor subclass has
  no ONNX translation; the TorchScript tracer, which OpenVINO also uses, fails on the subclass).
- n-bit (``quantize.linear_nbit``): exports, as the fp32 values the artifact dequantizes to at
  load. The exported model computes exactly what the workbench measured, but its file holds fp32
  weights, not the bit-packed ones: size it by the exported file.
- sketched layers (``sketch.random``): exports as two MatMuls per layer. The Rademacher matrices,
  which the workbench artifact rebuilds from a seed, become fp32 constants in the file.
- shared layers (``share_layers``): exports; the ONNX file and the IR store each shared weight once.
- pruned (sparse codec): exports dense; zeros cost their bytes and no kernel skips them.
"""

from __future__ import annotations

from typing import Any

from core.backends.packages import EXPORT_BACKENDS, TORCH, check_backend

_TITLES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "torch": "torch"}


def title(backend: str) -> str:
    return _TITLES.get(backend, backend)


def unsupported_reason(model: Any, backend: str) -> str | None:
    """Why ``backend`` cannot run ``model`` (one sentence naming what to do instead), or None."""
    check_backend(backend)
    if backend == TORCH:
        return None
    import torch

    for name, module in model.named_modules():
        if type(module).__module__.startswith("torch.ao.nn.quantized"):
            return (
                f"{title(backend)} cannot run torch dynamic int8 layers ({name or 'model'}: "
                f"{type(module).__name__} from quantize.dynamic_int8 with backend torch): their packed int8 "
                "kernel quantized::linear_dynamic has no ONNX/OpenVINO equivalent the exporter can emit. "
                f"For int8 on {title(backend)}, use quantize.static_int8 with backend {backend} on the float model."
            )
    for name, param in model.named_parameters():
        if type(param) is not torch.nn.Parameter and hasattr(param, "__tensor_flatten__"):
            return (
                f"{title(backend)} cannot run torchao int8 tensors ({name}: {type(param).__name__} from "
                "quantize.dynamic_int8 with backend torchao): their int8 matmul (aten._int_mm on a tensor "
                "subclass) has no ONNX translation. For int8 on "
                f"{title(backend)}, use quantize.static_int8 with backend {backend} on the float model."
            )
        data = getattr(param, "data", None)
        if data is not None and type(data) is not torch.Tensor and hasattr(data, "__tensor_flatten__"):
            return (
                f"{title(backend)} cannot run torchao int8 tensors ({name}: {type(data).__name__}); "
                f"use quantize.static_int8 with backend {backend} on the float model."
            )
    return None


def export_notes(model: Any, transforms: list[dict[str, Any]] | None = None) -> list[str]:
    """What the exported file holds that differs from the workbench artifact (shown beside its size)."""
    notes: list[str] = []
    codecs = [t.get("codec") for t in transforms or []]
    if "nbit" in codecs:
        bits = next(t.get("bits") for t in transforms or [] if t.get("codec") == "nbit")
        notes.append(
            f"n-bit weights ({bits} bits) are dequantized to fp32 at load; the exported file stores those fp32 "
            "values, so it computes what was measured but is not bit-packed (its size is fp32's)"
        )
    if any(type(m).__name__ == "SketchedLinear" for m in model.modules()):
        notes.append(
            "sketched layers export as two MatMuls; the random matrices S, rebuilt from a seed by the workbench "
            "artifact, are stored as fp32 constants in the exported file"
        )
    if "shared_layers" in codecs or _has_shared_parameters(model):
        notes.append("shared layers: the exported file stores each shared weight once")
    if "sparse" in codecs:
        notes.append("pruned weights are stored densely in the exported file; no kernel skips the zeros")
    return notes


def _has_shared_parameters(model: Any) -> bool:
    every = [id(p) for _, p in model.named_parameters(remove_duplicate=False)]
    return len(every) != len(set(every))


__all__ = ["EXPORT_BACKENDS", "export_notes", "title", "unsupported_reason"]
