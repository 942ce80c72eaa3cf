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

import dataclasses
import json
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
    Event,
    Log,
    PlannedStep,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from core.recipe import Recipe, VariantNode, check_recipe, recipe_task, variant_tree
from core.run import keys, variant
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
from core.store.rows import OVER_BUDGET, MetricValue, RunMeta, VariantInfo, build_row

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

    @property
    def size(self) -> dict[str, int | None]:
        m = self.info.metrics
        return {"params": _int(m.get("params")), "nonzero_params": _int(m.get("nonzero_params")),
                "artifact_bytes": self.info.size_bytes}


def _usable_artifact(folder: Path) -> bool:
    from core.artifacts import is_complete_artifact
    from core.backends.artifact import is_complete_backend_artifact

    # a manifest alone is not a result: the weights (or a deployed backend file) must be whole
    return is_complete_artifact(folder) or is_complete_backend_artifact(folder)


class Runner:
    """Walks one run's variant tree: cache, compute (core.run.variant), record, report. Construct
    through :func:`run_recipe`."""

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
        self.walk_recipe = recipe  # the recipe with the seed of the walk in progress (recipes may list several)
        self.node_seq = 0  # event ids: unique across the whole run
        self.tree_node = 0  # the node's place in one walk of the tree (the same for every seed)
        self.current_index: int | None = None  # chain position (0 = baseline) of the step in flight
        self.reference: VariantInfo | None = None  # what "% of reference" compares with (core.store.rows)
        self.baseline: VariantInfo | None = None
        self._teacher: Any = None  # the recipe's teacher model, loaded once
        self.seconds: dict[str, float] = {}  # phase (or "apply:<step id>") -> its last measured wall time

    @property
    def seed(self) -> int:
        return self.walk_recipe.seed

    def log(self, message: str, level: str = "info") -> None:
        self.emit(Log(level=level, message=message))

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise StepCancelled("Run cancelled by the user")

    # -- the walk ------------------------------------------------------------------------
    def walk(self, tree: VariantNode) -> None:
        for seed in self.recipe.run_seeds:
            self.tree_node, self.reference, self.baseline = 0, None, None
            self.walk_recipe = dataclasses.replace(self.recipe, seed=seed, seeds=())
            self.visit(tree, None, keys.root_key(self.walk_recipe, self.ref, self.task, self.hasher), None)

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
        if reused is not None and not _usable_artifact(reused.artifact_path):
            self.log(f"{label}: its artifact {reused.artifact_path} is gone or damaged; making it again", "warning")
            reused = None
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
        from core.state import TRAINABLE
        from core.steps import get_step

        step_id = node.step.step if node.step else None
        trains = False
        if step_id is not None:
            step_cls = get_step(step_id)
            trains = step_cls.needs_teacher or TRAINABLE in step_cls.requires
        plan = variant.shares(variant.expected_seconds(self.recipe.measure, self.seconds, step_id, trains=trains,
                                                       loads=node.step is None or state_in is None))
        job = variant.Job(
            recipe=self.walk_recipe, step=node.step, key=key, node=seq, index=index, shares=plan,
            folder=self.artifacts / f"{seq:03d}-{step_id or 'baseline'}-{key[:8]}",
            parent_artifact=parent.artifact if parent else None,
            parent_predictions=parent.predictions if parent else None, parent_size=parent.size if parent else None,
        )
        shipped, made = variant.make_variant(job, self.task, emit=self.emit, cancelled=self.cancelled,
                                             state_in=state_in, teacher=lambda: self.teacher_for(parent))
        self.seconds.update({k: v for k, v in made.timings.items() if k != "apply"})
        if step_id is not None:
            self.seconds[f"apply:{step_id}"] = made.timings["apply"]
        over = self.budget_flag({v.name: v.value for v in made.values})
        done = self.record(node, parent, key, made.values, made.folder, time.perf_counter() - start, made.info,
                           flags=made.flags + ([over.to_dict()] if over is not None else []), tree_node=tree_node,
                           predictions=made.predictions)
        return shipped, done

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

    def teacher_for(self, parent: _Done | None) -> Any:
        """A fresh copy of the step's input ('parent'), or the recipe's teacher, loaded once per run."""
        if self.recipe.teacher in (None, "parent"):
            return variant.load_teacher(self.recipe, self.task, parent.artifact if parent else None)
        if self._teacher is None:
            self._teacher = variant.load_teacher(self.recipe, self.task, None)
        return self._teacher


def _predictions(stored: StoredVariant) -> list[Any] | None:
    return stored.predictions["predictions"] if stored.predictions else None


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _title(step_id: str) -> str:
    from core.steps import get_step

    return "Baseline" if step_id == "baseline" else get_step(step_id).title


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
