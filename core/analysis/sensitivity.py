"""Per-layer sensitivity: one transform on one part of a stored variant at a time, measured against
the untouched variant on the same seeded dev slice, with the paired 95 % bootstrap interval.

Transforms (the steps' own code, applied to one part only):
- ``int8``: torch's dynamic int8 on the part's Linear layers (per-channel weights, as
  quantize.dynamic_int8); the embeddings part gets int8 tables (one scale per row).
- ``nbit:BITS``: every floating tensor of the part on the b-bit min/max grid, one per tensor
  (quantize.linear_nbit's scheme and tensor selection).
- ``prune:AMOUNT``: L1 magnitude pruning ranked within the part (torch.nn.utils.prune,
  global_unstructured over the part's Linear weights; the embedding tables for the embeddings part).

Parts, found by structure (core.layers): ``by="layer"`` gives each transformer block, the embeddings
and the head (pooler + task head); ``by="role"`` each Linear role across all blocks (query, key,
value, attention_output, ffn_in, ffn_out) plus the embeddings and the head. The untouched variant is
evaluated once; each cell evaluates a deep copy. Cells are stored as they finish (core.store.analysis).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError, StepCancelled, WorkbenchError
from core.store import Store
from core.store.analysis import (
    CANCELLED,
    FAILED,
    FINISHED,
    SensitivityCell,
    add_sensitivity_cell,
    create_sensitivity_map,
    finish_sensitivity_map,
)

KINDS = ("int8", "nbit", "prune")
GROUPINGS = ("layer", "role")
DEFAULT_EXAMPLES = 400

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Transform:
    """One transform of a sensitivity map: ``int8``, ``nbit:BITS`` or ``prune:AMOUNT``."""

    kind: str
    value: float | None = None

    @property
    def name(self) -> str:
        if self.kind == "int8":
            return "int8"
        value = int(self.value) if self.kind == "nbit" else self.value  # type: ignore[arg-type]
        return f"{self.kind}:{value:g}" if isinstance(value, float) else f"{self.kind}:{value}"

    @property
    def bits(self) -> int | None:
        return int(self.value) if self.kind == "nbit" and self.value is not None else None

    @classmethod
    def parse(cls, text: str) -> Transform:
        """'int8', 'nbit:6' or 'prune:0.3'; a ConfigError saying what is accepted otherwise."""
        kind, _, value = text.strip().lower().partition(":")
        usage = "use int8, nbit:BITS (1-16) or prune:AMOUNT (0-0.95), e.g. --transform nbit:6"
        if kind == "int8":
            if value:
                raise ConfigError(f"transform '{text}': int8 takes no value; {usage}", field="transform")
            return cls("int8")
        if kind not in KINDS:
            raise ConfigError(f"unknown transform '{text}'; {usage}", field="transform")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"transform '{text}' needs a number after ':'; {usage}", field="transform") from None
        if kind == "nbit" and (number != int(number) or not 1 <= number <= 16):
            raise ConfigError(f"transform '{text}': bits must be a whole number from 1 to 16", field="transform")
        if kind == "prune" and not 0 < number <= 0.95:
            raise ConfigError(f"transform '{text}': the pruned fraction must be above 0 and at most 0.95",
                              field="transform")
        return cls(kind, int(number) if kind == "nbit" else number)


def parse_transforms(texts: list[str]) -> list[Transform]:
    transforms = [Transform.parse(t) for t in texts]
    if not transforms:
        raise ConfigError("give at least one transform (--transform int8, nbit:6 or prune:0.3)", field="transform")
    names = [t.name for t in transforms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"transform {', '.join(twice)} is given twice", field="transform")
    return transforms


@dataclass
class Part:
    """One row of the map: a name, the Linear modules the int8 and prune transforms touch, the tables
    the embeddings part quantizes or prunes, and the floating tensors n-bit quantizes."""

    label: str
    linears: list[str] = field(default_factory=list)
    embeddings: list[str] = field(default_factory=list)
    tensors: list[str] = field(default_factory=list)


def model_parts(model: Any, grouping: str) -> list[Part]:
    """The parts of ``model``, bottom to top (core.layers: found by structure)."""
    import torch

    from core.artifacts import state_tensors
    from core.layers import EMBEDDINGS, HEAD, ROLES, encoder_layout, part_label, tensor_parts

    if grouping not in GROUPINGS:
        raise ConfigError(f"group by 'layer' or 'role', not '{grouping}'", field="by")
    layout = encoder_layout(model, step="sensitivity")
    tensors, _ = state_tensors(model)
    floating = [n for n, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()]
    of = tensor_parts(model, floating, step="sensitivity")
    embeddings = Part(EMBEDDINGS, embeddings=list(layout.embeddings), tensors=[n for n in floating if of[n] == EMBEDDINGS])
    head = Part(HEAD, linears=[*layout.pooler, *layout.head], tensors=[n for n in floating if of[n] == HEAD])
    if grouping == "layer":
        middle = [Part(part_label(b.index), linears=list(b.roles.values()), tensors=[n for n in floating if of[n] == b.index])
                  for b in layout.blocks]
    else:
        middle = []
        for role in ROLES:
            names = layout.role(role)
            middle.append(Part(role, linears=names, tensors=[n for n in floating if n.rpartition(".")[0] in names]))
    return [embeddings, *middle, head]


def part_sizes(model: Any, parts: list[Part]) -> dict[str, dict[str, int]]:
    """Per part, what the mixed-precision search needs to predict bytes: the floating tensors' element
    count, bytes and number, and the Linear weights' element count and output rows."""
    from core.artifacts import state_tensors

    tensors, _ = state_tensors(model)
    modules = dict(model.named_modules())
    out = {}
    for part in parts:
        values = [tensors[n] for n in part.tensors]
        weights = [modules[n].weight for n in part.linears if getattr(modules.get(n), "weight", None) is not None]
        tables = [modules[n].weight for n in part.embeddings]
        out[part.label] = {
            "params": int(sum(v.numel() for v in values)),
            "float_bytes": int(sum(v.numel() * v.element_size() for v in values)),
            "tensors": len(values),
            "linear_params": int(sum(w.numel() for w in weights)),
            "linear_rows": int(sum(w.shape[0] for w in weights)),
            "linear_biases": int(sum(getattr(modules[n], "bias", None) is not None for n in part.linears)),
            "embedding_params": int(sum(t.numel() for t in tables)),
            "embedding_rows": int(sum(t.shape[0] for t in tables)),
        }
    return out


