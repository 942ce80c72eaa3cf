"""The recipe model: what to run, as immutable values that round-trip through a file.

A *chain* is an ordered list of (step id, config) entries; a *recipe* wraps it with the model,
the task (or the user's data file), the measurement settings, the seed, a name and a description.
Editing returns new values (``Chain.insert`` and friends), so the window's undo commands simply
hold the old and the new recipe. Step ids are resolved only through the step registry (renamed
ids through ``replaces``, old config versions through ``Step.migrate``). Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from core.backends.packages import BACKENDS
from core.errors import ConfigError, brief, brief_names, cap_message

BACKEND_CHOICES = BACKENDS  # what measure.backends may list (torch, onnxruntime, openvino)

RECIPE_FORMAT = 1
_TOP_KEYS = ("format", "name", "description", "model", "task", "data", "teacher", "seed", "seeds", "measure", "budget",
             "chain")
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

    def __post_init__(self) -> None:
        # The last guard: whatever a check quoted, a problem stays a readable line.
        object.__setattr__(self, "message", cap_message(self.message))
        object.__setattr__(self, "fix", cap_message(self.fix))
        object.__setattr__(self, "field", cap_message(str(self.field), 120))
        object.__setattr__(self, "step", cap_message(str(self.step), 120))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text}. Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    threads: int | None = None  # threads of every backend; None: torch's default
    # Runtimes each variant is exported to, checked on and timed on, side by side (core.backends).
    backends: tuple[str, ...] = ("torch",)
    # Time every variant again on the machine running the run, at its end, so that all latencies of a
    # run come from one machine (branches made on a Ray cluster were timed where they were made).
    retime_on_driver: bool = False

    # Upper bounds: beyond them a run never ends or runs out of memory (a typo, not a choice);
    # max_length is also checked against the model's position embeddings by validation.
    MAXIMA: ClassVar[dict[str, int]] = {
        "eval_batch_size": 1024, "max_length": 8192, "latency_batch_size": 1024, "latency_seq_len": 8192,
        "latency_warmup": 1000, "latency_repeats": 10_000, "threads": 1024,
    }

    def __post_init__(self) -> None:
        backends = self.backends
        if isinstance(backends, str) or not isinstance(backends, (list, tuple)) or not backends:
            raise ConfigError(f"measure.backends must be a list of runtimes such as [torch, onnxruntime, openvino], "
                              f"got {brief(backends)}", field="measure.backends")
        for name in backends:
            if name not in BACKENDS:
                raise ConfigError(f"measure.backends: unknown backend {brief(name)}; choose from {', '.join(BACKENDS)}",
                                  field="measure.backends")
        if len(set(backends)) != len(backends):
            raise ConfigError(f"measure.backends lists a backend twice: {brief(list(backends))}",
                              field="measure.backends")
        object.__setattr__(self, "backends", tuple(backends))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "backends":
                continue
            if f.name == "retime_on_driver":
                if not isinstance(value, bool):
                    raise ConfigError(f"measure.{f.name} must be true or false, got {value!r}", field=f"measure.{f.name}")
                continue
            if value is None and f.name in ("eval_limit", "threads"):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"measure.{f.name} must be a whole number, got {brief(value)}",
                                  field=f"measure.{f.name}")
            low = 0 if f.name == "latency_warmup" else 1
            if value < low:
                raise ConfigError(f"measure.{f.name} must be >= {low}, got {brief(value)}", field=f"measure.{f.name}")
            high = self.MAXIMA.get(f.name)
            if high is not None and value > high:
                raise ConfigError(f"measure.{f.name} must be <= {high:,}, got {brief(value)}",
                                  field=f"measure.{f.name}")

    @property
    def timed_on_backends(self) -> bool:
        """Whether variants are timed on more than torch alone (exported, checked, timed side by side)."""
        return self.backends != ("torch",)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["backends"] = list(self.backends)
        if not self.timed_on_backends:  # the default: keeps the cache keys of runs made before the setting
            del out["backends"]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> MeasureSettings:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"measure must be a mapping of settings, got {brief(data)}", field="measure")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names), key=str)
        if unknown:
            raise ConfigError(
                f"unknown measurement setting(s) {brief_names(unknown)}; known: {', '.join(names)}",
                field=f"measure.{brief(unknown[0]) if not isinstance(unknown[0], str) else unknown[0]}",
            )
        return cls(**data)


@dataclass(frozen=True)
class Budget:
    """An accuracy budget on a chain (``budget:`` in a recipe): how far the primary metric may fall
    below the reference (the run's first trained variant, core.store.rows.reference_of), in points
    (``metric_drop``: 1.0 = one point of accuracy, one F1 point) or relative (``metric_drop_pct``: 2.0 =
    2 % of the reference's value). Exactly one of the two. A variant over it is flagged "over budget"
    and nothing after it runs; in a sweep, values run in the order written and the first value over
    budget ends that sweep, so the sweep keeps its last value within budget."""

    metric_drop: float | None = None
    metric_drop_pct: float | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("metric_drop", "metric_drop_pct") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError("budget needs exactly one of metric_drop (points) or metric_drop_pct (percent), "
                              "e.g. budget: {metric_drop: 1.0}", field="budget")
        value = getattr(self, given[0])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"budget.{given[0]} must be a number >= 0, got {value!r}", field=f"budget.{given[0]}")
        if given[0] == "metric_drop_pct" and value > 100:
            raise ConfigError(f"budget.metric_drop_pct is a percentage (0-100), got {value}",
                              field="budget.metric_drop_pct")

    def allowed(self, reference: float, points: float) -> float:
        """The drop allowed below ``reference``, in the metric's own units (``points`` per unit)."""
        if self.metric_drop is not None:
            return float(self.metric_drop) / points
        return abs(reference) * float(self.metric_drop_pct or 0.0) / 100.0

    def describe(self) -> str:
        if self.metric_drop is not None:
            return f"{self.metric_drop:g} point(s)"
        return f"{self.metric_drop_pct:g} % of the reference"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Budget:
        if not isinstance(data, dict):
            raise ConfigError(f"budget must be a mapping like {{metric_drop: 1.0}}, got {data!r}", field="budget")
        unknown = sorted(set(data) - {"metric_drop", "metric_drop_pct"})
        if unknown:
            raise ConfigError(f"unknown budget key(s) {', '.join(unknown)}; known: metric_drop, metric_drop_pct",
                              field=f"budget.{unknown[0]}")
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
    stratify: bool = False  # each label keeps its share in the seeded dev split (false: the split of earlier files)
    name: str = ""  # default: the file's stem

    @property
    def task_id(self) -> str:
        return f"custom:{self.name or Path(self.path).stem}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        # stratify written only when on: files and cache keys from before it existed stay as they were
        return {k: v for k, v in out.items() if v is not None and (k not in ("name", "stratify") or v)}

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
                              "dev_path, dev_fraction, stratify, name)", field="data")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names), key=str)
        if unknown:
            raise ConfigError(f"unknown data key(s) {brief_names(unknown)}; known: {', '.join(names)}",
                              field=f"data.{unknown[0]}")
        for key in ("path", "text", "label"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise ConfigError(f"data.{key} is missing or not text", field=f"data.{key}")
        for key in ("text_pair", "dev_path", "name"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ConfigError(f"data.{key} must be text", field=f"data.{key}")
        if data.get("kind", "classification") not in ("classification", "regression"):
            raise ConfigError(f"data.kind must be 'classification' or 'regression', not {brief(data['kind'])}",
                              field="data.kind")
        fraction = data.get("dev_fraction", 0.2)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(f"data.dev_fraction must be a number between 0 and 1, got {brief(fraction)}",
                              field="data.dev_fraction")
        if data.get("stratify", False) is None:  # YAML's null: not set, as for dev_path
            data = {k: v for k, v in data.items() if k != "stratify"}
        if not isinstance(data.get("stratify", False), bool):
            raise ConfigError(f"data.stratify must be true or false, not {brief(data['stratify'])}", field="data.stratify")
        if data.get("stratify") and data.get("dev_path") is not None:
            raise ConfigError("data.stratify applies to the seeded split of one file, and data.dev_path gives a dev "
                              "file: remove one of them", field="data.stratify")
        if data.get("stratify") and data.get("kind") == "regression":
            raise ConfigError("data.stratify keeps each label's share in dev: it needs classification labels, not "
                              "kind: regression; remove it", field="data.stratify")
        return cls(**{**data, "dev_fraction": float(fraction), "name": (data.get("name") or "").strip()})


@dataclass(frozen=True)
class ChainEntry:
    """One step of a chain as written in the file: id, config version, raw config (may hold sweeps)."""

    step: str
    config: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    version: int = 1

    @classmethod
    def default(cls, step_id: str) -> ChainEntry:
        """A new entry of a registered step with every field at its default."""
        from core.steps.base import get_step

        step_cls = get_step(step_id)
        return cls(step=step_cls.id, config=step_cls.config_cls().to_dict(), version=step_cls.config_cls.version)

    def with_value(self, name: str, value: Any) -> ChainEntry:
        return dataclasses.replace(self, config={**self.config, name: value})

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
            raise structure_error(f"{where} must be a mapping with 'step' and 'config', got {brief(data)}", index=index)
        unknown = sorted(set(data) - set(_ENTRY_KEYS), key=str)
        if unknown:
            raise structure_error(
                f"{where} has unknown key(s) {brief_names(unknown)}; an entry has {', '.join(_ENTRY_KEYS)}",
                index=index,
                field=str(unknown[0]),
            )
        step = data.get("step")
        if not isinstance(step, str) or not step:
            raise structure_error(f"{where} has no step id ('step: <id>')", index=index, field="step")
        step_name = brief(step)[1:-1] if len(step) > 80 else step
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise structure_error(f"{where} ({step_name}): config must be a mapping, got {brief(config)}", index=index,
                                  field="config", fix="write the config as 'field: value' lines under 'config:'")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise structure_error(f"{where} ({step_name}): enabled must be true or false", index=index, field="enabled")
        version = data.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise structure_error(f"{where} ({step_name}): version must be a whole number >= 1", index=index,
                                  field="version")
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

    def duplicate(self, index: int) -> Chain:
        return self.insert(index + 1, self.entries[index])


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
    seeds: tuple[int, ...] = ()  # several seeds: every variant is made once per seed (mean and sd shown)
    budget: Budget | None = None  # an accuracy budget: variants over it are flagged and end their branch

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds a run walks the variant tree with: ``seeds``, or just ``seed``."""
        return self.seeds or (self.seed,)

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
        if self.seeds:
            out["seeds"] = list(self.seeds)
        out["measure"] = self.measure.to_dict()
        if self.budget is not None:
            out["budget"] = self.budget.to_dict()
        out["chain"] = [e.to_dict() for e in self.chain]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        if not isinstance(data, dict):
            raise structure_error(f"a recipe must be a mapping with {', '.join(_TOP_KEYS)}; got {type(data).__name__}",
                                  fix="start from a shipped recipe (resources/recipes) or 'model: ... task: ... chain: ...'")
        unknown = sorted(set(data) - set(_TOP_KEYS), key=str)
        if unknown:
            raise structure_error(
                f"unknown recipe key(s) {brief_names(unknown)}; a recipe has {', '.join(_TOP_KEYS)}",
                field=str(unknown[0]),
            )
        fmt = data.get("format", RECIPE_FORMAT)
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise structure_error(f"format must be a whole number, got {brief(fmt)}", field="format",
                                  fix=f"write 'format: {RECIPE_FORMAT}' or leave it out")
        if fmt > RECIPE_FORMAT:
            raise structure_error(
                f"recipe format {brief(fmt)} is newer than this workbench reads ({RECIPE_FORMAT})",
                field="format",
                fix="upgrade the workbench",
            )
        spec = None
        if data.get("data") is not None:
            try:
                spec = DataSpec.from_dict(data["data"])
            except ConfigError as exc:
                raise structure_error(str(exc), field=exc.field, fix="data holds path, text and label (the file and "
                                      "its columns), optionally text_pair, kind, dev_path, dev_fraction, stratify and name"
                                      ) from None
            task_id = data.get("task") or spec.task_id
            if task_id != spec.task_id:
                raise structure_error(f"task {brief(task_id)} does not match data: its task is '{spec.task_id}'", field="task",
                                 fix=f"set task to '{spec.task_id}' or leave it out")
            data = {**data, "task": task_id}
        for key in ("model", "task"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                example = ("'model: all-MiniLM-L6-v2' (the packaged default), a model folder or a hub id" if key == "model"
                           else "'task: sst2' (workbench-cli tasks lists them), or a 'data:' file of your own")
                raise structure_error(f"'{key}' is missing or not text", field=key, fix=f"add {example}")
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise structure_error(f"'{key}' must be text", field=key, fix=f"quote it: {key}: 'my text'")
        teacher = data.get("teacher")
        if teacher is not None and (not isinstance(teacher, str) or not teacher.strip()):
            raise structure_error("'teacher' must be 'parent' or a model reference", field="teacher",
                                  fix="write 'teacher: parent' (the model entering the step), a fine-tuned model "
                                      "folder, or leave it out")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise structure_error(f"seed must be a whole number, got {brief(seed)}", field="seed",
                                  fix="write a whole number, e.g. 'seed: 0'")
        if not -(2**63) <= seed < 2**63:  # torch.manual_seed takes a 64-bit integer
            raise structure_error(f"seed must fit in 64 bits (between -2**63 and 2**63 - 1), got {brief(seed)}",
                                  field="seed", fix="use a smaller seed, e.g. 0")
        seeds = data.get("seeds") or []
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise structure_error(f"seeds must be a list of whole numbers, like [1, 2, 3]; got {brief(seeds)}",
                                  field="seeds", fix="write e.g. 'seeds: [1, 2, 3]'")
        if not all(-(2**63) <= s < 2**63 for s in seeds):
            raise structure_error(f"seeds must fit in 64 bits; got {brief(seeds)}", field="seeds",
                                  fix="use smaller seeds, e.g. [1, 2, 3]")
        if len(set(seeds)) != len(seeds):
            raise structure_error(f"seeds lists a seed twice: {brief(seeds)}", field="seeds", fix="give each seed once")
        try:
            measure = MeasureSettings.from_dict(data.get("measure"))
        except ConfigError as exc:
            defaults = ", ".join(f"{k} {v}" for k, v in MeasureSettings().to_dict().items())
            raise structure_error(str(exc), field=exc.field,
                                  fix=f"correct it or leave it out for its default ({defaults})") from None
        try:
            budget = Budget.from_dict(data["budget"]) if data.get("budget") is not None else None
        except ConfigError as exc:
            raise structure_error(str(exc), field=exc.field,
                                  fix="write budget: {metric_drop: 1.0} (points) or {metric_drop_pct: 2} "
                                      "(percent of the reference metric), or leave it out") from None
        chain = data.get("chain") or []
        if not isinstance(chain, list):
            raise structure_error("chain must be a list of steps", field="chain",
                                  fix="write each step as a list item: '- step: finetune'")
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
            seeds=tuple(seeds),
            budget=budget,
        )

    def canonical_json(self) -> str:
        """Stable text for hashing and storing (sorted keys, no whitespace)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def structure_error(message: str, *, index: int | None = None, field: str = "", fix: str = "") -> RecipeError:
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


def recipe_task(recipe: Recipe) -> Any:
    """The recipe's Task; a ``data:`` file is read (once per file version) and registered first."""
    from core.tasks.base import get_task

    if recipe.data is not None:
        from core.tasks.custom import task_from_spec

        return task_from_spec(recipe.data)
    return get_task(recipe.task)
