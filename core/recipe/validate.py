"""Validation: every problem of a recipe, each naming the step (index and id), the field and the fix,
so the window can mark each offending step before anything runs; :func:`check_recipe` raises on
them for the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from core.errors import ConfigError, WorkbenchError
from core.recipe.model import ChainEntry, Problem, Recipe, RecipeError, recipe_task
from core.recipe.sweep import entry_configs


def validate_recipe(recipe: Recipe, *, check_files: bool = True) -> list[Problem]:
    """Every problem of the recipe, in chain order. Empty list: it may run.

    Checks the model reference, the task and its data, each step id and value (sweep values one
    by one), the order of steps through their traits, task heads, and teachers for distillation.
    """
    from core.models import ModelRef
    from core.state import INITIAL_TRAITS, TRAINABLE
    from core.steps.base import get_step
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
        problems.extend(entry_problems(entry, index))
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
        for v in values:
            try:
                defaults._check_field(fields[name], tuple(v) if isinstance(v, list) else v)
            except ConfigError as exc:
                message = str(exc)
                if message not in seen:
                    seen.add(message)
                    problems.append(Problem(message, _fix_for(step_cls, name), index=index, step=step_cls.id,
                                            field=name))
                break
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
