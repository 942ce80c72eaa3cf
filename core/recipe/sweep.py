"""Sweeps: a numeric field holding a list of values expands a chain into a grid of variants,
kept as a prefix tree so a shared prefix runs once."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.recipe.model import ChainEntry, Recipe


def sweep_fields(entry: ChainEntry) -> dict[str, list[Any]]:
    """Fields holding a list of values where the config declares a single value: the sweep axes."""
    from core.steps.base import get_step

    axes: dict[str, list[Any]] = {}
    for f, _meta, _elem, is_list in get_step(entry.step).config_cls.fields_meta():
        value = entry.config.get(f.name)
        if isinstance(value, (list, tuple)) and not is_list:
            axes[f.name] = list(value)
    return axes


def entry_configs(entry: ChainEntry) -> list[dict[str, Any]]:
    """The concrete config dicts an entry expands into (one unless a field holds a sweep list)."""
    axes = sweep_fields(entry)
    if not axes:
        return [dict(entry.config)]
    names = list(axes)
    return [{**entry.config, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*axes.values())]


@dataclass(frozen=True)
class ResolvedStep:
    """One concrete step of one variant: chain position, canonical id, full validated config."""

    index: int  # 0-based position in the recipe's chain
    step: str
    config: Any  # the StepConfig instance
    swept: tuple[str, ...] = ()  # fields that came from a sweep list

    @property
    def swept_values(self) -> dict[str, Any]:
        """The value this variant takes in each swept field."""
        values = self.config.to_dict()
        return {k: values[k] for k in self.swept}

    @property
    def config_text(self) -> str:
        """The full config as the results database stores it (sorted JSON): what tells two variants'
        work apart."""
        return json.dumps(self.config.to_dict(), sort_keys=True)

    @property
    def label(self) -> str:
        if not self.swept:
            return self.step
        return f"{self.step}(" + ", ".join(f"{k}={v}" for k, v in self.swept_values.items()) + ")"


@dataclass
class VariantNode:
    """A node of the variant tree; the root (``step is None``) is the baseline."""

    step: ResolvedStep | None
    children: list[VariantNode] = field(default_factory=list)

    def walk(self) -> Iterator[VariantNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def count(self) -> int:
        return sum(1 for _ in self.walk())


def resolve_entry(entry: ChainEntry, index: int) -> list[ResolvedStep]:
    """Concrete, validated steps for one enabled entry (raises ConfigError on a bad value)."""
    from core.steps.base import get_step

    step_cls = get_step(entry.step)
    swept = tuple(sweep_fields(entry))
    out = []
    for values in entry_configs(entry):
        config = step_cls.config_cls.from_dict(values, step=step_cls.id)
        out.append(ResolvedStep(index=index, step=step_cls.id, config=config, swept=swept))
    return out


def variant_tree(recipe: Recipe) -> VariantNode:
    """The grid of variants as a prefix tree: each sweep value branches, shared prefixes run once."""
    root = VariantNode(step=None)
    leaves = [root]
    for index, entry in enumerate(recipe.chain):
        if not entry.enabled:
            continue
        steps = resolve_entry(entry, index)
        new_leaves = []
        for leaf in leaves:
            for step in steps:
                child = VariantNode(step=step)
                leaf.children.append(child)
                new_leaves.append(child)
        leaves = new_leaves
    return root


def expand(recipe: Recipe) -> list[list[ResolvedStep]]:
    """Every variant of the grid as a flat list of steps (for display; the runner uses the tree)."""

    def paths(node: VariantNode, prefix: list[ResolvedStep]) -> Iterator[list[ResolvedStep]]:
        here = prefix + ([node.step] if node.step else [])
        if not node.children:
            yield here
        for child in node.children:
            yield from paths(child, here)

    return list(paths(variant_tree(recipe), []))


