"""The edited document: model, task and an ordered chain of steps, as plain Python data.

Nothing here imports Qt, so it is tested and serialised without a window. ``core.chain`` (when
present) does recipe validation and the YAML round trip; this module adapts to it and keeps a
plain-dict fallback so the window works before that module lands.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, WorkbenchError
from core.models import DEFAULT_MODEL
from core.steps.base import INITIAL_TRAITS, get_step

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


def validate_chain(entries: list[ChainEntry]) -> list[Problem]:
    """Every problem of the chain: bad configs and steps whose required traits are missing."""
    problems: list[Problem] = []
    traits = set(INITIAL_TRAITS)
    for i, entry in enumerate(entries):
        try:
            cls = get_step(entry.step)
        except ConfigError as exc:
            problems.append(Problem(i, "", str(exc)))
            continue
        try:
            check_config(entry.step, entry.config)
        except ConfigError as exc:
            problems.append(Problem(i, exc.field, str(exc)))
        if not entry.enabled:
            continue
        missing = set(cls.requires) - traits
        if missing:
            problems.append(
                Problem(
                    i,
                    "",
                    f"{cls.title} needs a {' '.join(sorted(missing))} model, but an earlier step "
                    f"removed that; move it before the step that did",
                )
            )
        traits = (traits - set(cls.removes)) | set(cls.adds)
    return problems


@dataclass
class Document:
    """Everything a recipe file holds; what the window edits."""

    model: str = DEFAULT_MODEL
    task: str = DEFAULT_TASK
    seed: int = 0
    name: str = ""
    steps: list[ChainEntry] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # recipe keys the window does not edit

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.extra)
        data.update(
            {
                "name": self.name,
                "model": self.model,
                "task": self.task,
                "seed": self.seed,
                "steps": [
                    {"step": e.step, "config": copy.deepcopy(e.config), **({} if e.enabled else {"enabled": False})}
                    for e in self.steps
                ],
            }
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Document:
        if not isinstance(data, dict):
            raise ConfigError("A recipe must be a mapping with model, task and steps")
        known = {"name", "model", "task", "seed", "steps"}
        steps = []
        for i, raw in enumerate(data.get("steps") or []):
            if not isinstance(raw, dict) or "step" not in raw:
                raise ConfigError(f"Recipe step {i + 1} needs a 'step' id")
            step_id = get_step(str(raw["step"])).id  # resolves renamed ids via the registry only
            config = dict(raw.get("config") or {})
            steps.append(ChainEntry(step_id, {**default_config(step_id), **config}, bool(raw.get("enabled", True))))
        model = data.get("model", DEFAULT_MODEL)
        if isinstance(model, dict):  # tolerate {"ref": ...} style model entries
            model = model.get("ref") or model.get("name") or DEFAULT_MODEL
        return cls(
            model=str(model),
            task=str(data.get("task", DEFAULT_TASK)),
            seed=int(data.get("seed", 0) or 0),
            name=str(data.get("name", "") or ""),
            steps=steps,
            extra={k: v for k, v in data.items() if k not in known},
        )


def load_recipe(path: Path) -> Document:
    """Read a recipe file (YAML or JSON) into a document."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"Cannot read recipe {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Recipe {path} is not valid YAML: {exc}") from exc
    return Document.from_dict(data)


def save_recipe(doc: Document, path: Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(doc.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