def apply_transform(model: Any, part: Part, transform: Transform) -> int:
    """Apply ``transform`` to ``part`` of ``model`` in place; return the number of values it touched
    (0: the transform has nothing to act on in this part)."""
    import torch

    if transform.kind == "nbit":
        from core.steps.nbit import dequantize, quantize, tensor_range

        bits = int(transform.value or 8)
        named = dict(model.state_dict(keep_vars=True))
        touched = 0
        with torch.no_grad():
            for name in part.tensors:
                value = named[name]
                lo, hi = tensor_range(value)
                value.copy_(dequantize(quantize(value, bits, lo, hi), bits, lo, hi).reshape(value.shape))
                touched += value.numel()
        return touched
    if transform.kind == "int8":
        from core.steps._int8_modules import Int8Embedding, set_submodule
        from core.steps.quantize_int8 import quantize_linears

        modules = dict(model.named_modules())
        linears = [n for n in part.linears if isinstance(modules.get(n), torch.nn.Linear)]
        if linears:
            quantize_linears(model, linears)
        for name in part.embeddings:
            set_submodule(model, name, Int8Embedding.from_float(modules[name]))
        return sum(modules[n].weight.numel() for n in [*linears, *part.embeddings])
    from torch.nn.utils import prune

    modules = dict(model.named_modules())
    targets = [modules[n] for n in [*part.linears, *part.embeddings]
               if isinstance(getattr(modules[n], "weight", None), torch.nn.Parameter)]
    if not targets:
        return 0
    with torch.no_grad():
        prune.global_unstructured([(m, "weight") for m in targets], pruning_method=prune.L1Unstructured,
                                  amount=float(transform.value or 0.0))
        for m in targets:
            prune.remove(m, "weight")
    return sum(m.weight.numel() for m in targets)


@dataclass(frozen=True)
class Settings:
    examples: int = DEFAULT_EXAMPLES
    seed: int = 0
    grouping: str = "layer"
    batch_size: int | None = None  # None: the run's measurement settings
    max_length: int | None = None
    threads: int | None = None


