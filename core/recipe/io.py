"""Recipe files: YAML or JSON (JSON is valid YAML), round-tripping exactly: ``loads(dumps(r)) == r``
and the text is a fixed point of load + dump. Relative data paths are read from the file's folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from core.recipe.model import Recipe, RecipeError, structure_error


def loads_recipe(text: str, fmt: str = "yaml", *, source: str = "<recipe>") -> Recipe:
    """Parse recipe text (``fmt`` is "yaml" or "json"; JSON is valid YAML, YAML is the default)."""
    import yaml

    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc)
        raise structure_error(f"{source}{at}: YAML syntax error: {why}", fix="correct the YAML at that line") from None
    except json.JSONDecodeError as exc:
        raise structure_error(f"{source}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}") from None
    return Recipe.from_dict(data)


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file; the suffix decides the format (.json is JSON, anything else YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"Cannot read recipe {path}: {exc.strerror or exc}") from None
    recipe = loads_recipe(text, "json" if path.suffix.lower() == ".json" else "yaml", source=str(path))
    if recipe.data is not None:
        recipe = dataclasses.replace(recipe, data=recipe.data.resolved(path.resolve().parent))
    return recipe


def dumps_recipe(recipe: Recipe, fmt: str = "yaml") -> str:
    import yaml

    data = recipe.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    path = Path(path)
    path.write_text(dumps_recipe(recipe, "json" if path.suffix.lower() == ".json" else "yaml"), encoding="utf-8")


