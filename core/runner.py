"""Execute a recipe: record the run, measure the baseline, then apply, save and measure each step.

One transaction per finished variant, so a crash loses at most the step in flight. Sweeps form a
prefix tree (core.chain.variant_tree) walked depth first: a shared prefix runs once. A finished
variant is reused instead of recomputed when its *cache key* matches: a hash, along the prefix, of
the model (reference + content hash), the task data (content hash), the head, the seed, the
measurement settings, every step id + full config + config version, and the code version (the
source of each step's module and of the measurement, artifact and model code). Reuse means loading
the stored artifact only when a later step needs it; the new variant row is recorded as cached.

Resuming a failed, cancelled or interrupted run reuses its own finished variants the same way.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import core
from core.chain import Recipe, ResolvedStep, VariantNode, check_recipe, recipe_task, variant_tree
from core.errors import ArtifactError, StepCancelled, WorkbenchError
from core.protocol import (
    LOG,
    METRIC,
    PROGRESS,
    RUN_CANCELLED,
    RUN_FAILED,
    RUN_FINISHED,
    RUN_STARTED,
    STEP_FINISHED,
    STEP_STARTED,
)
from core.store import schema as s
from core.store.db import Store, open_store
from core.store.record import (
    MetricValue,
    RunIdentity,
    StoredVariant,
    add_variant,
    claim_run_for_resume,
    create_run,
    find_cached,
    find_in_run,
    finish_run,
    mark_interrupted_runs,
)

Emit = Callable[..., None]


@dataclass
class RunOutcome:
    """How a run ended: status is one of core.store.schema's run statuses."""

    run_id: int
    status: str
    error: str | None = None
    kind: str | None = None


class Interrupted(BaseException):
    """Raised in the worker's main thread on SIGTERM: stop now, mark the run interrupted."""


# ------------------------------------------------------------------------------------------
# Hashes


_file_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _file_hash_cache:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _file_hash_cache[key] = h.hexdigest()
    return _file_hash_cache[key]


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(file_sha256(path).encode())
    return h.hexdigest()


def model_hash(ref: Any) -> str:
    """Content hash of a model's files; for a hub id (not downloaded here) its reference."""
    folder = ref.local_folder()
    return folder_hash(folder) if folder is not None else hashlib.sha256(str(ref).encode()).hexdigest()