def run_sensitivity(store: Store, variant_id: int, transforms: list[Transform], settings: Settings = Settings(), *,
                    progress: Progress = lambda fraction, message="": None,
                    cancelled: Callable[[], bool] = lambda: False,
                    log: Callable[[str], None] = lambda message: None,
                    on_map: Callable[[int], None] = lambda map_id: None) -> int:
    """Measure a sensitivity map of ``variant_id`` into ``store``; return the map's id.

    Raises StepCancelled when ``cancelled()`` turns true (the map is kept as ``cancelled`` with the
    cells it finished) and ConfigError/WorkbenchError for what a user can fix. ``on_map`` hears the
    map's id as soon as it is recorded (after the untouched variant is measured).
    """
    import torch

    from core.analysis.source import variant_source
    from core.measure.evaluation import evaluate, pinned_threads
    from core.measure.intervals import metric_interval, paired_delta_interval
    from core.state import FLOAT
    from core.steps import load_state

    started = time.perf_counter()
    if settings.examples < 1:
        raise ConfigError(f"examples must be at least 1, got {settings.examples}", field="examples")
    source = variant_source(store, variant_id)
    variant, task, measure = source.variant, source.task, source.recipe.measure
    if not variant.artifact_path:
        raise WorkbenchError(f"Variant {variant_id} has no stored artifact to analyse")
    progress(0.0, "loading the variant")
    try:
        state = load_state(variant.artifact_path)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise WorkbenchError(f"Variant {variant_id}'s artifact {variant.artifact_path} is gone; run its recipe again") from None
    if FLOAT not in state.traits:
        raise ConfigError(f"Variant {variant_id} ({variant.label}) is no longer a float model; analyse a float "
                          f"variant (e.g. its parent{'' if variant.parent_id is None else f', variant {variant.parent_id}'})",
                          field="variant")
    if not variant.head_trained:
        log(f"warning: variant {variant_id}'s task head was never trained; its metric is chance and so are the changes")
    state.model.eval()
    parts = model_parts(state.model, settings.grouping)
    batch_size = settings.batch_size or measure.eval_batch_size
    max_length = settings.max_length or measure.max_length
    threads = settings.threads or measure.threads
    metric = task.primary_metric
    points = task.points
    cells = [(p, t) for p in parts for t in transforms]

    def measure_model(model: Any, share: tuple[float, float], what: str) -> Any:
        lo, hi = share
        return evaluate(model, state.tokenizer, task, "dev", batch_size=batch_size, max_length=max_length,
                        limit=settings.examples, sample_seed=settings.seed, threads=threads, cancelled=cancelled,
                        progress=lambda f, m="": progress(lo + (hi - lo) * f, what))

    step = 1.0 / (len(cells) + 1)
    with pinned_threads(threads):
        base = measure_model(state.model, (0.0, step), "the untouched variant")
        base_ci = metric_interval(metric, base.predictions, base.references, task.score, task.resample,
                                  seed=settings.seed)
        body = {"parts": [p.label for p in parts], "sizes": part_sizes(state.model, parts), "points": points,
                "artifact_bytes": variant.size_bytes, "task": task.id, "head": task.head,
                "layers": sum(1 for p in parts if p.label.startswith("layer ")),
                "batch_size": batch_size, "max_length": max_length, "threads": threads or torch.get_num_threads(),
                "base_ci": [base_ci.low, base_ci.high], "examples_note": base.note}
        map_id = create_sensitivity_map(store, variant_id=variant_id, metric=metric, base_metric=base.primary,
                                        examples=base.examples, seed=settings.seed, grouping=settings.grouping,
                                        transforms=[t.name for t in transforms], body=body)
        on_map(map_id)
        log(f"sensitivity map {map_id}: {len(parts)} parts x {len(transforms)} transforms on {base.examples} dev "
            f"examples; untouched {metric} {base.primary * points:.1f}")
        try:
            for k, (part, transform) in enumerate(cells):
                if cancelled():
                    raise StepCancelled("Sensitivity analysis cancelled by the user")
                what = f"{part.label} × {transform.name}"
                model = copy.deepcopy(state.model)
                touched = apply_transform(model, part, transform)
                if touched == 0:
                    cell = SensitivityCell(transform.name, part.label, parts.index(part), None, None, None, None,
                                           base.examples, settings.seed)
                else:
                    ev = measure_model(model, ((k + 1) * step, (k + 2) * step), what)
                    delta = paired_delta_interval(metric, ev.predictions, base.predictions, base.references,
                                                  task.score, task.resample, seed=settings.seed)
                    cell = SensitivityCell(transform.name, part.label, parts.index(part), ev.primary, delta.value,
                                           _finite(delta.low), _finite(delta.high), ev.examples, settings.seed)
                del model
                add_sensitivity_cell(store, map_id, cell)
                log(f"{what}: {'nothing to act on' if cell.delta is None else f'{cell.delta * points:+.1f} points'}")
        except StepCancelled:
            finish_sensitivity_map(store, map_id, CANCELLED, time.perf_counter() - started)
            raise
        except BaseException as exc:
            finish_sensitivity_map(store, map_id, FAILED, time.perf_counter() - started, error=str(exc) or type(exc).__name__)
            raise
    finish_sensitivity_map(store, map_id, FINISHED, time.perf_counter() - started)
    progress(1.0, "done")
    return map_id


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
