"""Progressive cross-layer parameter sharing: adjacent layers merged, the upper layer's weights win.

After a merge both positions run the very same Parameter objects (ALBERT-style): the model keeps
its depth but has fewer distinct layers, counted once and stored once (the artifact saver stores
aliased tensors once and re-ties them on load). A schedule such as [3, 2] from 6 layers merges
6 -> 3 -> 2, fine-tuning after each merge, optionally against the model that entered the step.

Pairing rule: the current groups of shared layers are paired from the bottom (groups 0+1, 2+3,
...); when fewer merges are needed than there are pairs, the lowest pairs merge first, and with
an odd number of groups the top group is left alone. Each merge takes the upper group's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.artifacts import Codec, register_codec
from core.errors import ConfigError
from core.params import param
from core.state import FLOAT, TRAINABLE, ModelState, StepContext
from core.steps._tuning import TuneConfig, finetune
from core.steps.base import TRAINING_RESOURCES, Step, register

CODEC_ID = "shared_layers"


@dataclass(frozen=True)
class ShareLayersConfig(TuneConfig):
    targets: list[int] = param(  # noqa: RUF009 - a tuple default; the frozen config keeps a tuple
        (3,),
        label="Distinct layers after each merge",
        help="Progressive schedule, e.g. [3, 2] from 6 layers: merge to 3, fine-tune, merge to 2, fine-tune. "
        "Each target must be at least half the current count.",
        min=1,
        sweepable=False,
    )
    distill: bool = param(
        True,
        label="Distil from the model before sharing",
        help="Fine-tune with a teacher-student loss against the model that entered this step.",
        sweepable=False,
    )
    distill_alpha: float = param(0.5, label="Soft-loss weight", help="alpha in alpha*soft + (1-alpha)*hard.", min=0, max=1)
    temperature: float = param(2.0, label="Temperature", min=0, min_exclusive=True, max=100)

    def validate(self) -> None:
        if not self.targets:
            raise ConfigError("Give at least one target layer count", field="targets")
        if any(b >= a for a, b in zip(self.targets, self.targets[1:], strict=False)):
            raise ConfigError(f"targets must decrease, e.g. [3, 2]; got {list(self.targets)}", field="targets")


def encoder_layers(model: Any) -> Any:
    """The ModuleList of transformer blocks, found by structure (core.layers.layer_stack)."""
    from core.layers import layer_stack

    return layer_stack(model, step="share_layers")[1]


def layer_groups(layers: Any) -> list[list[int]]:
    """Runs of adjacent positions that use the same Parameter objects."""
    groups: list[list[int]] = []
    for i, layer in enumerate(layers):
        first = next(layer.parameters())
        if groups and next(layers[groups[-1][0]].parameters()) is first:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def tie_layer(layers: Any, position: int, source: int) -> None:
    """Make every parameter of ``layers[position]`` the very Parameter of ``layers[source]``."""
    target_modules = dict(layers[position].named_modules())
    for name, module in layers[source].named_modules():
        target = target_modules[name]
        for key, value in module._parameters.items():
            target._parameters[key] = value


def merge_plan(groups: list[list[int]], target: int) -> list[list[list[int]]]:
    """The new groups after merging ``len(groups) - target`` adjacent pairs (see the module doc)."""
    merges = len(groups) - target
    if merges <= 0:
        raise ConfigError(f"The model already has {len(groups)} distinct layers; a target of {target} merges nothing",
                          step="share_layers", field="targets")
    if merges > len(groups) // 2:
        raise ConfigError(
            f"From {len(groups)} distinct layers one merge round reaches at least {len(groups) - len(groups) // 2}; "
            f"target {target} needs intermediate targets (e.g. {_halvings(len(groups), target)})",
            step="share_layers",
            field="targets",
        )
    plan: list[list[list[int]]] = []
    i = 0
    while i < len(groups):
        if merges and i + 1 < len(groups):
            plan.append([groups[i], groups[i + 1]])
            merges -= 1
            i += 2
        else:
            plan.append([groups[i]])
            i += 1
    return plan


def _halvings(count: int, target: int) -> list[int]:
    out = []
    while count > target:
        count = max(target, count - count // 2)
        out.append(count)
    return out


def distinct_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared one once


@register
class ShareLayers(Step):
    id = "share_layers"
    title = "Cross-layer parameter sharing"
    category = "Structure"
    description = (
        "Merges adjacent layers so both positions use one set of weights (the upper layer's), "
        "progressively (e.g. 6 -> 3 -> 2 distinct layers), fine-tuning after each merge with an "
        "optional teacher-student loss against the model before sharing. Depth and speed stay; "
        "parameters and file size drop."
    )
    config_cls = ShareLayersConfig
    requires = frozenset({FLOAT, TRAINABLE})
    resources = TRAINING_RESOURCES

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        import copy

        cfg: ShareLayersConfig = self.config  # type: ignore[assignment]
        if any(t.get("codec") == "sketch" for t in state.transforms):
            # each sketched layer has its own random S: tying W S^T across layers would be wrong
            raise ConfigError("Put share_layers before sketch.random: sketched layers cannot be merged",
                              step=self.id)
        layers = encoder_layers(state.model)
        teacher = None
        if cfg.distill and cfg.epochs > 0:
            teacher_model = copy.deepcopy(state.model).eval()
            for p in teacher_model.parameters():
                p.requires_grad_(False)
            teacher = ModelState(model=teacher_model, tokenizer=state.tokenizer, task=state.task, head=state.head)
        stages = []
        for k, target in enumerate(cfg.targets):
            ctx.check_cancelled()
            groups = layer_groups(layers)
            plan = merge_plan(groups, target)
            for merged in plan:
                if len(merged) == 2:
                    source = merged[1][0]  # the upper group's weights replace the lower's
                    for position in merged[0]:
                        tie_layer(layers, position, source)
            new_groups = layer_groups(layers)
            ctx.log(f"merged {len(groups)} -> {len(new_groups)} distinct layers: {new_groups}")
            start, end = k / len(cfg.targets), (k + 1) / len(cfg.targets)
            ctx.progress(start, f"merged to {len(new_groups)} distinct layers")
            stats = finetune(
                state,
                ctx.scaled(start, end, f"{len(new_groups)} layers: "),
                cfg,
                teacher=teacher,
                alpha=cfg.distill_alpha,
                temperature=cfg.temperature,
            )
            stages.append({"distinct_layers": len(new_groups), "groups": new_groups,
                           "params": distinct_params(state.model), "training": stats})
        del teacher
        groups = layer_groups(layers)
        transforms = [t for t in state.transforms if t.get("codec") != CODEC_ID]
        transforms.append({"codec": CODEC_ID, "groups": groups})
        ctx.progress(1.0, f"{len(groups)} distinct layers")
        return state.derive(
            state.model,
            transforms=transforms,
            info={**state.info, self.id: {"stages": stages, "distinct_layers": len(groups), "depth": len(layers)}},
        )


@register_codec
class SharedLayersCodec(Codec):
    """Records which positions share weights (for people reading the manifest). Storage itself is
    the saver's alias mechanism: a shared tensor is written once and re-tied on load."""

    id = CODEC_ID

    def decode(self, model: Any, tensors: dict[str, Any], entry: dict[str, Any]) -> None:
        """Nothing to restructure: ``load_artifact`` re-ties aliases after loading the state dict."""
