"""Execute a recipe: record the run, measure the baseline, then apply, save and measure each step.

One transaction per finished variant, so a crash loses at most the step in flight. Sweeps form a
prefix tree (core.recipe.variant_tree) walked depth first: a shared prefix runs once. A finished
variant is reused instead of recomputed when its cache key (core.run.keys) matches; reuse loads
the stored artifact only when a later step needs it, and records the new row as cached. Resuming a
failed, cancelled or interrupted run reuses its own finished variants the same way. A recipe's
accuracy budget (core.recipe.Budget) flags a variant that breaks it; its subtree, and the later values
of its sweep, are reported skipped and not run.

Events (core.protocol) report progress; every finished variant's event carries its result row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import core
from core.errors import ArtifactError, StepCancelled, WorkbenchError
from core.protocol import (
    Curve,
    Event,
    Log,
    PlannedStep,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from core.recipe import Recipe, VariantNode, check_recipe, recipe_task, variant_tree
from core.run import keys
from core.store import schema as s
from core.store.db import Store, open_store
from core.store.record import (
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
from core.store.rows import CI_HIGH, CI_LOW, OVER_BUDGET, MetricValue, RunMeta, VariantInfo, build_row

Emit = Callable[[Event], None]
Terminal = RunFinished | RunFailed | RunCancelled


class Interrupted(BaseException):
    """Raised in the worker's main thread on SIGTERM: stop now, mark the run interrupted."""


@dataclass
class _Done:
    """A finished variant on the current path of the tree walk."""

    info: VariantInfo  # as stored (or about to be shown): metrics, sizes, artifact, flags
    key: str
    predictions: list[Any] | None = None  # its dev predictions, for its children's paired intervals

    @property
    def artifact(self) -> Path:
        return Path(self.info.artifact_path or "")


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _usable_artifact(folder: Path) -> bool:
    from core.artifacts import MANIFEST

    return (folder / MANIFEST).is_file()


