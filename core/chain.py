"""Chains and recipes: what to run, as a readable, diffable, versioned file.

A *chain* is an ordered list of (step id, config) entries. A *recipe* wraps a chain with the
model, the task, the measurement settings and the seed. Recipes are YAML or JSON (equally) and
round-trip exactly: ``loads(dumps(r)) == r`` and the text is a fixed point of load+dump.

Step ids are resolved only through :func:`core.steps.base.get_step` (renamed ids through
``replaces``, old config versions through ``Step.migrate``): a file never names an import path.

Validation runs before anything else and returns *every* problem, each naming the step (index and
id), the field and the fix, so the GUI can mark each offending step; :func:`check_recipe` raises on
them for the CLI. Any numeric field may hold a list of values: the chain then expands into a grid
of variants that share their common prefix (:func:`variant_tree`), so a prefix runs once.

Torch-free: the GUI imports this module.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, WorkbenchError

RECIPE_FORMAT = 1
_TOP_KEYS = ("format", "name", "description", "model", "task", "data", "teacher", "seed", "measure", "chain")
_ENTRY_KEYS = ("step", "version", "enabled", "config")


class RecipeError(ConfigError):
    """A recipe cannot be read or does not validate. ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        first = problems[0] if problems else None
        super().__init__(message, step=first.step if first else "", field=first.field if first else "")
        self.problems = list(problems or [])


@dataclass(frozen=True)
class Problem:
    """One validation problem. ``index`` is the 0-based chain position (None: the recipe itself)."""

    message: str
    fix: str = ""
    index: int | None = None
    step: str = ""
    field: str = ""

    @property
    def where(self) -> str:
        parts = []
        if self.index is not None:
            parts.append(f"step {self.index + 1} ({self.step})" if self.step else f"step {self.index + 1}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts) or "recipe"

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text}. Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class MeasureSettings:
    """How every variant is measured. Recorded with each run so numbers stay comparable."""

    eval_limit: int | None = 500  # dev examples evaluated (None: the whole split)
    eval_batch_size: int = 32
    max_length: int = 128
    latency_batch_size: int = 8
    latency_seq_len: int = 128
    latency_warmup: int = 3
    latency_repeats: int = 20
    threads: int | None = None  # torch threads; None: torch's default

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("eval_limit", "threads"):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"measure.{f.name} must be a whole number, got {value!r}", field=f"measure.{f.name}")
            low = 0 if f.name == "latency_warmup" else 1
            if value < low:
                raise ConfigError(f"measure.{f.name} must be >= {low}, got {value}", field=f"measure.{f.name}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> MeasureSettings:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"measure must be a mapping of settings, got {data!r}", field="measure")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown measurement setting(s) {', '.join(unknown)}; known: {', '.join(names)}",
                field=f"measure.{unknown[0]}",
            )
        return cls(**data)


