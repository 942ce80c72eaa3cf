"""The step contract and the step registry.

A step *declaration* (id, title, category, config class, traits) imports without torch, so the
GUI can list and edit steps; ``apply()`` imports torch inside. Step modules in this package are
discovered automatically: adding a step is adding a module, never editing a central list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from core.errors import ConfigError, StepCancelled
from core.params import StepConfig

# Traits describe what kind of model flows between steps; chains are validated on them.
FLOAT = "float"  # weights are floating point tensors
TRAINABLE = "trainable"  # gradients flow: training steps may run
INITIAL_TRAITS = frozenset({FLOAT, TRAINABLE})


@dataclass
class ModelState:
    """The model flowing through a chain: a task-headed module, its tokenizer and its history.

    ``transforms`` is the ordered list of manifest entries the artifact codecs need to store and
    rebuild this model; each step that changes how weights are stored appends one.
    """

    model: Any
    tokenizer: Any
    task: str
    head: str
    transforms: list[dict[str, Any]] = field(default_factory=list)
    traits: frozenset[str] = INITIAL_TRAITS
    info: dict[str, Any] = field(default_factory=dict)  # step reports (sparsity, vocab stats, ...)


@dataclass
class StepContext:
    """What a running step may use. Steps never touch the database or the GUI."""

    seed: int
    task: Any  # core.tasks.Task
    scratch: Path
    progress: Callable[[float, str], None] = lambda fraction, message="": None
    log: Callable[[str], None] = lambda message: None
    cancelled: Callable[[], bool] = lambda: False
    teacher: Any = None  # a ModelState, for steps that distil
    threads: int | None = None

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise StepCancelled("Run cancelled by the user")


class Step:
    """Base class of compression steps. Subclasses set the class attributes and ``apply``."""

    id: ClassVar[str]
    title: ClassVar[str]
    category: ClassVar[str]  # "Training", "Distillation", "Pruning", "Quantization", "Structure", ...
    description: ClassVar[str] = ""
    config_cls: ClassVar[type[StepConfig]]
    requires: ClassVar[frozenset[str]] = frozenset({FLOAT})
    removes: ClassVar[frozenset[str]] = frozenset()
    adds: ClassVar[frozenset[str]] = frozenset()
    heads: ClassVar[frozenset[str] | None] = None  # task heads the step supports; None = any
    needs_teacher: ClassVar[bool] = False
    replaces: ClassVar[tuple[str, ...]] = ()  # former ids of this step

    def __init__(self, config: StepConfig) -> None:
        self.config = config

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        raise NotImplementedError

    @classmethod
    def migrate(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Bring a config dict saved by an older version of this step up to date."""
        return config


_REGISTRY: dict[str, type[Step]] = {}
_ALIASES: dict[str, str] = {}
_discovered = False


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: add a step to the registry. Duplicate ids are a programming error."""
    for name in (cls.id, *cls.replaces):
        if name in _REGISTRY or name in _ALIASES:
            raise RuntimeError(f"step id '{name}' registered twice")
    _REGISTRY[cls.id] = cls
    for old in cls.replaces:
        _ALIASES[old] = cls.id
    return cls


def discover() -> None:
    """Import every module of ``core.steps`` once so its steps register themselves."""
    global _discovered
    if _discovered:
        return
    import core.steps as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"core.steps.{info.name}")
    _discovered = True


def all_steps() -> list[type[Step]]:
    discover()
    return sorted(_REGISTRY.values(), key=lambda s: (s.category, s.title))


def get_step(step_id: str) -> type[Step]:
    """Resolve an id (or a former id) through the registry only, never an import path."""
    discover()
    step_id = _ALIASES.get(step_id, step_id)
    try:
        return _REGISTRY[step_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"Unknown step '{step_id}'. Known steps: {known}", step=step_id) from None


def canonical_id(step_id: str) -> str:
    return get_step(step_id).id
