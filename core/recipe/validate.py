"""Validation: every problem of a recipe, each naming the step (index and id), the field and the fix,
so the window can mark each offending step before anything runs; :func:`check_recipe` raises on
them for the CLI."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.errors import ConfigError, WorkbenchError, brief
from core.recipe.estimate import MAX_VARIANTS, count_variants
from core.recipe.model import ChainEntry, Problem, Recipe, RecipeError, recipe_task
from core.recipe.sweep import entry_configs, sweep_fields

_MODEL_FIX = ("choose a complete model folder (config.json, model.safetensors and tokenizer files), "
              "the packaged default all-MiniLM-L6-v2, or a hub model downloaded before")
# Configs of one entry validated one by one; a larger sweep is checked value by value per field.
_MAX_COMBINATIONS = 10_000
_MAX_PROBLEMS_PER_ENTRY = 10


def validate_recipe(recipe: Recipe, *, check_files: bool = True) -> list[Problem]:
    """Every problem of the recipe, in chain order. Empty list: it may run.

    Checks the model reference, the task and its data, each step id and value (sweep values one
    by one), the order of steps through their traits, task heads, and teachers for distillation.
    With ``check_files`` it also checks, without torch and cached per file version, every model
    the recipe names (folder, config, safetensors structure, tokenizer; a hub id that cannot be
    fetched), sequence lengths against the model's positions, and that models combined by
    distillation share one vocabulary.
    """
    from core.models import ModelRef
    from core.state import INITIAL_TRAITS, TRAINABLE
    from core.steps.base import get_step
    from core.tasks.base import datasets_dir, head_carry_over_problem

    problems: list[Problem] = []
    incoming: Any = None  # ModelFacts of the model entering the current step, when known
    manifest: dict[str, Any] | None = None  # of a stored variant given as the model

    try:
        ModelRef.parse(recipe.model)
        if check_files:
            incoming, manifest = model_facts(recipe.model)
    except WorkbenchError as exc:
        problems.append(Problem(str(exc), _MODEL_FIX, field="model"))

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
    if task is not None and manifest is not None and manifest["head"] != task.head:
        problems.append(Problem(f"the model is a stored variant with a {manifest['head']} head; task {task.id} needs "
                                f"a {task.head} head", "choose a variant of this task, or the task it was made for",
                                field="model"))
    if task is not None and manifest is not None and manifest["head"] == task.head and incoming is not None:
        # load_start's rule, read without torch
        problem = head_carry_over_problem(manifest["task"], incoming.labels, task)
        if problem:
            problems.append(Problem(f"the model is a stored variant made for task {manifest['task']}: {problem}",
                                    "choose a variant of this task, or the task it was made for", field="model"))
    if incoming is not None:
        problems.extend(_length_problems(recipe, incoming))
    problems.extend(_backend_problems(recipe))

    teacher: Any = None
    if recipe.teacher not in (None, "parent"):
        try:
            ModelRef.parse(recipe.teacher or "")
            if check_files:
                teacher, _ = model_facts(recipe.teacher or "")
        except WorkbenchError as exc:
            problems.append(Problem(str(exc), "set teacher to 'parent' or a fine-tuned model folder", field="teacher"))

    variants = count_variants(recipe)
    if variants > MAX_VARIANTS:
        problems.append(Problem(
            f"the chain expands to {variants:,} variants{'' if variants <= 10 * MAX_VARIANTS else ' or more'}; "
            f"the workbench plans at most {MAX_VARIANTS:,}",
            "sweep fewer values: each list multiplies the variants of every later step", field="chain"))
        return problems  # building or checking that many configs would itself hang

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
                Problem(f"unknown step {brief(entry.step)}", f"use one of: {known}", index=index,
                        step=entry.step if len(entry.step) <= 40 else brief(entry.step, 40), field="step")
            )
            continue
        own = entry_problems(entry, index)
        problems.extend(own)
        if not entry.enabled:
            continue
        if not own:
            missing = sorted({m for config in _configs_to_check(entry) for m in step_cls.missing_packages(config)})
            if missing:
                from core.backends.packages import INSTALL_HINT, missing_message

                problems.append(Problem(missing_message(f"'{step_cls.id}' as configured", missing),
                                        f"run {INSTALL_HINT}, or remove the step", index=index, step=step_cls.id,
                                        field="backend"))
        if check_files and not own:
            model_problems, incoming = _model_problems(step_cls, entry, index, incoming, teacher, recipe.teacher)
            problems.extend(model_problems)

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


def model_facts(text: str) -> tuple[Any, dict[str, Any] | None]:
    """(ModelFacts or None for a hub id, the checked manifest of a stored variant or None) of a model reference,
    checked without torch; raises a WorkbenchError naming the file and what is wrong, or why a hub
    id cannot be fetched here. Cached per file version (core.models.inspect_model_folder)."""
    import json

    from core.artifacts import MANIFEST, check_manifest
    from core.errors import ArtifactError, ModelLoadError
    from core.models import ModelRef, hub_problem, inspect_model_folder

    ref = ModelRef.parse(text)
    folder = ref.local_folder()
    if folder is None:
        why = hub_problem(ref)
        if why:
            raise ModelLoadError(why)
        return None, None
    data = None
    manifest = folder / MANIFEST
    if manifest.is_file():  # a stored variant as the model
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{manifest} is not valid JSON: {exc}") from None
        check_manifest(data, manifest)
    return inspect_model_folder(folder), data


def _facts_or_none(text: str) -> Any:
    try:
        return model_facts(text)[0]
    except WorkbenchError:
        return None  # reported where the field is checked


def _backend_problems(recipe: Recipe) -> list[Problem]:
    """A backend in measure.backends whose packages are missing (the deploy extra)."""
    from core.backends.packages import EXPORT_NEEDS, INSTALL_HINT, missing_message, missing_packages

    out = []
    for backend in recipe.measure.backends:
        missing = missing_packages(EXPORT_NEEDS[backend])
        if missing:
            out.append(Problem(missing_message(f"measure.backends: {backend}", missing),
                               f"run {INSTALL_HINT}, or remove {backend} from measure.backends",
                               field="measure.backends"))
    return out


def _length_problems(recipe: Recipe, facts: Any) -> list[Problem]:
    """Measurement lengths the model's position embeddings cannot take (an IndexError at run time)."""
    out = []
    limit = facts.max_positions
    for name in ("max_length", "latency_seq_len"):
        value = getattr(recipe.measure, name)
        if limit is not None and value > limit:
            out.append(Problem(f"measure.{name} is {value:,} tokens, but the model takes at most {limit:,} "
                               "(config.json max_position_embeddings)", f"set measure.{name} to {limit} or less",
                               field=f"measure.{name}"))
    return out


