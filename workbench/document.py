"""The edited document: model, task and an ordered chain of steps, as plain, mutable Python data.

Nothing here imports Qt, so it is tested without a window. Parsing, validation and the YAML
round trip are ``core.chain``'s (the same code the runner and the CLI use); this module only
adapts its immutable Recipe to the list the chain model edits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.models import DEFAULT_MODEL
from core.steps.base import get_step

DEFAULT_TASK = "sst2"


@dataclass
class ChainEntry:
    """One step of the chain: registry id, config as a dict of JSON values, enabled flag.

    A numeric field holding a list (where the config declares a scalar) is a sweep over its values.
    """

    step: str
    config: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def copy(self) -> ChainEntry:
        return ChainEntry(self.step, copy.deepcopy(self.config), self.enabled)


@dataclass
class Problem:
    """A validation finding that points at one step (index) and, when known, one field."""

    index: int
    field: str
    message: str


def default_config(step_id: str) -> dict[str, Any]:
    return get_step(step_id).config_cls().to_dict()


def sweep_fields(entry: ChainEntry) -> dict[str, list[Any]]:
    """Fields of ``entry`` that hold a list of values although the config declares a scalar."""
    cls = get_step(entry.step).config_cls
    out = {}
    for f in cls.describe():
        value = entry.config.get(f["name"])
        if not f["list"] and isinstance(value, (list, tuple)):
            out[f["name"]] = list(value)
    return out


def check_config(step_id: str, config: dict[str, Any]) -> None:
    """Build the config (every sweep value in turn); raise ConfigError naming the field."""
    cls = get_step(step_id).config_cls
    sweeps = sweep_fields(ChainEntry(step_id, config))
    for name, values in sweeps.items():
        if not values:
            raise ConfigError(f"{name}: a sweep needs at least one value", step=step_id, field=name)
    if not sweeps:
        cls.from_dict(dict(config), step=step_id)
        return
    for name, values in sweeps.items():
        for v in values:
            probe = {k: (sweeps[k][0] if k in sweeps else v2) for k, v2 in config.items()}
            probe[name] = v
            cls.from_dict(probe, step=step_id)


def validate_chain(entries: list[ChainEntry], *, model: str = DEFAULT_MODEL, task: str = DEFAULT_TASK,
                   extra: dict[str, Any] | None = None) -> list[Problem]:
    """Every problem of the chain, through ``core.chain.validate_recipe`` (the runner's own check).

    ``index`` is the 0-based chain position, or -1 for the recipe itself (model, task, teacher).
    """
    from core.chain import Recipe, validate_recipe

    doc = Document(model=model, task=task, steps=entries, extra=dict(extra or {}))
    try:
        recipe = Recipe.from_dict(doc.to_dict())
    except ConfigError as exc:
        problems = getattr(exc, "problems", None) or []
        return [Problem(-1 if p.index is None else p.index, p.field, _text(p)) for p in problems] or [
            Problem(-1, exc.field, str(exc))]
    return [Problem(-1 if p.index is None else p.index, p.field, _text(p)) for p in validate_recipe(recipe)]


def _text(problem: Any) -> str:
    return f"{problem.message}. Fix: {problem.fix}" if problem.fix else str(problem.message)


@dataclass
class Document:
    """Everything a recipe file holds; what the window edits. ``extra`` keeps the recipe keys the
    window does not edit (format, description, teacher, measure) and the custom task's ``data``
    mapping, so a round trip loses nothing."""

    model: str = DEFAULT_MODEL
    task: str = DEFAULT_TASK
    seed: int = 0
    name: str = ""
    steps: list[ChainEntry] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The recipe in core.chain's file layout."""
        data: dict[str, Any] = {"format": self.extra.get("format", 1)}
        if self.name:
            data["name"] = self.name
        if self.extra.get("description"):
            data["description"] = self.extra["description"]
        data["model"] = self.model
        data["task"] = self.task
        if self.extra.get("data") is not None:
            data["data"] = copy.deepcopy(self.extra["data"])
        if self.extra.get("teacher") is not None:
            data["teacher"] = self.extra["teacher"]
        data["seed"] = self.seed
        if self.extra.get("measure") is not None:
            data["measure"] = copy.deepcopy(self.extra["measure"])
        data["chain"] = [
            {"step": e.step, **({} if e.enabled else {"enabled": False}), "config": copy.deepcopy(e.config)}
            for e in self.steps
        ]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Document:
        """Through core.chain.Recipe: the same parsing, id resolution and migration as the runner."""
        from core.chain import Recipe

        recipe = Recipe.from_dict(data)
        steps = []
        for entry in recipe.chain:
            try:
                config = {**default_config(entry.step), **entry.config}
            except ConfigError as exc:
                raise ConfigError(f"Unknown step '{entry.step}': {exc}", step=entry.step) from None
            steps.append(ChainEntry(entry.step, config, entry.enabled))
        full = recipe.to_dict()
        extra = {k: full[k] for k in ("format", "description", "data", "teacher", "measure") if k in full}
        return cls(model=recipe.model, task=recipe.task, seed=recipe.seed, name=recipe.name, steps=steps, extra=extra)


def load_recipe(path: Path) -> Document:
    """Read a recipe file (YAML or JSON) into a document."""
    from core.chain import load_recipe as core_load

    recipe = core_load(path)
    return Document.from_dict(recipe.to_dict())


def save_recipe(doc: Document, path: Path) -> None:
    """Write through core.chain so the file is exactly what the CLI writes."""
    from core.chain import Recipe
    from core.chain import save_recipe as core_save

    core_save(Recipe.from_dict(doc.to_dict()), Path(path))
