"""A stored variant as an analysis needs it: its row, the recipe that made it, its task.

:func:`recipe_for_variant` rebuilds the chain that leads to one variant with every config exactly as
it ran (sweep values fixed to this branch's), so a step appended to it reruns that very path.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from core.errors import WorkbenchError
from core.recipe import Chain, ChainEntry, Recipe, recipe_task
from core.store import Store, get_variants, run_recipe_text
from core.store.rows import VariantInfo


@dataclass(frozen=True)
class VariantSource:
    variant: VariantInfo
    recipe: Recipe  # the run's recipe, as stored
    task: Any  # core.tasks Task


def variant_source(store: Store, variant_id: int) -> VariantSource:
    """The variant, its run's recipe and task; StoreError naming a variant that does not exist."""
    (variant,) = get_variants(store, [variant_id])
    recipe = Recipe.from_dict(json.loads(run_recipe_text(store, variant.run_id)))
    return VariantSource(variant, recipe, recipe_task(recipe))


def recipe_for_variant(store: Store, variant_id: int) -> Recipe:
    """The run's recipe with its chain cut after ``variant_id``'s step, each entry holding the exact
    config of this variant's ancestor at that position (no sweeps left), and one seed."""
    source = variant_source(store, variant_id)
    path: list[VariantInfo] = []
    current: VariantInfo | None = source.variant
    while current is not None:
        path.append(current)
        current = get_variants(store, [current.parent_id])[0] if current.parent_id is not None else None
    by_position = {v.step_index: v for v in path if v.step_index > 0}
    recipe = source.recipe
    entries = []
    for index, entry in enumerate(recipe.chain.entries[: source.variant.step_index]):
        ancestor = by_position.get(index + 1)
        if ancestor is None:
            if entry.enabled:
                raise WorkbenchError(f"Variant {variant_id}'s path has no step {index + 1} ({entry.step}); "
                                     "its run's variants are incomplete")
            continue  # a disabled entry made no variant
        entries.append(ChainEntry(step=ancestor.step_id, config=dict(ancestor.config), version=entry.version))
    return dataclasses.replace(recipe, chain=Chain(tuple(entries)), seed=source.variant.seed
                               if source.variant.seed is not None else recipe.seed, seeds=())
