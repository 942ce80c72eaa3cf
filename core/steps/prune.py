"""Global L1 (magnitude) unstructured pruning, made permanent, stored sparsely.

The weights of the selected module groups are ranked together by absolute value and the smallest
``amount`` fraction is set to zero with ``torch.nn.utils.prune.global_unstructured`` +
``L1Unstructured``, then ``prune.remove`` folds the masks into the weights, so no ``weight_orig``,
mask or hook survives. Zeros alone do not shrink a file; the ``sparse`` codec stores each pruned
tensor as its non-zero values plus either a bit-packed mask or int32 indices (whichever is
smaller, or dense when that is smaller still), so the artifact shrinks with sparsity and decodes
to exactly the same dense tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.artifacts import Codec, register_codec
from core.errors import ArtifactError, ConfigError
from core.layers import ROLES, encoder_layout
from core.params import StepConfig, param
from core.state import FLOAT, ModelState, StepContext
from core.steps.base import Step, register

STEP_ID = "prune.global_magnitude"
# The six Linear roles of every transformer block (found by structure, see core.layers).
LINEAR_GROUPS: tuple[str, ...] = ROLES
OTHER_GROUPS = ("layernorm", "embeddings", "classifier")
GROUPS = (*LINEAR_GROUPS, *OTHER_GROUPS)
# The TinyBERT study prunes the encoder's Linear weights.
STUDY_GROUPS = tuple(LINEAR_GROUPS)


@dataclass(frozen=True)
class PruneConfig(StepConfig):
    amount: float = param(0.3, label="Amount", help="Fraction of the selected weights set to zero (globally ranked by |w|)", min=0.0, max=0.95)
    groups: list[str] = param(  # noqa: RUF009 (param returns a dataclasses.field)
        STUDY_GROUPS,
        label="Layer groups",
        help="Which weights compete in the global ranking. The study's set: attention Q/K/V/output and FFN in/out",
        choices=GROUPS,
        sweepable=False,
    )

    def validate(self) -> None:
        if not self.groups:
            raise ConfigError("Layer groups (groups) must name at least one group", field="groups")
        if len(set(self.groups)) != len(self.groups):
            raise ConfigError("Layer groups (groups) lists a group twice", field="groups")


def select_modules(model: Any, groups: tuple[str, ...] | list[str]) -> dict[str, list[tuple[str, Any]]]:
    """group -> [(module name in ``model``, module)] whose ``weight`` the group prunes.

    The layers are found by structure (:func:`core.layers.encoder_layout`); a model whose blocks
    do not fit is refused with a message naming the layers that could not be classified.
    """
    layout = encoder_layout(model, step=STEP_ID)
    modules = dict(model.named_modules())
    out: dict[str, list[tuple[str, Any]]] = {}
    for group in groups:
        if group in ROLES:
            names = layout.role(group)
        elif group == "layernorm":
            names = list(layout.layernorms)
        elif group == "embeddings":
            names = list(layout.embeddings)
        elif group == "classifier":
            names = [*layout.pooler, *layout.head]
        else:
            raise ConfigError(f"Unknown layer group '{group}'; groups: {', '.join(GROUPS)}", step=STEP_ID, field="groups")
        out[group] = [(n, modules[n]) for n in names if _has_float_weight(modules[n])]
    # A tensor shared by several modules (tied layers) is ranked once.
    seen: set[int] = set()
    for group in out:
        kept = []
        for name, m in out[group]:
            if id(m.weight) not in seen:
                seen.add(id(m.weight))
                kept.append((name, m))
        out[group] = kept
    return out


def _has_float_weight(module: Any) -> bool:
    from torch import nn

    weight = getattr(module, "weight", None)
    return isinstance(weight, nn.Parameter) and weight.is_floating_point()


@register
class GlobalMagnitudePrune(Step):
    id = STEP_ID
    title = "Global magnitude pruning"
    category = "Pruning"
    description = "Zero the smallest |w| across the selected layers (global L1 unstructured), stored sparsely."
    config_cls = PruneConfig
    requires = frozenset({FLOAT})

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import torch
        from torch.nn.utils import prune

        cfg: PruneConfig = self.config  # type: ignore[assignment]
        ctx.check_cancelled()
        ctx.progress(0.0, "Selecting layers")
        model = copy.deepcopy(state.model)
        selected = select_modules(model, cfg.groups)
        params = [(m, "weight") for mods in selected.values() for _, m in mods]
        if not params:
            raise ConfigError(f"No weights found in the groups {', '.join(cfg.groups)}", step=self.id, field="groups")
        ctx.check_cancelled()
        ctx.progress(0.2, f"Ranking {sum(m.weight.numel() for m, _ in params):,} weights")
        with torch.no_grad():
            prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=cfg.amount)
            for m, name in params:
                prune.remove(m, name)
        ctx.check_cancelled()
        ctx.progress(0.8, "Measuring sparsity")
        report: dict[str, Any] = {"amount": cfg.amount, "groups": {}}
        total = zeros = 0
        for group, mods in selected.items():
            n = sum(m.weight.numel() for _, m in mods)
            z = sum(int((m.weight == 0).sum()) for _, m in mods)
            total += n
            zeros += z
            report["groups"][group] = {"modules": len(mods), "params": n, "zeros": z, "sparsity": z / n if n else 0.0}
        report["params"] = total
        report["zeros"] = zeros
        report["sparsity"] = zeros / total if total else 0.0
        names = [f"{name}.weight" for mods in selected.values() for name, _ in mods]
        info = dict(state.info)
        info[self.id] = report
        ctx.log(f"pruned {zeros:,} of {total:,} weights ({report['sparsity']:.1%})")
        ctx.progress(1.0, "Pruned")
        return state.derive(
            model,
            transforms=[*state.transforms, {"codec": SparseCodec.id, "tensors": names}],
            info=info,
        )


# --- storage --------------------------------------------------------------------------------
def pack_bits(mask: Any) -> Any:
    """Bool tensor -> uint8 tensor, 8 flags per byte, most significant bit first (numpy.packbits order)."""
    import torch

    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return (flat.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: Any, numel: int) -> Any:
    import torch

    shifts = torch.arange(7, -1, -1, dtype=torch.uint8)
    bits = (packed.view(-1, 1) >> shifts) & 1
    return bits.reshape(-1)[:numel].bool()


def encode_sparse(tensor: Any) -> tuple[str, dict[str, Any]]:
    """Choose the smallest lossless layout of ``tensor``: ("dense" | "bitmask" | "indices", parts)."""
    import torch

    flat = tensor.detach().reshape(-1)
    nonzero = flat != 0
    values = flat[nonzero].contiguous()
    itemsize = flat.element_size()
    n, nnz = flat.numel(), values.numel()
    sizes = {"dense": n * itemsize, "bitmask": (n + 7) // 8 + nnz * itemsize, "indices": nnz * (4 + itemsize)}
    if n >= 2**31:
        sizes.pop("indices")
    layout = min(sizes, key=lambda k: (sizes[k], k != "dense"))
    if layout == "dense":
        return layout, {}
    if layout == "bitmask":
        return layout, {"values": values, "mask": pack_bits(nonzero)}
    return layout, {"values": values, "indices": nonzero.nonzero().reshape(-1).to(torch.int32)}


def decode_sparse(layout: str, parts: dict[str, Any], shape: list[int], dtype: Any) -> Any:
    import torch

    numel = 1
    for d in shape:
        numel *= d
    out = torch.zeros(numel, dtype=dtype)
    if layout == "bitmask":
        out[unpack_bits(parts["mask"], numel)] = parts["values"].to(dtype)
    elif layout == "indices":
        out[parts["indices"].long()] = parts["values"].to(dtype)
    else:
        raise ArtifactError(f"Unknown sparse layout '{layout}'")
    return out.view(shape)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


@register_codec
class SparseCodec(Codec):
    """Stores pruned float tensors as non-zero values + mask/indices; dense when that is smaller.

    Tensors a later step replaced (e.g. quantized to int8) are left to that step's codec; the
    entry records what this codec really stored under ``stored``.
    """

    id = "sparse"

    def encode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch

        stored: dict[str, dict[str, Any]] = {}
        for name in entry.get("tensors", []):
            t = tensors.get(name)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                continue
            layout, parts = encode_sparse(t)
            if layout == "dense":
                continue
            del tensors[name]
            for key, value in parts.items():
                tensors[f"{name}::sparse.{key}"] = value
            stored[name] = {"layout": layout, "shape": list(t.shape), "dtype": _dtype_name(t.dtype)}
        entry["stored"] = stored

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        import torch

        for name, meta in entry.get("stored", {}).items():
            keys = [k for k in ("values", "mask", "indices") if f"{name}::sparse.{k}" in tensors]
            parts = {k: tensors.pop(f"{name}::sparse.{k}") for k in keys}
            if "values" not in parts:
                raise ArtifactError(f"The artifact lacks the stored values of sparse tensor {name}")
            tensors[name] = decode_sparse(meta["layout"], parts, meta["shape"], getattr(torch, meta["dtype"]))
