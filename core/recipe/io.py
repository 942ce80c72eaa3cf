"""Recipe files: YAML or JSON (JSON is valid YAML), round-tripping exactly: ``loads(dumps(r)) == r``
and the text is a fixed point of load + dump. Relative data paths are read from the file's folder."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from core.errors import brief, cap_message
from core.recipe.model import Recipe, RecipeError, structure_error

# Recipes are a few kilobytes (a 10,000-value sweep is ~60 kB); a bigger file is not a recipe.
MAX_RECIPE_BYTES = 4 * 2**20


def loads_recipe(text: str, fmt: str = "yaml", *, source: str = "<recipe>") -> Recipe:
    """Parse recipe text (``fmt`` is "yaml" or "json"; JSON is valid YAML, YAML is the default).

    YAML aliases (``*name``) are refused: a few hundred bytes of nested aliases expand to
    gigabytes ("billion laughs"), and a recipe never needs them.
    """
    import yaml

    if len(text) > MAX_RECIPE_BYTES:
        raise structure_error(
            f"{source} is {len(text):,} characters long; a recipe is at most {MAX_RECIPE_BYTES:,}",
            fix="check that this is the recipe file (a recipe holds a model, a task and a chain of steps)",
        )
    try:
        data = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_recipe_loader())
    except _AliasRefused as exc:
        raise structure_error(
            f"{source}:{exc.line}:{exc.column}: YAML alias '*{brief(exc.anchor)[1:-1]}': recipes do not use "
            "anchors and aliases (nested aliases can expand a small file to gigabytes)",
            fix="write the repeated values out in full",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc)
        raise structure_error(f"{source}{at}: YAML syntax error: {why}", fix="correct the YAML at that line") from None
    except json.JSONDecodeError as exc:
        raise structure_error(f"{source}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}",
                              fix="correct the JSON at that line and column") from None
    except RecursionError:
        raise structure_error(f"{source}: values are nested too deeply to be a recipe",
                              fix="check that this is the recipe file; a recipe nests a few levels") from None
    except ValueError as exc:  # Python refuses to read a number of more than 4,300 digits
        why = "a number has more than 4,300 digits" if "digits" in str(exc) else cap_message(str(exc), 200)
        raise structure_error(f"{source}: unreadable value: {why}",
                              fix="correct the value (numbers in a recipe are small)") from None
    return Recipe.from_dict(data)


class _AliasRefused(Exception):
    def __init__(self, anchor: str, line: int, column: int) -> None:
        super().__init__(anchor)
        self.anchor, self.line, self.column = anchor, line, column


@functools.cache
def _recipe_loader() -> type:
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        """PyYAML's safe loader, refusing aliases before anything is built from them."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _AliasRefused(event.anchor, event.start_mark.line + 1, event.start_mark.column + 1)
            return super().compose_node(parent, index)

    return RecipeLoader


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file; the suffix decides the format (.json is JSON, anything else YAML)."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_RECIPE_BYTES:  # refused before reading gigabytes
            raise structure_error(f"{path} is {path.stat().st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}",
                                  fix="check that this is the recipe file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"Cannot read recipe {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise structure_error(f"{path}: line {line} is not UTF-8 text", fix="save the recipe as UTF-8") from None
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


