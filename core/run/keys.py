"""Content hashes and cache keys: when a finished variant may be reused instead of recomputed.

A variant's *cache key* hashes, along its prefix of the variant tree: the model (reference and
content hash), the task data (content hash), the head, the seed, the measurement settings, every
step id with its full config and config version, the teacher, and the *code* that produced it: the
source of the step's module and of every ``core`` module it imports, found through the import
graph (lazy imports inside functions included), so a change to a helper invalidates exactly the
variants whose code path reads it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import core

# Modules whose change must not invalidate results: they orchestrate and store, they do not compute.
_NOT_CODE = ("core.run", "core.store", "core.cli", "core.recipe", "core.protocol")

# What model a step starts from is the runner's choice, not in any step's code: bumped whenever that
# changes, so variants made the old way are made again rather than reused. 2: every branch of a sweep
# starts from its parent as saved (before 0d659fc a later branch started from the model its sibling had
# changed in place; a bits [8, 6] sweep shipped 6 bits of the 8-bit grid as 6-bit, 74.66 instead of 71.44).
STEP_INPUT_VERSION = 2


class Hasher:
    """Content hashes of files, each file read once per (path, size, mtime) for this hasher's life."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, int, int], str] = {}

    def file(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._files:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            self._files[key] = h.hexdigest()
        return self._files[key]

    def folder(self, folder: Path) -> str:
        h = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(folder)).encode())
            h.update(self.file(path).encode())
        return h.hexdigest()

    def model(self, ref: Any) -> str:
        """Content hash of a model's files; for a hub id (not downloaded here) its reference."""
        folder = ref.local_folder()
        return self.folder(folder) if folder is not None else hashlib.sha256(str(ref).encode()).hexdigest()

    def data(self, task: Any) -> str:
        """Content hash of a task's data files (``Task.data_files``)."""
        h = hashlib.sha256(task.id.encode())
        for path in task.data_files:
            h.update((self.folder(path) if path.is_dir() else self.file(path)).encode())
        return h.hexdigest()


@functools.cache
def _module_source(name: str) -> tuple[bytes, tuple[str, ...]]:
    """(source bytes, core modules it imports) of one module, found by name, not by file layout."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return b"", ()
    source = Path(spec.origin).read_bytes()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
    deps = tuple(sorted(m for m in imported if m.startswith("core.") and _is_module(m)))
    return source, deps


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # "core.steps.base.get_step": a name, not a module
        return False


def code_hash(*modules: str) -> str:
    """Hash of the source of ``modules`` and of every core module they import, transitively."""
    h = hashlib.sha256(core.__version__.encode())
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(_NOT_CODE) or not _is_module(name):
            continue
        seen.add(name)
        todo.extend(_module_source(name)[1])
    for name in sorted(seen):
        h.update(name.encode())
        h.update(_module_source(name)[0])
    return h.hexdigest()


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def root_key(recipe: Any, ref: Any, task: Any, hasher: Hasher) -> str:
    """The baseline's key: model, data, head, seed, measurement settings and measuring code."""
    return digest({
        "model": str(ref),
        "model_hash": hasher.model(ref),
        "task": task.id,
        "head": task.head,
        "data_hash": hasher.data(task),
        "data_spec": recipe.data.to_dict() if recipe.data is not None else None,
        "seed": recipe.seed,
        # Where latencies are timed at the end of a run changes no variant: not part of the key.
        "measure": {k: v for k, v in recipe.measure.to_dict().items() if k != "retime_on_driver"},
        "code": code_hash("core.measure", "core.artifacts", "core.models", task.loader.__module__),
    })


def child_key(parent_key: str, step: Any, teacher: str | None, task_id: str, hasher: Hasher) -> str:
    """A step's key: its parent's key, id, full config and version, teacher, code, and the content of
    what it reads besides its parent (``Step.reads``: a model folder, another task's data)."""
    from core.steps.base import get_step

    step_cls = get_step(step.step)
    payload = {
        "parent": parent_key,
        "step": step.step,
        "config": step.config.to_dict(),
        "config_version": step_cls.config_cls.version,
        "teacher": teacher if step_cls.needs_teacher else None,
        "code": code_hash(step_cls.__module__),
        "step_input": STEP_INPUT_VERSION,
    }
    reads = step_reads(step_cls(step.config), task_id, hasher)
    if reads:  # only then: the keys of steps that read nothing else stay as they were
        payload["reads"] = reads
    return digest(payload)


def step_reads(step: Any, task_id: str, hasher: Hasher) -> dict[str, str]:
    """Content hash of each thing ``step.reads(task_id)`` names (a model: its files; a task: its data)."""
    from core.errors import ModelLoadError
    from core.models import ModelRef

    out: dict[str, str] = {}
    for name, item in step.reads(task_id).items():
        try:
            out[name] = hasher.model(item) if isinstance(item, ModelRef) else hasher.data(item)
        except (OSError, ModelLoadError) as exc:  # missing or not installed: the step fails and says why
            out[name] = f"unreadable: {item}: {type(exc).__name__}"
    return out


def teacher_identity(recipe: Any, hasher: Hasher) -> str:
    """'parent', or the content hash of the recipe's teacher model."""
    from core.models import ModelRef

    if recipe.teacher in (None, "parent"):
        return "parent"
    return hasher.model(ModelRef.parse(recipe.teacher))


def cache_keys(recipe: Any) -> list[str]:
    """The cache key of every node of the recipe's variant tree, depth first (baseline first)."""
    from core.models import ModelRef
    from core.recipe import recipe_task, variant_tree

    hasher = Hasher()
    ref, task = ModelRef.parse(recipe.model), recipe_task(recipe)
    teacher = teacher_identity(recipe, hasher)
    keys: list[str] = []

    def walk(node: Any, key: str) -> None:
        keys.append(key)
        for child in node.children:
            walk(child, child_key(key, child.step, teacher, task.id, hasher))

    walk(variant_tree(recipe), root_key(recipe, ref, task, hasher))
    return keys