def _model_problems(step_cls: Any, entry: ChainEntry, index: int, incoming: Any, teacher: Any,
                    teacher_ref: str | None) -> tuple[list[Problem], Any]:
    """Problems of the models a step names or combines, and the facts of the model leaving it."""
    from core.models import vocabulary_mismatch

    out: list[Problem] = []
    config = {f.name: f.default for f, *_ in step_cls.config_cls.fields_meta()} | entry.config
    for f, meta, _elem, _is_list in step_cls.config_cls.fields_meta():
        value = config.get(f.name)
        if meta.model_ref and isinstance(value, str) and value.strip():
            try:
                model_facts(value)
            except WorkbenchError as exc:
                out.append(Problem(str(exc), _MODEL_FIX, index=index, step=step_cls.id, field=f.name))
        elif meta.unit == "tokens" and incoming is not None and incoming.max_positions is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            longest = max((v for v in values if isinstance(v, int)), default=0)
            if longest > incoming.max_positions:
                out.append(Problem(f"{meta.label} ({f.name}) is {longest:,} tokens, but the model takes at most "
                                   f"{incoming.max_positions:,} (config.json max_position_embeddings)",
                                   f"set {f.name} to {incoming.max_positions} or less",
                                   index=index, step=step_cls.id, field=f.name))
    if out:
        return out, None
    for name, message in step_cls.vocabulary_problems(config, incoming, _facts_or_none):
        out.append(Problem(message, "use models that share one tokenizer (the same vocabulary file)",
                           index=index, step=step_cls.id, field=name))
    if incoming is not None and incoming.layers is not None:
        out.extend(Problem(message, f"name layers 0-{incoming.layers - 1}, or none", index=index, step=step_cls.id,
                           field=name) for name, message in step_cls.depth_problems(config, incoming.layers))
    if step_cls.needs_teacher and teacher is not None and incoming is not None:
        why = vocabulary_mismatch(f"the teacher {brief(teacher_ref)}", teacher, "the student", incoming)
        if why:
            out.append(Problem(why, "use a teacher fine-tuned from a model with the student's tokenizer",
                               index=index, step=step_cls.id, field="teacher"))
    leaving = step_cls.vocabulary_after(config, incoming, _facts_or_none)
    if leaving is not None and not step_cls.keeps_depth:
        leaving = dataclasses.replace(leaving, layers=None)  # only running tells how deep the model leaving is
    return out, leaving


