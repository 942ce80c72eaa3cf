"""Recipes: the one model of what to run (model, task or data file, chain of steps, measurement
settings, seed), its files, its sweeps and its validation. Used alike by the window, the CLI and
the runner; torch-free."""

from core.recipe.estimate import RunEstimate, count_variants, run_estimate
from core.recipe.io import dumps_recipe, load_recipe, loads_recipe, save_recipe
from core.recipe.model import (
    RECIPE_FORMAT,
    Budget,
    Chain,
    ChainEntry,
    DataSpec,
    MeasureSettings,
    Problem,
    Recipe,
    RecipeError,
    recipe_task,
)
from core.recipe.sweep import ResolvedStep, VariantNode, entry_configs, expand, sweep_fields, variant_tree
from core.recipe.validate import check_recipe, entry_problems, validate_recipe

__all__ = [
    "RECIPE_FORMAT",
    "Budget",
    "Chain",
    "ChainEntry",
    "DataSpec",
    "MeasureSettings",
    "Problem",
    "Recipe",
    "RecipeError",
    "ResolvedStep",
    "RunEstimate",
    "VariantNode",
    "check_recipe",
    "count_variants",
    "dumps_recipe",
    "entry_configs",
    "entry_problems",
    "expand",
    "load_recipe",
    "loads_recipe",
    "recipe_task",
    "run_estimate",
    "save_recipe",
    "sweep_fields",
    "validate_recipe",
    "variant_tree",
]
