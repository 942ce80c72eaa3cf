"""Size, honestly: parameters (shared tensors once), non-zeros, and bytes of the saved artifact.

A pruned model keeps ``weight_orig`` + ``weight_mask`` until made permanent, and a zero stored
densely still costs its bytes: that is why non-zeros and bytes on disk are reported separately,
and why ``size_flag`` explains a variant that did not shrink on disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000


@dataclass
class SizeReport:
    params: int  # distinct parameter elements (a tensor shared by several modules counts once)
    nonzero_params: int  # of those, the non-zero ones (effective weights for pruned modules)
    artifact_bytes: int | None = None  # the saved folder but its training rows: what a user ships
    weights_bytes: int | None = None  # the weights file(s) alone

    @property
    def artifact_mb(self) -> float | None:
        return None if self.artifact_bytes is None else self.artifact_bytes / MB

    @property
    def sparsity(self) -> float:
        return 0.0 if self.params == 0 else 1.0 - self.nonzero_params / self.params

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"artifact_mb": self.artifact_mb, "sparsity": self.sparsity}


def _key(t: Any) -> Any:
    """The artifacts' identity of a tensor (shared tensors counted once); opaque ones by object."""
    from core.artifacts import storage_key

    try:
        return storage_key(t)
    except (RuntimeError, NotImplementedError):  # quantized or opaque tensors
        return ("id", id(t))


def _tensors(model: Any) -> list[tuple[Any, Any]]:
    """(stored tensor, effective tensor) for every distinct parameter, including packed int8 weights."""
    import torch

    seen: set[tuple[Any, ...]] = set()
    out: list[tuple[Any, Any]] = []

    def add(stored: Any, effective: Any) -> None:
        key = _key(stored)
        if stored.numel() == 0 or key in seen:
            return
        seen.add(key)
        out.append((stored, effective))

    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            effective = param
            if name.endswith("_orig"):  # torch.nn.utils.prune: the mask makes the effective weight
                masked = getattr(module, name.removesuffix("_orig"), None)
                if isinstance(masked, torch.Tensor):
                    effective = masked
            add(param, effective)
        # Weight-only quantized modules (e.g. the int8 step's Int8Embedding) keep the weight as a
        # persistent buffer named weight*; masks, scales and index buffers are not weights.
        for name, buf in module.named_buffers(recurse=False):
            if (
                name.startswith("weight")
                and not name.endswith("_mask")
                and name not in module._non_persistent_buffers_set
            ):
                add(buf, buf)
        # Dynamic/static quantized Linear keeps weights in packed params, not in parameters().
        weight_fn = getattr(module, "weight", None)
        if callable(weight_fn) and not isinstance(weight_fn, torch.Tensor):
            try:
                w = weight_fn()
            except (RuntimeError, TypeError, AttributeError):
                w = None
            if isinstance(w, torch.Tensor):
                add(w, w)
            bias_fn = getattr(module, "bias", None)
            b = bias_fn() if callable(bias_fn) else None
            if isinstance(b, torch.Tensor):
                add(b, b)
    return out


def _nonzero(t: Any) -> int:
    import torch

    with torch.no_grad():
        if hasattr(t, "__tensor_flatten__"):  # torchao: zeros are exactly the codes that dequantize to 0
            t = t.dequantize()
        elif t.is_quantized:
            t = t.int_repr().to(torch.int32) - _zero_point(t)
        return int(torch.count_nonzero(t).item())


def _zero_point(t: Any) -> Any:
    import torch

    if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        shape = [1] * t.dim()
        shape[t.q_per_channel_axis()] = -1
        return t.q_per_channel_zero_points().reshape(shape).to(torch.int32)
    return int(t.q_zero_point())


def size_report(model: Any, artifact_folder: Path | str | None = None) -> SizeReport:
    """Count ``model``'s parameters and, when given, the bytes of its saved artifact folder."""
    tensors = _tensors(model)
    params = sum(int(stored.numel()) for stored, _ in tensors)
    nonzero = sum(_nonzero(effective) for _, effective in tensors)
    artifact_bytes = weights_bytes = None
    if artifact_folder is not None:
        from core.artifacts import shipped_files

        files = shipped_files(Path(artifact_folder))
        artifact_bytes = sum(p.stat().st_size for p in files)
        weights_bytes = sum(p.stat().st_size for p in files if p.suffix == ".safetensors")
    return SizeReport(params, nonzero, artifact_bytes, weights_bytes)


def size_flag(parent: SizeReport, child: SizeReport) -> str | None:
    """Why ``child`` is not smaller on disk than ``parent``; None when it is (or sizes are unknown)."""
    if parent.artifact_bytes is None or child.artifact_bytes is None:
        return None
    if child.artifact_bytes < parent.artifact_bytes:
        return None
    grew = child.artifact_bytes - parent.artifact_bytes
    what = f"grew by {grew:,} bytes" if grew else "is exactly the same size"
    head = (
        f"not smaller on disk: the artifact {what} "
        f"({child.artifact_bytes / MB:.2f} MB vs parent {parent.artifact_bytes / MB:.2f} MB)"
    )
    if child.nonzero_params < parent.nonzero_params and child.params >= parent.params:
        why = "weights were zeroed but are still stored densely (no sparse storage)"
    elif child.params > parent.params:
        why = "the model has more stored parameters than its parent"
    elif child.params == parent.params:
        why = "the step changed values only, not how many weights are stored or how they are encoded"
    else:
        why = "fewer parameters, but their storage (encoding or extra files) outweighs the saving"
    return f"{head}; {why}"