@dataclass(frozen=True)
class DataSpec:
    """The recipe's ``data:``: the user's own data file(s) with a column mapping, run as the task
    ``custom:<name>`` (see core.tasks.custom). Relative paths are read from the recipe's folder."""

    path: str
    text: str
    label: str
    text_pair: str | None = None
    kind: str = "classification"  # or "regression"
    dev_path: str | None = None  # None: a seeded split of ``path``
    dev_fraction: float = 0.2
    name: str = ""  # default: the file's stem

    @property
    def task_id(self) -> str:
        return f"custom:{self.name or Path(self.path).stem}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if v is not None and (k != "name" or v)}

    def resolved(self, base: Path) -> DataSpec:
        """Paths made absolute against ``base`` (the recipe file's folder)."""
        def absolute(p: str) -> str:
            return p if Path(p).expanduser().is_absolute() else str(base / p)

        return dataclasses.replace(self, path=absolute(self.path),
                                   dev_path=None if self.dev_path is None else absolute(self.dev_path))

    @classmethod
    def from_dict(cls, data: Any) -> DataSpec:
        if not isinstance(data, dict):
            raise ConfigError("data must be a mapping: path, text, label (and optionally text_pair, kind, "
                              "dev_path, dev_fraction, name)", field="data")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown data key(s) {', '.join(unknown)}; known: {', '.join(names)}",
                              field=f"data.{unknown[0]}")
        for key in ("path", "text", "label"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise ConfigError(f"data.{key} is missing or not text", field=f"data.{key}")
        for key in ("text_pair", "dev_path", "name"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ConfigError(f"data.{key} must be text", field=f"data.{key}")
        if data.get("kind", "classification") not in ("classification", "regression"):
            raise ConfigError(f"data.kind must be 'classification' or 'regression', not {data['kind']!r}",
                              field="data.kind")
        fraction = data.get("dev_fraction", 0.2)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(f"data.dev_fraction must be a number between 0 and 1, got {fraction!r}",
                              field="data.dev_fraction")
        return cls(**{**data, "dev_fraction": float(fraction), "name": (data.get("name") or "").strip()})


@dataclass(frozen=True)
class ChainEntry:
    """One step of a chain as written in the file: id, config version, raw config (may hold sweeps)."""

    step: str
    config: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "version": self.version}
        if not self.enabled:
            out["enabled"] = False
        out["config"] = _plain(self.config)
        return out

    @classmethod
    def from_dict(cls, data: Any, index: int) -> ChainEntry:
        where = f"step {index + 1}"
        if isinstance(data, str):
            data = {"step": data}
        if not isinstance(data, dict):
            raise _structure(f"{where} must be a mapping with 'step' and 'config', got {data!r}", index=index)
        unknown = sorted(set(data) - set(_ENTRY_KEYS))
        if unknown:
            raise _structure(
                f"{where} has unknown key(s) {', '.join(unknown)}; an entry has {', '.join(_ENTRY_KEYS)}",
                index=index,
                field=unknown[0],
            )
        step = data.get("step")
        if not isinstance(step, str) or not step:
            raise _structure(f"{where} has no step id ('step: <id>')", index=index, field="step")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise _structure(f"{where} ({step}): config must be a mapping, got {config!r}", index=index, field="config")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _structure(f"{where} ({step}): enabled must be true or false", index=index, field="enabled")
        version = data.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise _structure(f"{where} ({step}): version must be a whole number >= 1", index=index, field="version")
        return _resolve_entry(cls(step=step, config=dict(config), enabled=enabled, version=version or 0))


@dataclass(frozen=True)
class Chain:
    """An ordered, immutable list of entries; editing returns a new chain (easy undo in the GUI)."""

    entries: tuple[ChainEntry, ...] = ()

    def __iter__(self) -> Iterator[ChainEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> ChainEntry:
        return self.entries[index]

    def insert(self, index: int, entry: ChainEntry) -> Chain:
        entries = list(self.entries)
        entries.insert(index, entry)
        return Chain(tuple(entries))

    def append(self, entry: ChainEntry) -> Chain:
        return Chain((*self.entries, entry))

    def remove(self, index: int) -> Chain:
        return Chain(self.entries[:index] + self.entries[index + 1 :])

    def move(self, source: int, dest: int) -> Chain:
        entries = list(self.entries)
        entries.insert(dest, entries.pop(source))
        return Chain(tuple(entries))

    def replace(self, index: int, entry: ChainEntry) -> Chain:
        entries = list(self.entries)
        entries[index] = entry
        return Chain(tuple(entries))


@dataclass(frozen=True)
class Recipe:
    """Everything needed to reproduce a run. ``teacher``: None, "parent" or a model reference."""

    model: str
    task: str
    chain: Chain = Chain()
    seed: int = 0
    measure: MeasureSettings = MeasureSettings()
    teacher: str | None = None
    name: str = ""
    description: str = ""
    format: int = RECIPE_FORMAT
    data: DataSpec | None = None  # the task's data when it is the user's own file

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        out["model"] = self.model
        out["task"] = self.task
        if self.data is not None:
            out["data"] = self.data.to_dict()
        if self.teacher is not None:
            out["teacher"] = self.teacher
        out["seed"] = self.seed
        out["measure"] = self.measure.to_dict()
        out["chain"] = [e.to_dict() for e in self.chain]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        if not isinstance(data, dict):
            raise _structure(f"a recipe must be a mapping with {', '.join(_TOP_KEYS)}; got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise _structure(
                f"unknown recipe key(s) {', '.join(unknown)}; a recipe has {', '.join(_TOP_KEYS)}", field=unknown[0]
            )
        fmt = data.get("format", RECIPE_FORMAT)
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise _structure("format must be a whole number", field="format")
        if fmt > RECIPE_FORMAT:
            raise _structure(
                f"recipe format {fmt} is newer than this workbench reads ({RECIPE_FORMAT})",
                field="format",
                fix="upgrade the workbench",
            )
        spec = None
        if data.get("data") is not None:
            try:
                spec = DataSpec.from_dict(data["data"])
            except ConfigError as exc:
                raise _structure(str(exc), field=exc.field) from None
            task_id = data.get("task") or spec.task_id
            if task_id != spec.task_id:
                raise _structure(f"task '{task_id}' does not match data: its task is '{spec.task_id}'", field="task",
                                 fix=f"set task to '{spec.task_id}' or leave it out")
            data = {**data, "task": task_id}
        for key in ("model", "task"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise _structure(f"'{key}' is missing or not text", field=key)
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise _structure(f"'{key}' must be text", field=key)
        teacher = data.get("teacher")
        if teacher is not None and (not isinstance(teacher, str) or not teacher.strip()):
            raise _structure("'teacher' must be 'parent' or a model reference", field="teacher")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise _structure(f"seed must be a whole number, got {seed!r}", field="seed")
        try:
            measure = MeasureSettings.from_dict(data.get("measure"))
        except ConfigError as exc:
            raise _structure(str(exc), field=exc.field) from None
        chain = data.get("chain") or []
        if not isinstance(chain, list):
            raise _structure("chain must be a list of steps", field="chain")
        return cls(
            model=data["model"].strip(),
            task=data["task"].strip(),
            chain=Chain(tuple(ChainEntry.from_dict(e, i) for i, e in enumerate(chain))),
            seed=seed,
            measure=measure,
            teacher=teacher.strip() if isinstance(teacher, str) else None,
            name=data.get("name", ""),
            description=data.get("description", ""),
            format=RECIPE_FORMAT,
            data=spec,
        )

    def canonical_json(self) -> str:
        """Stable text for hashing and storing (sorted keys, no whitespace)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def _structure(message: str, *, index: int | None = None, field: str = "", fix: str = "") -> RecipeError:
    problem = Problem(message=message, fix=fix, index=index, field=field)
    return RecipeError(str(problem), [problem])


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively: files hold plain YAML/JSON values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _resolve_entry(entry: ChainEntry) -> ChainEntry:
    """Canonical id and current config version, when the step is known (unknown ids stay for validation).

    An entry without a version (version 0 here) is taken as written for the current config version;
    only an explicitly older version is migrated.
    """
    from core.steps.base import get_step

    try:
        step_cls = get_step(entry.step)
    except ConfigError:
        return dataclasses.replace(entry, version=entry.version or 1)
    config = dict(entry.config)
    current = step_cls.config_cls.version
    if 0 < entry.version < current:
        config = step_cls.migrate(config, entry.version)
    return ChainEntry(step=step_cls.id, config=config, enabled=entry.enabled, version=max(entry.version, current))


# --------------------------------------------------------------------------------------------
# Files


def loads_recipe(text: str, fmt: str = "yaml", *, source: str = "<recipe>") -> Recipe:
    """Parse recipe text (``fmt`` is "yaml" or "json"; JSON is valid YAML, YAML is the default)."""
    import yaml

    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc)
        raise _structure(f"{source}{at}: YAML syntax error: {why}", fix="correct the YAML at that line") from None
    except json.JSONDecodeError as exc:
        raise _structure(f"{source}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}") from None
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


def recipe_task(recipe: Recipe) -> Any:
    """The recipe's Task; a ``data:`` file is read (once per file version) and registered first."""
    from core.tasks.base import get_task

    if recipe.data is not None:
        from core.tasks.custom import task_from_spec

        return task_from_spec(recipe.data)
    return get_task(recipe.task)


def dumps_recipe(recipe: Recipe, fmt: str = "yaml") -> str:
    import yaml

    data = recipe.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    path = Path(path)
    path.write_text(dumps_recipe(recipe, "json" if path.suffix.lower() == ".json" else "yaml"), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Sweeps


def _sweep_fields(step_cls: Any, config: dict[str, Any]) -> dict[str, list[Any]]:
    """Fields holding a list of values where the config declares a single number: the sweep axes."""
    axes: dict[str, list[Any]] = {}
    for f, _meta, _elem, is_list in step_cls.config_cls.fields_meta():
        value = config.get(f.name)
        if isinstance(value, (list, tuple)) and not is_list:
            axes[f.name] = list(value)
    return axes


def entry_configs(entry: ChainEntry) -> list[dict[str, Any]]:
    """The concrete config dicts an entry expands into (one unless a field holds a sweep list)."""
    from core.steps.base import get_step

    step_cls = get_step(entry.step)
    axes = _sweep_fields(step_cls, entry.config)
    if not axes:
        return [dict(entry.config)]
    names = list(axes)
    return [{**entry.config, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*axes.values())]


@dataclass(frozen=True)
class ResolvedStep:
    """One concrete step of one variant: chain position, canonical id, full validated config."""

    index: int  # 0-based position in the recipe's chain
    step: str
    config: Any  # the StepConfig instance
    swept: tuple[str, ...] = ()  # fields that came from a sweep list

    @property
    def label(self) -> str:
        if not self.swept:
            return self.step
        values = self.config.to_dict()
        return f"{self.step}(" + ", ".join(f"{k}={values[k]}" for k in self.swept) + ")"


@dataclass
class VariantNode:
    """A node of the variant tree; the root (``step is None``) is the baseline."""

    step: ResolvedStep | None
    children: list[VariantNode] = field(default_factory=list)

    def walk(self) -> Iterator[VariantNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def count(self) -> int:
        return sum(1 for _ in self.walk())


def resolve_entry(entry: ChainEntry, index: int) -> list[ResolvedStep]:
    """Concrete, validated steps for one enabled entry (raises ConfigError on a bad value)."""
    from core.steps.base import get_step

    step_cls = get_step(entry.step)
    swept = tuple(_sweep_fields(step_cls, entry.config))
    out = []
    for values in entry_configs(entry):
        config = step_cls.config_cls.from_dict(values, step=step_cls.id)
        out.append(ResolvedStep(index=index, step=step_cls.id, config=config, swept=swept))
    return out


def variant_tree(recipe: Recipe) -> VariantNode:
    """The grid of variants as a prefix tree: each sweep value branches, shared prefixes run once."""
    root = VariantNode(step=None)
    leaves = [root]
    for index, entry in enumerate(recipe.chain):
        if not entry.enabled:
            continue
        steps = resolve_entry(entry, index)
        new_leaves = []
        for leaf in leaves:
            for step in steps:
                child = VariantNode(step=step)
                leaf.children.append(child)
                new_leaves.append(child)
        leaves = new_leaves
    return root


def expand(recipe: Recipe) -> list[list[ResolvedStep]]:
    """Every variant of the grid as a flat list of steps (for display; the runner uses the tree)."""

    def paths(node: VariantNode, prefix: list[ResolvedStep]) -> Iterator[list[ResolvedStep]]:
        here = prefix + ([node.step] if node.step else [])
        if not node.children:
            yield here
        for child in node.children:
            yield from paths(child, here)

    return list(paths(variant_tree(recipe), []))


# --------------------------------------------------------------------------------------------
# Validation


def _trait_words(traits: frozenset[str] | set[str]) -> str:
    return ", ".join(f"'{t}'" for t in sorted(traits))


def validate_recipe(recipe: Recipe, *, check_files: bool = True) -> list[Problem]:
    """Every problem of the recipe, in chain order. Empty list: it may run.

    Checks the model reference, the task and its data, each step id and value (sweep values one
    by one), the order of steps through their traits, task heads, and teachers for distillation.
    """
    from core.models import ModelRef
    from core.steps.base import INITIAL_TRAITS, TRAINABLE, get_step
    from core.tasks.base import datasets_dir

    problems: list[Problem] = []

    try:
        ref = ModelRef.parse(recipe.model)
        if check_files and ref.kind != "hub":
            folder = ref.local_folder()
            if folder is not None:
                _check_model_folder(folder)
    except WorkbenchError as exc:
        problems.append(Problem(str(exc), "give the packaged default, a model folder or a hub id", field="model"))

    task = None
    try:
        task = recipe_task(recipe)
    except WorkbenchError as exc:
        if recipe.data is not None:
            problems.append(Problem(str(exc), "correct the data file or its column mapping", field="data"))
        else:
            problems.append(Problem(str(exc), "use one of the listed task ids (workbench-cli tasks)", field="task"))
    if task is not None and check_files and task.family in ("glue", "squad"):
        folder = datasets_dir() / task.id
        if not folder.is_dir() or not any(folder.iterdir()):
            problems.append(
                Problem(f"the bundled data for {task.title} is missing ({folder})", "reinstall the workbench", field="task")
            )
    if task is not None and "dev" not in task.splits:
        problems.append(Problem(f"task {task.title} has no 'dev' split to evaluate on", field="task"))

    if recipe.teacher not in (None, "parent"):
        try:
            ModelRef.parse(recipe.teacher or "")
        except WorkbenchError as exc:
            problems.append(Problem(str(exc), "set teacher to 'parent' or a fine-tuned model folder", field="teacher"))

    traits = set(INITIAL_TRAITS)
    removed_by: dict[str, tuple[int, str]] = {}
    trained_before = False
    for index, entry in enumerate(recipe.chain):
        try:
            step_cls = get_step(entry.step)
        except ConfigError:
            from core.steps.base import all_steps

            known = ", ".join(s.id for s in all_steps()) or "none registered"
            problems.append(
                Problem(f"unknown step '{entry.step}'", f"use one of: {known}", index=index, step=entry.step, field="step")
            )
            continue
        problems.extend(_config_problems(step_cls, entry, index))
        if not entry.enabled:
            continue

        missing = set(step_cls.requires) - traits
        for trait in sorted(missing):
            if trait in removed_by:
                j, other = removed_by[trait]
                fix = f"move '{step_cls.id}' before step {j + 1} ({other}), or remove step {j + 1}"
                why = f"needs a {trait} model, but step {j + 1} ({other}) made it no longer {trait}"
            else:
                fix = f"add a step that produces a {trait} model before it"
                why = f"needs a {trait} model, which no earlier step produces"
            problems.append(Problem(why, fix, index=index, step=step_cls.id))
        if task is not None and step_cls.heads is not None and task.head not in step_cls.heads:
            problems.append(
                Problem(
                    f"works only on {', '.join(sorted(step_cls.heads))} tasks, but {task.id} is a {task.head} task",
                    f"remove '{step_cls.id}' or pick a {' or '.join(sorted(step_cls.heads))} task",
                    index=index,
                    step=step_cls.id,
                )
            )
        if step_cls.needs_teacher and recipe.teacher is None and not trained_before:
            problems.append(
                Problem(
                    "needs a fine-tuned teacher, and nothing before it trains the model",
                    "add a 'finetune' step before it, or set 'teacher:' in the recipe to 'parent' "
                    "(the incoming model) or a fine-tuned model folder",
                    index=index,
                    step=step_cls.id,
                    field="teacher",
                )
            )
        if TRAINABLE in step_cls.requires and task is not None and "train" not in task.splits:
            problems.append(
                Problem(
                    f"trains the model, but task {task.title} has no 'train' split",
                    "remove the training step or pick a task with training data",
                    index=index,
                    step=step_cls.id,
                )
            )
        if TRAINABLE in step_cls.requires:
            trained_before = True
        for trait in step_cls.removes:
            removed_by[trait] = (index, step_cls.id)
        traits = (traits - set(step_cls.removes)) | set(step_cls.adds)
    return problems


def _check_model_folder(folder: Path) -> None:
    """Cheap, torch-free presence check (the GUI validates on every edit); loading checks the rest."""
    from core.errors import ModelLoadError

    if not folder.is_dir():
        raise ModelLoadError(f"Model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a model folder: it has no config.json")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        raise ModelLoadError(f"{folder} has no weights (model.safetensors or pytorch_model.bin)")


def _config_problems(step_cls: Any, entry: ChainEntry, index: int) -> list[Problem]:
    """Bad values of one entry: unknown fields, sweep lists where no sweep is allowed, each sweep value."""
    problems: list[Problem] = []
    meta_by_name = {f.name: (meta, elem, is_list) for f, meta, elem, is_list in step_cls.config_cls.fields_meta()}
    for name, value in entry.config.items():
        if name not in meta_by_name:
            problems.append(
                Problem(
                    f"unknown field '{name}'",
                    f"use one of: {', '.join(meta_by_name)}",
                    index=index,
                    step=step_cls.id,
                    field=name,
                )
            )
            continue
        meta, elem, is_list = meta_by_name[name]
        if isinstance(value, (list, tuple)) and not is_list:
            if elem not in (int, float) or not meta.sweepable:
                problems.append(
                    Problem(
                        f"{meta.label} cannot be swept (only numeric fields take a list of values)",
                        "give a single value",
                        index=index,
                        step=step_cls.id,
                        field=name,
                    )
                )
            elif not value:
                problems.append(
                    Problem("the sweep list is empty", "give at least one value", index=index, step=step_cls.id, field=name)
                )
    if problems:
        return problems
    seen: set[str] = set()
    for values in entry_configs(entry):
        try:
            step_cls.config_cls.from_dict(values, step=step_cls.id)
        except ConfigError as exc:
            message = str(exc).removeprefix(f"step '{step_cls.id}': ")
            if message in seen:
                continue
            seen.add(message)
            problems.append(
                Problem(message, _fix_for(step_cls, exc.field), index=index, step=step_cls.id, field=exc.field)
            )
    return problems


def _fix_for(step_cls: Any, name: str) -> str:
    for f, meta, _elem, _is_list in step_cls.config_cls.fields_meta():
        if f.name != name:
            continue
        bits = []
        if meta.choices is not None:
            bits.append("one of " + ", ".join(map(str, meta.choices)))
        if meta.min is not None:
            bits.append(f"{'>' if meta.min_exclusive else '>='} {meta.min}")
        if meta.max is not None:
            bits.append(f"<= {meta.max}")
        default = f.default if f.default is not dataclasses.MISSING else None
        hint = f" (default {default})" if default is not None else ""
        return f"set {name} to a value " + (" and ".join(bits) if bits else "of the right type") + hint
    return "correct the value"


def check_recipe(recipe: Recipe, *, check_files: bool = True) -> None:
    """Raise :class:`RecipeError` listing every problem (the first in the message) when invalid."""
    problems = validate_recipe(recipe, check_files=check_files)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise RecipeError(f"{problems[0]}{more}", problems)
