"""The step contract and the step registry.

A step *declaration* (id, title, category, config class, traits) imports without torch, so the
GUI can list and edit steps; ``apply()`` imports torch inside. Step modules in this package are
discovered automatically: adding a step is adding a module, never editing a central list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.errors import ConfigError
from core.params import StepConfig
from core.state import FLOAT, ModelState, StepContext


@dataclass(frozen=True)
class Resources:
    """What making one variant of a step asks of a Ray node (scheduling requests, not limits): the
    apply, the save and the measuring. Torch on that node runs as many threads as ``cpus``."""

    cpus: float = 1.0
    memory_gb: float = 2.0


TRAINING_RESOURCES = Resources(cpus=1.0, memory_gb=4.0)  # optimizer state, activations kept for backward


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
    compresses: ClassVar[bool] = True  # False for steps that only train: no "not smaller on disk" flag
    keeps_depth: ClassVar[bool] = True  # False when the model leaving may have other transformer layers
    replaces: ClassVar[tuple[str, ...]] = ()  # former ids of this step
    resources: ClassVar[Resources] = Resources()  # what one variant asks of a Ray node (core.run.cluster)

    def __init__(self, config: StepConfig) -> None:
        self.config = config

    def apply(self, state: ModelState, ctx: StepContext) -> ModelState:
        raise NotImplementedError

    @classmethod
    def migrate(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Bring a config dict saved by an older version of this step up to date."""
        return config

    @classmethod
    def vocabulary_problems(cls, config: dict[str, Any], incoming: Any,
                            facts: Callable[[str], Any]) -> list[tuple[str, str]]:
        """Before anything runs: (field, message) for each model this step combines with the one
        entering it whose vocabulary differs. ``config`` holds every field (defaults filled in);
        ``incoming`` is the entering model's ``core.models.ModelFacts`` (None: not known before
        running); ``facts(reference)`` reads a named model's facts (None when it cannot be read)."""
        return []

    @classmethod
    def vocabulary_after(cls, config: dict[str, Any], incoming: Any, facts: Callable[[str], Any]) -> Any:
        """The ModelFacts of the model leaving this step as far as validation cares (its vocabulary and
        positions); None when only running tells."""
        return incoming

    @classmethod
    def depth_problems(cls, config: dict[str, Any], layers: int) -> list[tuple[str, str]]:
        """Before anything runs: (field, message) for each value that names a transformer layer the model
        entering this step (``layers`` deep) does not have. ``config`` holds every field."""
        return []

    @classmethod
    def missing_packages(cls, config: dict[str, Any]) -> list[str]:
        """Optional packages this config needs that are not installed (found without importing them)."""
        return []

    def reads(self, task_id: str) -> dict[str, Any]:
        """What the step reads besides the model entering it and the run's own data, by config field:
        a ``core.models.ModelRef`` or a ``core.tasks`` task. The cache key hashes their content, so a
        retrained model in the same folder makes the variant again. By default the models that the
        config's model fields name; ``task_id`` is the run's task."""
        from core.errors import ModelLoadError
        from core.models import ModelRef

        out: dict[str, Any] = {}
        for f, meta, _, _ in self.config.fields_meta():
            value = getattr(self.config, f.name)
            if meta.model_ref and isinstance(value, str) and value.strip():
                try:
                    out[f.name] = ModelRef.parse(value)
                except ModelLoadError:  # validation names the field; the key keeps the text only
                    continue
        return out

    def training_work(self, train_rows: int, task_id: str = "") -> float | None:
        """Roughly how many one-row forward passes ``apply`` costs when the task (``task_id``) has
        ``train_rows`` training rows (a backward pass counts as two), so the progress bar can give a step
        the run has not timed yet its share of the node; None: the step does not train, or cannot tell."""
        return None

    @classmethod
    def size_ratio(cls, config: dict[str, Any]) -> tuple[float, float]:
        """Before anything runs: the artifact bytes this step's output takes over its input's, as
        (embedding tables, every other weight), for validation's disk estimate. The default, the
        same size, is an upper bound for the steps that prune, share, sketch or distil."""
        return 1.0, 1.0


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


def is_registered(step_id: str) -> bool:
    """Whether ``step_id`` (or a former id) names a registered step."""
    discover()
    return step_id in _REGISTRY or step_id in _ALIASES


def get_step(step_id: str) -> type[Step]:
    """Resolve an id (or a former id) through the registry only, never an import path."""
    discover()
    step_id = _ALIASES.get(step_id, step_id)
    try:
        return _REGISTRY[step_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"Unknown step '{step_id}'. Known steps: {known}", step=step_id) from None


def load_state(folder: Path, *, threads: int | None = None) -> ModelState:
    """A saved variant as a model state, every step's codec registered first. A backend artifact
    (``quantize.static_int8``) opens on its backend with ``threads`` threads."""
    from core.artifacts import load_artifact
    from core.backends.artifact import is_backend_artifact, load_deployed_state

    if is_backend_artifact(folder):
        return load_deployed_state(folder, threads=threads)

    discover()
    return load_artifact(folder).state()
