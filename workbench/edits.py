"""One undo command for every kind of edit: it holds the old and the new recipe.

Chain edits (add, remove, move, duplicate, enable, a field's value), the model, the task or data
file, the recipe's name and description and its measurement settings all go through
:func:`push_edit`, so each is one Ctrl+Z away and marks the window unsaved.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand, QUndoStack

from core.recipe import Recipe
from workbench.document import Document


class RecipeEdit(QUndoCommand):
    def __init__(self, document: Document, new: Recipe, text: str) -> None:
        super().__init__(text)
        self.document, self.old, self.new = document, document.recipe, new

    def redo(self) -> None:
        self.document.set_recipe(self.new)

    def undo(self) -> None:
        self.document.set_recipe(self.old)


def push_edit(stack: QUndoStack, document: Document, new: Recipe, text: str) -> None:
    """Apply ``new`` as one undoable edit (nothing when it equals the current recipe)."""
    if new != document.recipe:
        stack.push(RecipeEdit(document, new, text))