def data_hash(task: Any) -> str:
    """Content hash of a task's data: the bundled files when known, else the loaded rows."""
    from core.tasks.base import datasets_dir

    folder = datasets_dir() / task.id
    if task.family in ("glue", "squad") and folder.is_dir():
        return folder_hash(folder)
    for attr in ("path", "data_path", "files"):
        value = getattr(task, attr, None)
        if value:
            paths = [Path(p) for p in (value if isinstance(value, (list, tuple)) else [value])]
            if all(p.exists() for p in paths):
                h = hashlib.sha256()
                for p in paths:
                    h.update((folder_hash(p) if p.is_dir() else file_sha256(p)).encode())
                return h.hexdigest()
    h = hashlib.sha256()
    for split in task.splits:
        ds = task.load(split)
        h.update(split.encode())
        h.update(json.dumps(ds.to_dict(), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _source_file(obj: Any) -> Path | None:
    """The file defining ``obj``, through decorators (lru_cache, wraps) and partials."""
    import functools

    while isinstance(obj, functools.partial):
        obj = obj.func
    obj = inspect.unwrap(obj) if callable(obj) else obj
    try:
        return Path(inspect.getsourcefile(obj) or "")
    except TypeError:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        file = getattr(module, "__file__", None)
        return Path(file) if file else None


def _source_hash(*objects: Any) -> str:
    """Hash of the source files defining ``objects``: equal in every process (never an address)."""
    h = hashlib.sha256(core.__version__.encode())
    for obj in objects:
        path = _source_file(obj)
        try:
            h.update(path.read_bytes() if path is not None else b"")
        except OSError:
            h.update(str(path).encode())
        if path is None:
            h.update(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}".encode())
    return h.hexdigest()


def _step_code(step_cls: Any) -> str:
    """The step's module plus the shared helpers steps use (private core/steps/_*.py, core/training.py)."""
    import core.steps

    h = hashlib.sha256(_source_hash(step_cls).encode())
    steps_dir = Path(next(iter(core.steps.__path__)))
    for path in [*sorted(steps_dir.glob("_*.py")), steps_dir.parent / "training.py", steps_dir / "base.py"]:
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _measure_code() -> str:
    import core.artifacts
    import core.measure
    import core.models

    modules: list[Any] = [core.artifacts, core.models]
    package_path = getattr(core.measure, "__path__", None)
    if package_path:
        h = hashlib.sha256(_source_hash(*modules).encode())
        for path in sorted(Path(next(iter(package_path))).glob("*.py")):
            h.update(path.read_bytes())
        return h.hexdigest()
    return _source_hash(*modules, core.measure)


def _key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------
# The run


@dataclass
class _Done:
    """A finished variant on the current path of the tree walk."""

    variant_id: int
    key: str
    artifact: Path
    size: dict[str, Any] = field(default_factory=dict)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _state_from_artifact(folder: Path) -> Any:
    from core.artifacts import load_artifact
    from core.steps.base import ModelState

    loaded = load_artifact(folder)
    m = loaded.manifest
    return ModelState(
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        task=m["task"],
        head=m["head"],
        transforms=list(m.get("transforms", [])),
        traits=frozenset(m.get("traits", [])),
        info=dict(m.get("info", {})),
    )


class _Runner:
    def __init__(self, recipe: Recipe, store: Store, emit: Emit, cancelled: Callable[[], bool]) -> None:
        from core.models import ModelRef

        self.recipe = recipe
        self.store = store
        self.emit = emit
        self.cancelled = cancelled
        self.ref = ModelRef.parse(recipe.model)
        self.task = recipe_task(recipe)
        self.m = recipe.measure
        self.run_id = 0
        self.artifacts = Path()
        self.resuming = False
        self.node_seq = 0
        self.total = 0
        self._teacher: Any = None
        self._last_progress = 0.0
        self.current_index: int | None = None  # chain position (0 = baseline) of the step in flight
        self._timings: dict[str, float] = {}  # phase -> seconds of the variant being computed

    # -- identity -----------------------------------------------------------------------
    def root_key(self, model_content: str, data_content: str) -> str:
        return _key(
            {
                "model": str(self.ref),
                "model_hash": model_content,
                "task": self.task.id,
                "head": self.task.head,
                "data_hash": data_content,
                "seed": self.recipe.seed,
                "measure": self.m.to_dict(),
                "code": _measure_code() + _source_hash(self.task.loader),
            }
        )

    def child_key(self, parent_key: str, step: ResolvedStep) -> str:
        from core.steps.base import get_step

        step_cls = get_step(step.step)
        return _key(
            {
                "parent": parent_key,
                "step": step.step,
                "config": step.config.to_dict(),
                "config_version": step_cls.config_cls.version,
                "teacher": self.teacher_identity() if step_cls.needs_teacher else None,
                "code": _step_code(step_cls),
            }
        )

    def teacher_identity(self) -> str:
        from core.models import ModelRef

        if self.recipe.teacher in (None, "parent"):
            return "parent"
        return model_hash(ModelRef.parse(self.recipe.teacher))

    # -- events ----------------------------------------------------------------------------
    def progress(self, node: int, index: int) -> Callable[[float, str], None]:
        def report(fraction: float, message: str = "") -> None:
            now = time.monotonic()
            if fraction < 1.0 and now - self._last_progress < 0.1:
                return
            self._last_progress = now
            self.emit(PROGRESS, index=index, node=node, fraction=max(0.0, min(1.0, float(fraction))), message=message)

        return report

    def log(self, message: str, level: str = "info") -> None:
        self.emit(LOG, level=level, message=message)

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise StepCancelled("Run cancelled by the user")

    # -- the walk ------------------------------------------------------------------------
    def walk(self, tree: VariantNode, root_key: str) -> None:
        self.visit(tree, None, root_key, {})

    def visit(self, node: VariantNode, parent: _Done | None, key: str, holder: dict[str, Any]) -> None:
        self.check_cancelled()
        seq = self.node_seq
        self.node_seq += 1
        index = node.step.index + 1 if node.step else 0
        step_id = node.step.step if node.step else "baseline"
        label = node.step.label if node.step else "baseline"
        self.current_index = index
        self.emit(STEP_STARTED, index=index, node=seq, step=step_id, label=label, title=self._title(step_id))
        start = time.perf_counter()

        reused = find_in_run(self.store, self.run_id, key) if self.resuming else None
        state = None
        if reused is not None:
            done = _Done(reused.id, key, reused.artifact_path, _size_of(reused))
            self.log(f"{label}: already finished in this run (variant {reused.id})")
            cached = True
        else:
            cached_from = find_cached(self.store, key)
            if cached_from is not None:
                vid = self.record(node, parent, key, cached_from.metrics, cached_from.artifact_path,
                                  _bytes_of(cached_from), time.perf_counter() - start, cached_from.info,
                                  flag=cached_from.flag, cached_from=cached_from.id)
                done = _Done(vid, key, cached_from.artifact_path, _size_of(cached_from))
                self.log(f"{label}: reused from cache (variant {cached_from.id})")
                cached = True
            else:
                state, done = self.compute(node, parent, key, holder, seq, index, start)
                cached = False
        for name, value in _metrics_for_event(self.store, done.variant_id):
            self.emit(METRIC, index=index, node=seq, variant_id=done.variant_id, name=name, value=value[0], unit=value[1])
        self.emit(STEP_FINISHED, index=index, node=seq, variant_id=done.variant_id, cached=cached,
                  seconds=round(time.perf_counter() - start, 3))

        child_holder = {"state": state} if state is not None else {}
        for child in node.children:
            assert child.step is not None
            self.visit(child, done, self.child_key(key, child.step), child_holder)

    def _title(self, step_id: str) -> str:
        if step_id == "baseline":
            return "Baseline"
        from core.steps.base import get_step

        return get_step(step_id).title

    def compute(self, node: VariantNode, parent: _Done | None, key: str, holder: dict[str, Any], seq: int,
                index: int, start: float) -> tuple[Any, _Done]:
        from core.artifacts import save_artifact
        from core.steps.base import StepContext, get_step

        progress = self.progress(seq, index)
        _seed_everything(self.recipe.seed)
        timings = self._timings = {}
        clock = time.perf_counter()
        if node.step is None:
            progress(0.0, "loading the model")
            state = self.load_baseline()
            timings["load"] = time.perf_counter() - clock
            step_info: dict[str, Any] = {}
        else:
            assert parent is not None
            state_in = holder.pop("state", None)
            if state_in is None:
                progress(0.0, "loading the parent variant")
                state_in = _state_from_artifact(parent.artifact)
            timings["load"] = time.perf_counter() - clock
            step_cls = get_step(node.step.step)
            teacher = self.teacher_for(parent) if step_cls.needs_teacher else None
            scratch = self.artifacts / "scratch" / f"{seq:03d}"
            scratch.mkdir(parents=True, exist_ok=True)
            ctx = StepContext(
                seed=self.recipe.seed, task=self.task, scratch=scratch, progress=progress,
                log=self.log, cancelled=self.cancelled, teacher=teacher, threads=self.m.threads,
            )
            before = dict(state_in.info)
            clock = time.perf_counter()
            try:
                state = step_cls(node.step.config).apply(state_in, ctx)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)  # scratch is per step; artifacts are what stays
            step_info = {k: v for k, v in state.info.items() if before.get(k) != v}
            timings["apply"] = time.perf_counter() - clock
        self.check_cancelled()
        folder = self.artifacts / f"{seq:03d}-{(node.step.step if node.step else 'baseline')}-{key[:8]}"
        progress(0.9 if node.step else 0.1, "saving the artifact")
        clock = time.perf_counter()
        nbytes = save_artifact(state, folder, base=str(self.ref), extra={"info": state.info, "cache_key": key})
        timings["save"] = time.perf_counter() - clock
        metrics, size = self.measure(state, folder, progress)
        step_info = {**step_info, "timings": {k: round(v, 3) for k, v in timings.items()}}
        self.log("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), "debug")
        flag = self.size_flag(parent, size) if parent is not None else None
        size_dict = _size_dict(size)
        vid = self.record(node, parent, key, metrics, folder, nbytes, time.perf_counter() - start, step_info, flag=flag)
        return state, _Done(vid, key, folder, size_dict)

    def record(self, node: VariantNode, parent: _Done | None, key: str, metrics: list[MetricValue], folder: Path,
               nbytes: int, seconds: float, info: dict[str, Any], *, flag: str | None,
               cached_from: int | None = None) -> int:
        return add_variant(
            self.store, run_id=self.run_id, parent_id=parent.variant_id if parent else None,
            step_index=node.step.index + 1 if node.step else 0,
            step_id=node.step.step if node.step else "baseline",
            label=node.step.label if node.step else "baseline",
            config=node.step.config.to_dict() if node.step else {"model": str(self.ref), "task": self.task.id},
            cache_key=key, metrics=metrics, artifact_path=folder, artifact_bytes=nbytes, seconds=seconds,
            flag=flag, info=info, cached_from=cached_from,
        )

    def load_baseline(self) -> Any:
        from core.models import load_model, load_tokenizer
        from core.steps.base import ModelState

        folder = self.ref.local_folder()
        if folder is not None and (folder / "manifest.json").is_file():  # a stored variant as the start
            state = _state_from_artifact(folder)
            if state.head != self.task.head:
                raise ArtifactError(f"{folder} has a {state.head} head; task {self.task.id} needs {self.task.head}")
            return state
        model = load_model(self.ref, head=self.task.head, num_labels=self.task.num_labels)  # type: ignore[arg-type]
        model.eval()
        return ModelState(model=model, tokenizer=load_tokenizer(self.ref), task=self.task.id, head=self.task.head)

    def teacher_for(self, parent: _Done) -> Any:
        """The model entering the step ('parent', a fresh copy from its artifact) or the recipe's teacher."""
        if self.recipe.teacher in (None, "parent"):
            teacher = _state_from_artifact(parent.artifact)
        else:
            if self._teacher is None:
                from core.models import ModelRef, load_model, load_tokenizer
                from core.steps.base import ModelState

                ref = ModelRef.parse(self.recipe.teacher)
                folder = ref.local_folder()
                if folder is not None and (folder / "manifest.json").is_file():
                    self._teacher = _state_from_artifact(folder)
                else:
                    model = load_model(ref, head=self.task.head, num_labels=self.task.num_labels)  # type: ignore[arg-type]
                    self._teacher = ModelState(model, load_tokenizer(ref), self.task.id, self.task.head)
            teacher = self._teacher
        teacher.model.eval()
        return teacher

    def measure(self, state: Any, folder: Path, progress: Callable[[float, str], None]) -> tuple[list[MetricValue], Any]:
        from core import measure

        m = self.m

        def eval_progress(fraction: float, message: str = "") -> None:
            progress(0.9 + 0.05 * fraction, message or "evaluating")

        progress(0.9, "evaluating")
        clock = time.perf_counter()
        ev = measure.evaluate(
            state.model, state.tokenizer, self.task, "dev", batch_size=m.eval_batch_size, max_length=m.max_length,
            limit=m.eval_limit, sample_seed=self.recipe.seed, threads=m.threads, progress=eval_progress,
            cancelled=self.cancelled,
        )
        self._timings["evaluate"] = time.perf_counter() - clock
        self.check_cancelled()
        progress(0.95, "measuring size")
        clock = time.perf_counter()
        size = measure.size_report(state.model, folder)
        self._timings["size"] = time.perf_counter() - clock
        progress(0.97, "measuring latency")
        clock = time.perf_counter()
        lat = measure.latency(
            state.model, state.tokenizer, batch_size=m.latency_batch_size, seq_len=m.latency_seq_len,
            warmup=m.latency_warmup, repeats=m.latency_repeats, threads=m.threads,
        )
        self._timings["latency"] = time.perf_counter() - clock
        progress(1.0, "done")
        metrics = [MetricValue(name, float(value), "", "dev") for name, value in ev.metrics.items()]
        metrics += [
            MetricValue("eval_examples", float(ev.examples), "count", "dev"),
            MetricValue("eval_seconds", float(ev.seconds), "s", "dev"),
            MetricValue("params", float(size.params), "count"),
            MetricValue("nonzero_params", float(size.nonzero_params), "count"),
            MetricValue("artifact_bytes", _f(size.artifact_bytes), "bytes"),
            MetricValue("weights_bytes", _f(size.weights_bytes), "bytes"),
            MetricValue("latency_p50", float(lat.p50_ms), "ms"),
            MetricValue("latency_p90", float(lat.p90_ms), "ms"),
            MetricValue("latency_mean", float(lat.mean_ms), "ms"),
        ]
        return metrics, size

    def size_flag(self, parent: _Done, size: Any) -> str | None:
        from core import measure

        flagger = getattr(measure, "size_flag", None)
        if flagger is None or not parent.size:
            return None
        import dataclasses

        try:  # rebuild the parent's report from its stored numbers (it may come from the cache)
            names = [f.name for f in dataclasses.fields(size)]
            parent_report = type(size)(**{n: parent.size[n] if n in parent.size else getattr(size, n) for n in names})
        except (TypeError, KeyError):
            return None
        return flagger(parent_report, size)


def _f(value: Any) -> float | None:
    return float(value) if value is not None else None


def _size_dict(size: Any) -> dict[str, Any]:
    data = size.to_dict() if hasattr(size, "to_dict") else {}
    return {k: data.get(k) for k in ("params", "nonzero_params", "artifact_bytes", "weights_bytes") if k in data}


def _size_of(stored: StoredVariant) -> dict[str, Any]:
    values = {m.name: m.value for m in stored.metrics}
    out: dict[str, Any] = {}
    for name in ("params", "nonzero_params", "artifact_bytes", "weights_bytes"):
        if name in values:
            v = values[name]
            out[name] = int(v) if v is not None else None
    return out


def _bytes_of(stored: StoredVariant) -> int:
    from core.artifacts import folder_bytes

    try:
        return folder_bytes(stored.artifact_path)
    except OSError:
        return 0


def _metrics_for_event(store: Store, variant_id: int) -> list[tuple[str, tuple[float | None, str]]]:
    from core.store.queries import variant_metrics

    return [(m.name, (m.value, m.unit)) for m in variant_metrics(store, [variant_id])[variant_id]]


def cache_keys(recipe: Recipe) -> list[str]:
    """The cache key of every node of the recipe's variant tree, depth first (baseline first)."""
    from core.store.db import Store

    runner = _Runner(recipe, Store.__new__(Store), lambda kind, /, **f: None, lambda: False)
    root = runner.root_key(model_hash(runner.ref), data_hash(runner.task))
    keys: list[str] = []

    def walk(node: VariantNode, key: str) -> None:
        keys.append(key)
        for child in node.children:
            assert child.step is not None
            walk(child, runner.child_key(key, child.step))

    walk(variant_tree(recipe), root)
    return keys


def _environment(recipe: Recipe) -> dict[str, Any]:
    import torch

    from core import measure

    env: dict[str, Any] = {}
    getter = getattr(measure, "environment", None)
    if getter is not None:
        env.update(getter())
    env.update({"threads": torch.get_num_threads(), "seed": recipe.seed, "workbench": core.__version__})
    return env


def run_recipe(
    recipe: Recipe | dict[str, Any] | None,
    *,
    db_url_or_path: str | Path | None = None,
    artifacts_dir: str | Path | None = None,
    emit: Emit | None = None,
    cancelled: Callable[[], bool] | None = None,
    resume_run: int | None = None,
) -> RunOutcome:
    """Run (or resume) a recipe into the database, reporting core.protocol events through ``emit``.

    Raises RecipeError/StoreError before a run is recorded (invalid recipe, unusable database);
    once the run exists, errors end it as failed/cancelled and are returned in the outcome.
    ``resume_run`` continues a failed, cancelled or interrupted run from its last finished step
    (``recipe`` may then be None: the run's own recipe is used).
    """
    from core.paths import default_artifacts

    emit = emit or (lambda kind, /, **fields: None)
    cancelled = cancelled or (lambda: False)
    store = open_store(db_url_or_path)
    try:
        mark_interrupted_runs(store)
        if resume_run is not None:
            from core.store.queries import run_recipe_text

            recipe = Recipe.from_dict(json.loads(run_recipe_text(store, resume_run)))
        elif isinstance(recipe, dict):
            recipe = Recipe.from_dict(recipe)
        if recipe is None:
            raise WorkbenchError("No recipe given")
        check_recipe(recipe)
        if recipe.measure.threads:
            import torch

            torch.set_num_threads(recipe.measure.threads)
        runner = _Runner(recipe, store, emit, cancelled)
        tree = variant_tree(recipe)
        root_key = runner.root_key(model_hash(runner.ref), data_hash(runner.task))
        env = _environment(recipe)
        if resume_run is not None:
            ctx, _ = claim_run_for_resume(store, resume_run, env)
            runner.resuming = True
        else:
            ident = RunIdentity(
                model_ref=str(runner.ref), model_kind=runner.ref.kind, model_hash=model_hash(runner.ref),
                task=runner.task.id, data_hash=data_hash(runner.task), recipe_json=recipe.canonical_json(),
                recipe_name=recipe.name, seed=recipe.seed, environment=env,
            )
            ctx = create_run(store, ident, Path(artifacts_dir) if artifacts_dir else default_artifacts(store.path))
        runner.run_id = ctx.run_id
        runner.artifacts = ctx.artifacts_dir
        return _execute(runner, tree, root_key)
    finally:
        store.close()


def _execute(runner: _Runner, tree: VariantNode, root_key: str) -> RunOutcome:
    run_id = runner.run_id
    runner.emit(
        RUN_STARTED, run_id=run_id, variants=tree.count(), resumed=runner.resuming,
        steps=[{"index": n.step.index + 1 if n.step else 0, "step": n.step.step if n.step else "baseline",
                "label": n.step.label if n.step else "baseline"} for n in tree.walk()],
    )
    try:
        try:
            runner.artifacts.mkdir(parents=True, exist_ok=True)
            probe = runner.artifacts / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ArtifactError(
                f"Cannot write artifacts to {runner.artifacts}: {exc.strerror or exc}; "
                "choose a writable folder (--artifacts)"
            ) from None
        runner.walk(tree, root_key)
    except StepCancelled as exc:
        finish_run(runner.store, run_id, s.CANCELLED, str(exc), "StepCancelled")
        runner.emit(RUN_CANCELLED, run_id=run_id)
        return RunOutcome(run_id, s.CANCELLED, str(exc), "StepCancelled")
    except WorkbenchError as exc:
        finish_run(runner.store, run_id, s.FAILED, str(exc), type(exc).__name__)
        runner.emit(RUN_FAILED, run_id=run_id, error=str(exc), kind=type(exc).__name__, index=runner.current_index)
        return RunOutcome(run_id, s.FAILED, str(exc), type(exc).__name__)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        message = f"Internal error ({type(exc).__name__}): {exc}"
        finish_run(runner.store, run_id, s.FAILED, message, type(exc).__name__)
        runner.emit(RUN_FAILED, run_id=run_id, error=message, kind=type(exc).__name__, index=runner.current_index)
        return RunOutcome(run_id, s.FAILED, message, type(exc).__name__)
    except BaseException as exc:  # SIGTERM (Interrupted) or Ctrl+C: leave it resumable
        finish_run(runner.store, run_id, s.INTERRUPTED, "The run was stopped before it finished; resume to continue",
                   type(exc).__name__)
        runner.emit(RUN_CANCELLED, run_id=run_id, interrupted=True)
        raise
    finish_run(runner.store, run_id, s.FINISHED)
    runner.emit(RUN_FINISHED, run_id=run_id)
    return RunOutcome(run_id, s.FINISHED)