class Runner:
    """Walks one run's variant tree. Construct through :func:`run_recipe`."""

    def __init__(self, recipe: Recipe, store: Store, emit: Emit, cancelled: Callable[[], bool], *,
                 run: RunMeta, artifacts: Path, resuming: bool) -> None:
        from core.models import ModelRef

        self.recipe = recipe
        self.store = store
        self.emit = emit
        self.cancelled = cancelled
        self.run = run
        self.artifacts = artifacts
        self.resuming = resuming
        self.ref = ModelRef.parse(recipe.model)
        self.task = recipe_task(recipe)
        self.hasher = keys.Hasher()
        self.teacher_id = keys.teacher_identity(recipe, self.hasher)
        self.seed = recipe.seed  # the seed of the walk in progress (recipes may list several)
        self.node_seq = 0  # event ids: unique across the whole run
        self.tree_node = 0  # the node's place in one walk of the tree (the same for every seed)
        self.current_index: int | None = None  # chain position (0 = baseline) of the step in flight
        self.reference: VariantInfo | None = None  # what "% of reference" compares with (core.store.rows)
        self.baseline: VariantInfo | None = None
        self._teacher: Any = None
        self._last_progress = 0.0

    # -- events ----------------------------------------------------------------------------
    def progress(self, node: int, index: int) -> Callable[[float, str], None]:
        """Progress of one node, throttled to 10 per second and never going backwards."""
        shown = [0.0]

        def report(fraction: float, message: str = "") -> None:
            now = time.monotonic()
            fraction = max(shown[0], min(1.0, float(fraction)))
            if fraction < 1.0 and now - self._last_progress < 0.1:
                return
            self._last_progress, shown[0] = now, fraction
            self.emit(Progress(node=node, index=index, fraction=fraction, message=message))

        return report

    def log(self, message: str, level: str = "info") -> None:
        self.emit(Log(level=level, message=message))

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise StepCancelled("Run cancelled by the user")

    # -- the walk ------------------------------------------------------------------------
    def walk(self, tree: VariantNode) -> None:
        for seed in self.recipe.run_seeds:
            self.seed, self.tree_node, self.reference, self.baseline = seed, 0, None, None
            recipe = dataclasses.replace(self.recipe, seed=seed, seeds=())
            self.visit(tree, None, keys.root_key(recipe, self.ref, self.task, self.hasher), None)

    def visit(self, node: VariantNode, parent: _Done | None, key: str, state: Any) -> bool:
        """Produce ``node``'s variant (``state`` is its parent's model when still in memory); True
        when it broke the recipe's accuracy budget (its subtree was skipped)."""
        self.check_cancelled()
        seq, self.node_seq = self.node_seq, self.node_seq + 1
        tree_node, self.tree_node = self.tree_node, self.tree_node + 1
        index = node.step.index + 1 if node.step else 0
        step_id, label = (node.step.step, node.step.label) if node.step else ("baseline", "baseline")
        if len(self.recipe.run_seeds) > 1:
            label += f" [seed {self.seed}]"
        self.current_index = index
        self.emit(StepStarted(node=seq, index=index, step=step_id, label=label, title=_title(step_id)))
        start = time.perf_counter()

        reused = find_in_run(self.store, self.run.id, key) if self.resuming else None
        new_state = None
        if reused is not None:
            done = _Done(self._info_of(reused, node, parent, tree_node), key, _predictions(reused))
            self.log(f"{label}: already finished in this run (variant {reused.id})")
        else:
            cached = find_cached(self.store, key, _usable_artifact)
            if cached is not None:
                flags = [f for f in cached.flags if f.get("code") != OVER_BUDGET]  # judged by this run's budget
                over = self.budget_flag({m.name: m.value for m in cached.metrics})
                done = self.record(node, parent, key, cached.metrics, cached.artifact_path, time.perf_counter() - start,
                                   cached.info, flags=flags + ([over.to_dict()] if over else []), tree_node=tree_node,
                                   predictions=cached.predictions, cached_from=cached.id)
                self.log(f"{label}: reused from cache (variant {cached.id})")
            else:
                new_state, done = self.compute(node, parent, key, state, seq, index, start, tree_node)
        if node.step is None:
            self.baseline = done.info
        if self.reference is None and done.info.head_trained:
            self.reference = done.info
        row = build_row(done.info, self.run, self.reference, self.baseline)
        self.emit(StepFinished(node=seq, index=index, variant_id=done.info.id, cached=done.info.cached,
                               seconds=round(time.perf_counter() - start, 3), row=row.to_dict()))
        if any(f.get("code") == OVER_BUDGET for f in done.info.flags):
            for child in node.children:
                self.skip(child, f"{label} is over the accuracy budget")
            return True
        # A sweep's values run in the order written; the first one over budget ends the sweep.
        over_at: str | None = None
        for child in node.children:
            assert child.step is not None
            if over_at is not None:
                self.skip(child, f"an earlier value of this sweep ({over_at}) is over the accuracy budget")
            elif self.visit(child, done, keys.child_key(key, child.step, self.teacher_id), new_state):
                over_at = child.step.label
        return False

    def skip(self, node: VariantNode, reason: str) -> None:
        """Account for a subtree that will not run: its planned nodes are reported skipped."""
        for n in node.walk():
            assert n.step is not None
            seq, self.node_seq, self.tree_node = self.node_seq, self.node_seq + 1, self.tree_node + 1
            label = n.step.label + (f" [seed {self.seed}]" if len(self.recipe.run_seeds) > 1 else "")
            self.emit(StepSkipped(node=seq, index=n.step.index + 1, label=label, reason=reason))
        self.log(f"{node.step.label if node.step else 'baseline'} and what follows it not run: {reason}")

    def budget_flag(self, metrics: dict[str, float | None]) -> Any:
        """The "over budget" flag (core.measure.verdicts) of a variant with these metrics, or None."""
        from core.measure import verdicts

        if self.recipe.budget is None or self.reference is None:
            return None  # no budget, or this variant is the first trained one: the reference itself
        name = self.task.primary_metric
        return verdicts.over_budget(self.task, metrics.get(name), self.reference.metrics.get(name), self.reference.id,
                                    self.recipe.budget)

    def compute(self, node: VariantNode, parent: _Done | None, key: str, state_in: Any, seq: int,
                index: int, start: float, tree_node: int) -> tuple[Any, _Done]:
        from core.artifacts import save_artifact
        from core.measure.variant import measure_variant
        from core.state import StepContext
        from core.steps import get_step, load_state

        progress = self.progress(seq, index)
        _seed_everything(self.seed)
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        if node.step is None:
            progress(0.0, "loading the model")
            state = self.load_baseline()
            timings["load"] = time.perf_counter() - clock
            step_info: dict[str, Any] = {}
            # Baseline phases: load, save, measure (no step to apply).
            share = {"apply": (0.0, 0.1), "save": (0.1, 0.2), "measure": (0.2, 1.0)}
        else:
            assert parent is not None
            if state_in is None:
                progress(0.0, "loading the parent variant")
                state_in = load_state(parent.artifact)
            timings["load"] = time.perf_counter() - clock
            step_cls = get_step(node.step.step)
            teacher = self.teacher_for(parent) if step_cls.needs_teacher else None
            scratch = self.artifacts / "scratch" / f"{seq:03d}"
            scratch.mkdir(parents=True, exist_ok=True)
            share = {"apply": (0.0, 0.8), "save": (0.8, 0.85), "measure": (0.85, 1.0)}
            lo, hi = share["apply"]
            curves: dict[str, dict[str, list[list[float]]]] = {}

            def curve(phase: str, series: str, step: int, value: float) -> None:
                curves.setdefault(phase, {}).setdefault(series, []).append([step, value])
                self.emit(Curve(node=seq, index=index, phase=phase, series=series, step=step, value=value))

            ctx = StepContext(
                seed=self.seed, task=self.task, scratch=scratch,
                progress=lambda f, m="": progress(lo + (hi - lo) * f, m), log=self.log,
                cancelled=self.cancelled, teacher=teacher, threads=self.recipe.measure.threads, curve=curve,
            )
            before = dict(state_in.info)
            clock = time.perf_counter()
            try:
                state = step_cls(node.step.config).apply(state_in, ctx)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)  # scratch is per step; artifacts are what stays
                _remove_if_empty(scratch.parent)
            step_info = {k: v for k, v in state.info.items() if before.get(k) != v}
            if curves:
                step_info["curves"] = curves  # stored with the variant, viewable after the run
            timings["apply"] = time.perf_counter() - clock
        self.check_cancelled()
        folder = self.artifacts / f"{seq:03d}-{(node.step.step if node.step else 'baseline')}-{key[:8]}"
        progress(share["save"][0], "saving the artifact")
        clock = time.perf_counter()
        save_artifact(state, folder, base=str(self.ref), extra={"info": state.info, "cache_key": key})
        # What ships is measured: the saved artifact, reloaded; the chain continues from it too.
        shipped = load_state(folder)
        roundtrip = _max_output_difference(state, shipped)
        timings["save"] = time.perf_counter() - clock
        lo, hi = share["measure"]
        measured = measure_variant(
            shipped, folder, self.task, self.recipe.measure, seed=self.seed,
            progress=lambda f, m="": progress(lo + (hi - lo) * f, m), cancelled=self.cancelled,
        )
        timings.update(measured.seconds)
        step_info = {**step_info, "timings": {k: round(v, 3) for k, v in timings.items()}}
        self.log("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), "debug")
        values, flags = self.assess(node, parent, shipped, measured)
        values.append(MetricValue("roundtrip_max_abs_diff", roundtrip, "", "probe"))
        done = self.record(node, parent, key, values, folder, time.perf_counter() - start, step_info,
                           flags=[f.to_dict() for f in flags], tree_node=tree_node,
                           predictions={"indices": measured.evaluation.indices,
                                        "predictions": measured.evaluation.predictions,
                                        "confidences": measured.evaluation.confidences})
        return shipped, done

    def assess(self, node: VariantNode, parent: _Done | None, state: Any, measured: Any) -> tuple[list[MetricValue], list[Any]]:
        """Intervals on the task metrics, the change against the parent and the flags (core.measure.verdicts)."""
        from core.measure import verdicts

        ev, seed = measured.evaluation, self.seed
        values = list(measured.values)
        for name, ci in verdicts.intervals(self.task, ev.predictions, ev.references, seed=seed).items():
            values += [MetricValue(name + CI_LOW, ci.low, "", "dev"), MetricValue(name + CI_HIGH, ci.high, "", "dev")]
        head_trained = bool(state.info.get("head_trained"))
        margin = verdicts.learned(self.task, ev.predictions, ev.references, seed=seed) if head_trained else None
        if margin is not None:
            values += _interval_values("learned_margin", margin)
        delta = None
        if parent is not None and parent.predictions is not None and len(parent.predictions) == len(ev.predictions):
            delta = verdicts.versus_parent(self.task, ev.predictions, parent.predictions, ev.references, seed=seed)
            values += _interval_values("delta_vs_parent", delta)
        compresses = node.step is not None and _step_compresses(node.step.step)
        size_reason = self.size_flag(parent, measured.size) if parent is not None and compresses else None
        flags = verdicts.flags(self.task, head_trained=head_trained, learned_margin=margin, delta=delta,
                               size_reason=size_reason)
        over = self.budget_flag({v.name: v.value for v in values})
        return values, flags + ([over] if over is not None else [])

    def record(self, node: VariantNode, parent: _Done | None, key: str, metrics: list[MetricValue], folder: Path,
               seconds: float, info: dict[str, Any], *, flags: list[dict[str, str]], tree_node: int,
               predictions: dict[str, Any] | None, cached_from: int | None = None) -> _Done:
        from core.artifacts import folder_bytes

        step = node.step
        config = step.config.to_dict() if step else {"model": str(self.ref), "task": self.task.id}
        swept = step.swept_values if step else {}
        nbytes = folder_bytes(folder)
        vid = add_variant(
            self.store, run_id=self.run.id, parent_id=parent.info.id if parent else None,
            step_index=step.index + 1 if step else 0, step_id=step.step if step else "baseline",
            label=step.label if step else "baseline", config=config, swept=swept, cache_key=key, metrics=metrics,
            artifact_path=folder, artifact_bytes=nbytes, seconds=seconds, flags=flags, info=info,
            cached_from=cached_from, seed=self.seed, node=tree_node, predictions=predictions,
        )
        info_row = VariantInfo(
            id=vid, run_id=self.run.id, parent_id=parent.info.id if parent else None,
            step_index=step.index + 1 if step else 0, step_id=step.step if step else "baseline",
            label=step.label if step else "baseline", config=config, cached=cached_from is not None,
            cached_from_id=cached_from, seconds=seconds, flags=flags, artifact_path=str(folder), artifact_bytes=nbytes,
            metrics={m.name: m.value for m in metrics}, units={m.name: m.unit for m in metrics}, swept=swept,
            seed=self.seed, node=tree_node,
        )
        return _Done(info_row, key, predictions["predictions"] if predictions else None)

    def _info_of(self, stored: StoredVariant, node: VariantNode, parent: _Done | None, tree_node: int) -> VariantInfo:
        """A variant this run already recorded (resuming), as a row."""
        step = node.step
        return VariantInfo(
            id=stored.id, run_id=self.run.id, parent_id=parent.info.id if parent else None,
            step_index=step.index + 1 if step else 0, step_id=step.step if step else "baseline",
            label=step.label if step else "baseline", config=step.config.to_dict() if step else {},
            cached=True, cached_from_id=None, seconds=0.0, flags=stored.flags,
            artifact_path=str(stored.artifact_path), artifact_bytes=None,
            metrics={m.name: m.value for m in stored.metrics}, units={m.name: m.unit for m in stored.metrics},
            swept=step.swept_values if step else {}, seed=self.seed, node=tree_node,
        )

    def load_baseline(self) -> Any:
        from core.models import load_task_model, load_tokenizer
        from core.state import ModelState
        from core.steps import load_state

        folder = self.ref.local_folder()
        if folder is not None and (folder / "manifest.json").is_file():  # a stored variant as the start
            state = load_state(folder)
            if state.head != self.task.head:
                raise ArtifactError(f"{folder} has a {state.head} head; task {self.task.id} needs {self.task.head}")
            return state
        model, head_trained = load_task_model(self.ref, head=self.task.head, num_labels=self.task.num_labels)  # type: ignore[arg-type]
        model.eval()
        return ModelState(model=model, tokenizer=load_tokenizer(self.ref), task=self.task.id, head=self.task.head,
                          info={"head_trained": head_trained})

    def teacher_for(self, parent: _Done) -> Any:
        """The model entering the step ('parent', a fresh copy from its artifact) or the recipe's teacher."""
        from core.steps import load_state

        if self.recipe.teacher in (None, "parent"):
            teacher = load_state(parent.artifact)
        else:
            if self._teacher is None:
                from core.models import ModelRef, load_model, load_tokenizer
                from core.state import ModelState

                ref = ModelRef.parse(self.recipe.teacher)
                folder = ref.local_folder()
                if folder is not None and (folder / "manifest.json").is_file():
                    self._teacher = load_state(folder)
                else:
                    model = load_model(ref, head=self.task.head, num_labels=self.task.num_labels)  # type: ignore[arg-type]
                    self._teacher = ModelState(model, load_tokenizer(ref), self.task.id, self.task.head)
            teacher = self._teacher
        teacher.model.eval()
        return teacher

    @staticmethod
    def size_flag(parent: _Done, size: Any) -> str | None:
        from core.measure import SizeReport, size_flag

        m = parent.info.metrics
        if m.get("params") is None or m.get("nonzero_params") is None:
            return None
        parent_size = SizeReport(params=int(m["params"]), nonzero_params=int(m["nonzero_params"]),
                                 artifact_bytes=parent.info.size_bytes)
        return size_flag(parent_size, size)


def _predictions(stored: StoredVariant) -> list[Any] | None:
    return stored.predictions["predictions"] if stored.predictions else None


def _interval_values(name: str, interval: Any) -> list[MetricValue]:
    return [MetricValue(name, interval.value, "", "dev"), MetricValue(name + CI_LOW, interval.low, "", "dev"),
            MetricValue(name + CI_HIGH, interval.high, "", "dev")]


def _step_compresses(step_id: str) -> bool:
    from core.steps import get_step

    return get_step(step_id).compresses


def _max_output_difference(a: Any, b: Any) -> float:
    """Largest absolute difference of the two models' outputs on a fixed probe batch: the saved
    artifact must reload to the model the step produced (0 for every lossless codec)."""
    import torch

    from core.measure.timing import probe_batch

    batch = probe_batch(a.model, a.tokenizer, batch_size=2, seq_len=16, seed=0)
    with torch.inference_mode():
        out_a, out_b = a.model(**batch), b.model(**batch)
    names = [k for k in ("logits", "start_logits", "end_logits") if getattr(out_a, k, None) is not None]
    return max(float((getattr(out_a, k).float() - getattr(out_b, k).float()).abs().max()) for k in names)


def _title(step_id: str) -> str:
    from core.steps import get_step

    return "Baseline" if step_id == "baseline" else get_step(step_id).title


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (another node's scratch) or already gone
        folder.rmdir()


def _environment(recipe: Recipe) -> dict[str, Any]:
    import torch

    from core.measure import environment

    return {**environment(), "threads": torch.get_num_threads(), "seed": recipe.seed, "workbench": core.__version__}


def run_recipe(
    recipe: Recipe | dict[str, Any] | None,
    *,
    db_url_or_path: str | Path | None = None,
    artifacts_dir: str | Path | None = None,
    emit: Emit | None = None,
    cancelled: Callable[[], bool] | None = None,
    resume_run: int | None = None,
) -> Terminal:
    """Run (or resume) a recipe into the database, reporting events through ``emit``; return the
    terminal event (finished, failed or cancelled).

    Raises RecipeError/StoreError before a run is recorded (invalid recipe, unusable database);
    once the run exists, errors end it as failed/cancelled and are returned as the terminal event.
    ``resume_run`` continues a failed, cancelled or interrupted run from its last finished step
    (``recipe`` may then be None: the run's own recipe is used).
    """
    from core.models import ModelRef
    from core.paths import default_artifacts

    emit = emit or (lambda event: None)
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
        tree = variant_tree(recipe)
        ref, task = ModelRef.parse(recipe.model), recipe_task(recipe)
        env = _environment(recipe)
        if resume_run is not None:
            ctx, _ = claim_run_for_resume(store, resume_run, env)
        else:
            hasher = keys.Hasher()
            ident = RunIdentity(
                model_ref=str(ref), model_kind=ref.kind, model_hash=hasher.model(ref), task=task.id,
                data_hash=hasher.data(task), recipe_json=recipe.canonical_json(), recipe_name=recipe.name,
                seed=recipe.seed, primary_metric=task.primary_metric, environment=env,
            )
            ctx = create_run(store, ident, Path(artifacts_dir) if artifacts_dir else default_artifacts(store.path))
        runner = Runner(recipe, store, emit, cancelled, run=RunMeta(ctx.run_id, str(ref), task.id, task.primary_metric),
                        artifacts=ctx.artifacts_dir, resuming=resume_run is not None)
        return _execute(runner, tree)
    finally:
        store.close()


def _execute(runner: Runner, tree: VariantNode) -> Terminal:
    run_id = runner.run.id
    seeds = runner.recipe.run_seeds
    nodes = [n for _ in seeds for n in tree.walk()]
    per_seed = len(nodes) // len(seeds)
    planned = [PlannedStep(node=i, index=n.step.index + 1 if n.step else 0, step=n.step.step if n.step else "baseline",
                           label=(n.step.label if n.step else "baseline")
                           + (f" [seed {seeds[i // per_seed]}]" if len(seeds) > 1 else ""))
               for i, n in enumerate(nodes)]
    runner.emit(RunStarted(run_id=run_id, variants=len(planned), resumed=runner.resuming, steps=planned))
    terminal: Terminal
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
        runner.walk(tree)
    except StepCancelled as exc:
        finish_run(runner.store, run_id, s.CANCELLED, str(exc), "StepCancelled")
        terminal = RunCancelled(run_id=run_id)
    except WorkbenchError as exc:
        finish_run(runner.store, run_id, s.FAILED, str(exc), type(exc).__name__)
        terminal = RunFailed(run_id=run_id, error=str(exc), kind=type(exc).__name__, index=runner.current_index)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        message = f"Internal error ({type(exc).__name__}): {exc}"
        finish_run(runner.store, run_id, s.FAILED, message, type(exc).__name__)
        terminal = RunFailed(run_id=run_id, error=message, kind=type(exc).__name__, index=runner.current_index)
    except BaseException as exc:  # SIGTERM (Interrupted) or Ctrl+C: leave it resumable
        finish_run(runner.store, run_id, s.INTERRUPTED, "The run was stopped before it finished; resume to continue",
                   type(exc).__name__)
        runner.emit(RunCancelled(run_id=run_id, interrupted=True))
        raise
    else:
        finish_run(runner.store, run_id, s.FINISHED)
        terminal = RunFinished(run_id=run_id)
    runner.emit(terminal)
    return terminal
