"""The edited document: one immutable :class:`core.recipe.Recipe` (model, task or data file, chain,
name, description, measurement settings, seed) and the listeners that follow it.

Qt-free, so it is tested without a window. Every edit replaces the recipe with a new value; the
window wraps each replacement in an undo command holding the old and the new recipe
(:mod:`workbench.edits`), so every kind of edit is undoable and marks the window unsaved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.models import DEFAULT_MODEL
from core.recipe import Recipe, load_recipe, save_recipe

DEFAULT_TASK = "sst2"

Listener = Callable[[Recipe, Recipe], None]  # (old, new)


class Document:
    """The recipe being edited, where it lives on disk, and who wants to hear about changes."""

    def __init__(self, recipe: Recipe | None = None, path: Path | None = None) -> None:
        self._recipe = recipe or Recipe(model=DEFAULT_MODEL, task=DEFAULT_TASK)
        self.path = path
        self._listeners: list[Listener] = []

    @property
    def recipe(self) -> Recipe:
        return self._recipe

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def set_recipe(self, recipe: Recipe) -> None:
        """Replace the recipe and tell every listener (old, new); nothing happens when equal."""
        old, self._recipe = self._recipe, recipe
        if old != recipe:
            for listener in list(self._listeners):
                listener(old, recipe)

    def load(self, path: Path) -> None:
        """Read a recipe file (YAML or JSON) into this document; RecipeError names what is wrong."""
        recipe = load_recipe(path)
        self.path = path
        self.set_recipe(recipe)

    def save(self, path: Path) -> None:
        """Write through core.recipe, so the file is exactly what the CLI writes and reads."""
        save_recipe(self._recipe, path)
        self.path = path

    @property
    def title(self) -> str:
        return self.path.name if self.path else (self._recipe.name or "untitled")
