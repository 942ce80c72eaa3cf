"""Random sketching of Linear layers: W x  ->  (W S^T)(S x), S a seeded Rademacher matrix.

S is m x n with entries +-1/sqrt(m), so E[S^T S] = I and (W S^T) S x is an unbiased estimate of
W x. Only the out x m product W S^T is a parameter (trained further if asked); S is rebuilt from
its seed, so the artifact carries a seed per layer and never S itself. The paper used m = 256 for
the attention projections and m = 512 for the FFN output.

W S^T is a poor start for this model (benchmarks/sketch_error.py: the sketched MiniLM's last hidden
state is unrelated to the dense one), so ``init: least_squares`` instead fits each layer's out x m
weight to the dense layer's outputs on the inputs of a few training rows:
W' = argmin ||W' S X - W X||, same parameters, same artifact.
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

PRODUCT, LEAST_SQUARES = "product", "least_squares"
INITS = (PRODUCT, LEAST_SQUARES)

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

    init: str = param(
        PRODUCT, label="Initial W S^T",
        help="product = W S^T (the paper); least_squares = fitted to the dense layer's outputs on the inputs of "
        "the calibration rows (far closer to the dense model before any fine-tuning)",
        choices=INITS,
    )
    calibration_rows: int = param(
        256, label="Calibration rows", help="Training rows whose activations the least-squares init is fitted on",
        min=1, max=100_000, sweepable=False,
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
        sketched_modules = []
        for name, linear, m in targets:
            first = by_weight.get(id(linear.weight))
            if first is None:
                sketched = SketchedLinear.from_linear(linear, m, layer_seed(ctx.seed, name))
                by_weight[id(linear.weight)] = sketched
            else:
                sketched = SketchedLinear(linear.in_features, linear.out_features, first.m, first.seed, linear.bias is not None)
                sketched.weight, sketched.bias = first.weight, first.bias
            sketched_modules.append(sketched)
        fit_errors: dict[str, float] = {}
        if cfg.init == LEAST_SQUARES:
            fit_errors = fit_to_activations(state, ctx.scaled(0.0, 0.1, "calibrating: "), cfg, targets, by_weight)
        for (name, _, _), sketched in zip(targets, sketched_modules, strict=True):
            _replace(state.model, name, sketched)
            layers[name] = {
                "in": sketched.in_features,
                "out": sketched.out_features,
                "m": sketched.m,
                "seed": sketched.seed,
                "bias": sketched.bias is not None,
            }
        ctx.progress(0.1, f"sketched {len(layers)} layers")
        params_after = sum(p.numel() for p in state.model.parameters())
        ctx.log(f"sketched {len(layers)} Linear layers: {params_before} -> {params_after} parameters")

        stats = finetune(state, ctx.scaled(0.1, 1.0, "fine-tuning: "), cfg)
        info = dict(state.info)
        info[self.id] = {"layers": len(layers), "params_before": params_before, "params_after": params_after,
                         "init": cfg.init, "training": stats}
        if fit_errors:
            info[self.id].update(calibration_rows=cfg.calibration_rows, calibration_relative_error=fit_errors)
        ctx.progress(1.0, "sketched")
        return state.derive(
            state.model,
            transforms=[*state.transforms, {"codec": CODEC_ID, "layers": layers}],
            info=info,
        )


def fit_to_activations(state: ModelState, ctx: StepContext, cfg: SketchConfig, targets: list[tuple[str, Any, int]],
                       by_weight: dict[int, Any]) -> dict[str, float]:
    """Fit every sketch of ``by_weight`` (dense weight id -> its SketchedLinear) by least squares on the
    dense model's inputs to its layer over ``cfg.calibration_rows`` training rows (real tokens only).
    Layers sharing a weight pool their tokens. Returns each layer's relative error on those tokens (in-sample:
    a held-out error is higher). Refuses, naming ``calibration_rows``, a layer with no more tokens than m."""
    import torch

    from core.measure.evaluation import pinned_threads
    from core.steps.training import MODEL_INPUTS, batches, train_data

    data = train_data(state, ctx, train_size=cfg.calibration_rows, max_length=cfg.max_length)
    loader = batches(state, ctx, data.features, batch_size=16)
    sums: dict[int, dict[str, Any]] = {}
    real_tokens: dict[str, Any] = {}  # the current batch's attention mask, as booleans

    def accumulate(module: Any, inputs: tuple[Any, ...], _out: Any) -> None:
        slot, mask = sums[id(module.weight)], real_tokens["mask"]
        if inputs[0].shape[:-1] != mask.shape:  # only per-token calls can be masked
            raise ConfigError(f"init least_squares cannot calibrate {slot['name']}: it was called on inputs of shape "
                              f"{tuple(inputs[0].shape)}, not one vector per token; use init: product",
                              step=STEP_ID, field="init")
        x = inputs[0][mask].double()
        slot["tokens"] += x.shape[0]
        sx = x @ slot["sketch"].sketch.double().T
        wx = x @ module.weight.detach().double().T
        slot["gram"] += sx.T @ sx
        slot["cross"] += wx.T @ sx
        slot["target"] += float((wx * wx).sum())

    hooks, hooked = [], set()
    for name, linear, _ in targets:
        key = id(linear.weight)
        if key not in sums:
            sketch = by_weight[key]
            sums[key] = {"sketch": sketch, "gram": torch.zeros(sketch.m, sketch.m, dtype=torch.float64),
                         "cross": torch.zeros(sketch.out_features, sketch.m, dtype=torch.float64), "target": 0.0,
                         "tokens": 0, "name": name}
        if id(linear) not in hooked:  # a module used by several blocks is hooked once, counted per call
            hooked.add(id(linear))
            hooks.append(linear.register_forward_hook(accumulate))
    try:
        with torch.inference_mode(), pinned_threads(ctx.threads):
            state.model.eval()
            for i, batch in enumerate(loader):
                ctx.check_cancelled()
                real_tokens["mask"] = batch["attention_mask"].bool()
                state.model(**{k: v for k, v in batch.items() if k in MODEL_INPUTS})
                ctx.progress((i + 1) / len(loader), f"batch {i + 1}/{len(loader)}")
    finally:
        for hook in hooks:
            hook.remove()
    errors = {}
    for name, linear, _ in targets:
        slot = sums[id(linear.weight)]
        if slot["tokens"] <= slot["sketch"].m:  # fewer equations than unknowns per output: the fit would only memorise
            raise ConfigError(f"init least_squares: {name} saw {slot['tokens']} calibration tokens, not more than its "
                              f"sketch size m = {slot['sketch'].m}; raise calibration_rows", step=STEP_ID,
                              field="calibration_rows")
        if "error" not in slot:
            slot["error"] = slot["sketch"].fit(slot["gram"], slot["cross"], slot["target"])
        errors[name] = round(slot["error"], 4)
    ctx.log(f"least-squares init on {len(data.features)} calibration rows: relative error per layer on those rows' "
            f"tokens (in-sample) {min(errors.values()):.3f}-{max(errors.values()):.3f}")
    return errors


@register_codec
class SketchCodec(Codec):
    """W S^T is an ordinary tensor; S is rebuilt from the (m, in, seed) recorded in the manifest."""

    id = CODEC_ID

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        from core.steps._sketched_linear import SketchedLinear

        for name, spec in entry["layers"].items():
            module = SketchedLinear(int(spec["in"]), int(spec["out"]), int(spec["m"]), int(spec["seed"]), bool(spec["bias"]))
            _replace(model, name, module)
