"""Random sketching of Linear layers: W x  ->  (W S^T)(S x), S a seeded Rademacher matrix.

S is m x n with entries +-1/sqrt(m), so E[S^T S] = I and (W S^T) S x is an unbiased estimate of
W x. Only the out x m product W S^T is a parameter (trained further if asked); S is rebuilt from
its seed, so the artifact carries a seed per layer and never S itself. The paper used m = 256 for
the attention projections and m = 512 for the FFN output.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from core.artifacts import Codec, register_codec
from core.errors import ConfigError
from core.layers import ATTENTION_ROLES, ROLES, encoder_layout
from core.params import param
from core.state import FLOAT, TRAINABLE, ModelState, StepContext
from core.steps._tuning import TuneConfig, finetune
from core.steps.base import TRAINING_RESOURCES, Step, register

CODEC_ID = "sketch"
STEP_ID = "sketch.random"

# Config field -> the block roles (core.layers) it sketches.
GROUPS: dict[str, tuple[str, ...]] = {
    "m_attention": ATTENTION_ROLES,
    "m_ffn_in": ("ffn_in",),
    "m_ffn_out": ("ffn_out",),
}


@dataclass(frozen=True)
class SketchConfig(TuneConfig):
    m_attention: int = param(
        256,
        label="m for attention projections",
        help="Sketch size for query/key/value and the attention output; 0 leaves them dense. "
        "Must be below the layer's input width.",
        min=0,
    )
    m_ffn_in: int = param(
        0, label="m for FFN input", help="Sketch size for the FFN's first Linear (hidden -> intermediate); 0 = dense.", min=0
    )
    m_ffn_out: int = param(
        512, label="m for FFN output", help="Sketch size for the FFN's output Linear (intermediate -> hidden); 0 = dense.",
        min=0,
    )

    def validate(self) -> None:
        if not any((self.m_attention, self.m_ffn_in, self.m_ffn_out)):
            raise ConfigError("Every sketch size is 0: set m_attention, m_ffn_in or m_ffn_out", field="m_attention")


def sketch_targets(model: Any, cfg: SketchConfig) -> list[tuple[str, Any, str]]:
    """(module name, Linear, config field) of every dense Linear the config sketches, block by block.

    Layers are found by structure (core.layers), so every supported encoder family is covered, and
    a model whose blocks do not fit is refused naming the layers that could not be classified.
    Layers already sketched (a second sketch step) are left as they are.
    """
    from torch import nn

    layout = encoder_layout(model, step=STEP_ID)
    modules = dict(model.named_modules())
    field_of = {role: field for field, roles in GROUPS.items() for role in roles}
    targets = []
    for block in layout.blocks:
        for role in ROLES:
            name = block.roles[role]
            if getattr(cfg, field_of[role]) > 0 and type(modules[name]) is nn.Linear:
                targets.append((name, modules[name], field_of[role]))
    return targets


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed: stable across runs and Python processes (no hash randomisation)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**62)


def _replace(model: Any, name: str, module: Any) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent), attr, module)


@register
class RandomSketch(Step):
    id = STEP_ID
    title = "Random sketching"
    category = "Structure"
    description = (
        "Replaces Linear layers by (W S^T)(S x) with S a seeded random +-1/sqrt(m) matrix, then "
        "optionally fine-tunes. The artifact stores W S^T and one seed per layer (never S)."
    )
    config_cls = SketchConfig
    requires = frozenset({FLOAT, TRAINABLE})
    resources = TRAINING_RESOURCES

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        from core.steps._sketched_linear import SketchedLinear

        cfg: SketchConfig = self.config  # type: ignore[assignment]
        targets = []
        for name, module, group in sketch_targets(state.model, cfg):
            m = getattr(cfg, group)
            if m >= module.in_features:
                raise ConfigError(
                    f"{group} = {m} must be below the input width {module.in_features} of {name}",
                    step=self.id,
                    field=group,
                )
            targets.append((name, module, m))
        if not targets:
            raise ConfigError("Every layer the non-zero sketch sizes select is sketched already (an earlier sketch step)",
                              step=self.id, field="m_attention")

        layers: dict[str, dict[str, Any]] = {}
        by_weight: dict[int, Any] = {}  # layers sharing a weight (share_layers) stay shared
        params_before = sum(p.numel() for p in state.model.parameters())
        for i, (name, linear, m) in enumerate(targets):
            ctx.check_cancelled()
            first = by_weight.get(id(linear.weight))
            if first is None:
                sketched = SketchedLinear.from_linear(linear, m, layer_seed(ctx.seed, name))
                by_weight[id(linear.weight)] = sketched
            else:
                sketched = SketchedLinear(linear.in_features, linear.out_features, first.m, first.seed, linear.bias is not None)
                sketched.weight, sketched.bias = first.weight, first.bias
            _replace(state.model, name, sketched)
            layers[name] = {
                "in": sketched.in_features,
                "out": sketched.out_features,
                "m": sketched.m,
                "seed": sketched.seed,
                "bias": sketched.bias is not None,
            }
            ctx.progress(0.1 * (i + 1) / len(targets), f"sketched {name}")
        params_after = sum(p.numel() for p in state.model.parameters())
        ctx.log(f"sketched {len(layers)} Linear layers: {params_before} -> {params_after} parameters")

        stats = finetune(state, ctx.scaled(0.1, 1.0, "fine-tuning: "), cfg)
        info = dict(state.info)
        info[self.id] = {"layers": len(layers), "params_before": params_before, "params_after": params_after,
                         "training": stats}
        ctx.progress(1.0, "sketched")
        return state.derive(
            state.model,
            transforms=[*state.transforms, {"codec": CODEC_ID, "layers": layers}],
            info=info,
        )


@register_codec
class SketchCodec(Codec):
    """W S^T is an ordinary tensor; S is rebuilt from the (m, in, seed) recorded in the manifest."""

    id = CODEC_ID

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        from core.steps._sketched_linear import SketchedLinear

        for name, spec in entry["layers"].items():
            module = SketchedLinear(int(spec["in"]), int(spec["out"]), int(spec["m"]), int(spec["seed"]), bool(spec["bias"]))
            _replace(model, name, module)