def entry_problems(entry: ChainEntry, index: int) -> list[Problem]:
    """Bad values of one entry of a registered step: unknown fields, sweep lists where no sweep is
    allowed, and each sweep value in turn. The step editor checks every edit with it."""
    from core.steps.base import get_step

    step_cls = get_step(entry.step)
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
    import math

    combinations = math.prod(len(v) for v in sweep_fields(entry).values())
    if combinations > MAX_VARIANTS:
        return [Problem(f"this step's sweep lists combine into {combinations:,} configurations; the workbench "
                        f"plans at most {MAX_VARIANTS:,} variants", "sweep fewer values", index=index,
                        step=step_cls.id)]
    seen: set[str] = set()
    # Each field on its own first (type, range, choices), so every bad field is named at once,
    # not only the first one the config's constructor meets; then the whole config (cross-field).
    try:
        defaults = step_cls.config_cls()
    except ConfigError:
        defaults = None
    fields = {f.name: f for f, _meta, _elem, _is_list in step_cls.config_cls.fields_meta()}
    for name, value in entry.config.items() if defaults is not None else ():
        is_list = meta_by_name[name][2]
        values = value if isinstance(value, (list, tuple)) and not is_list else [value]
        named = 0  # every bad value of a sweep at once (a few), not one per attempt to run
        for v in values:
            try:
                defaults._check_field(fields[name], tuple(v) if isinstance(v, list) else v)
            except ConfigError as exc:
                message = str(exc)
                if message not in seen:
                    seen.add(message)
                    problems.append(Problem(message, _fix_for(step_cls, name), index=index, step=step_cls.id,
                                            field=name))
                    named += 1
                if named >= _MAX_PROBLEMS_PER_ENTRY:
                    break
    failing = len(problems)  # the per-field ones count towards the listed maximum
    for values in _configs_to_check(entry):
        try:
            step_cls.config_cls.from_dict(values, step=step_cls.id)
        except ConfigError as exc:
            message = str(exc).removeprefix(f"step '{step_cls.id}': ")
            if message in seen:
                continue
            seen.add(message)
            failing += 1
            if failing <= _MAX_PROBLEMS_PER_ENTRY:
                problems.append(
                    Problem(message, _fix_for(step_cls, exc.field), index=index, step=step_cls.id, field=exc.field)
                )
    if failing > _MAX_PROBLEMS_PER_ENTRY:
        problems.append(Problem(f"{failing - _MAX_PROBLEMS_PER_ENTRY:,} more sweep values are refused "
                                f"(the first {_MAX_PROBLEMS_PER_ENTRY} are listed)",
                                "correct the listed values and validate again", index=index, step=step_cls.id))
    return problems


def _configs_to_check(entry: ChainEntry) -> list[dict[str, Any]]:
    """Every config of the entry; for a larger grid, each swept value once (the other fields at
    their first value), so checking a huge sweep stays fast (the variant count refuses it anyway)."""
    import math

    axes = sweep_fields(entry)
    if math.prod(len(v) for v in axes.values()) <= _MAX_COMBINATIONS:
        return entry_configs(entry)
    first = {name: values[0] for name, values in axes.items()}
    return [{**entry.config, **first, name: v} for name, values in axes.items() for v in values]


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
        shown = "none" if default == () else ", ".join(map(str, default)) if isinstance(default, tuple) else default
        hint = f" (default {shown})" if default is not None else ""
        return f"set {name} to a value " + (" and ".join(bits) if bits else "of the right type") + hint
    return "correct the value"


def check_recipe(recipe: Recipe, *, check_files: bool = True) -> None:
    """Raise :class:`RecipeError` listing every problem (the first in the message) when invalid."""
    problems = validate_recipe(recipe, check_files=check_files)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise RecipeError(f"{problems[0]}{more}", problems)
