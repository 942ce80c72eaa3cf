"""What flows between steps: the model state, the context a running step may use, and the traits
that describe a model so a chain can be validated before it runs.

The lowest engine layer (no torch at import): steps, artifacts, measurement and the runner all
build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StepCancelled

# Traits describe what kind of model flows between steps; chains are validated on them.
FLOAT = "float"  # weights are floating point tensors
TRAINABLE = "trainable"  # gradients flow: training steps may run
DEPLOYED = "deployed"  # the model is a backend artifact (core.backends): saved, loaded and run as that file
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
    # Training rows a step prepared for the training steps after it (split -> task-shaped rows, e.g.
    # augment.tinybert's augmented sentences); empty: training reads the task's own split.
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def derive(self, model: Any, **changes: Any) -> ModelState:
        """A new state around ``model`` with copies of this one's lists (the input stays untouched)."""
        base = {"tokenizer": self.tokenizer, "task": self.task, "head": self.head,
                "transforms": list(self.transforms), "traits": self.traits, "info": dict(self.info),
                "data": dict(self.data)}
        return ModelState(model=model, **{**base, **changes})


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
    curve: Callable[[str, str, int, float], None] = lambda phase, series, step, value: None  # training curves

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise StepCancelled("Run cancelled by the user")

    def scaled(self, start: float, end: float, prefix: str = "") -> StepContext:
        """This context with progress mapped into start..end (for multi-stage steps)."""

        def progress(fraction: float, message: str = "") -> None:
            self.progress(start + (end - start) * fraction, f"{prefix}{message}")

        def curve(phase: str, series: str, step: int, value: float) -> None:
            self.curve(prefix.rstrip(": ") or phase, series, step, value)  # the stage names the curve

        return dataclasses.replace(self, progress=progress, curve=curve)
