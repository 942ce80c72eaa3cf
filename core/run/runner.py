"""Execute a recipe: record the run, measure the baseline, then apply, save and measure each step.

One transaction per finished variant, so a crash loses at most the step in flight. Sweeps form a
prefix tree (core.recipe.variant_tree) walked depth first: a shared prefix runs once. A finished
variant is reused instead of recomputed when its cache key (core.run.keys) matches; reuse loads
the stored artifact only when a later step needs it, and records the new row as cached. Resuming a
failed, cancelled or interrupted run reuses its own finished variants the same way. A recipe's
accuracy budget (core.recipe.Budget) flags a variant that breaks it; its subtree, and the later values
of its sweep, are reported skipped and not run.

Events (core.protocol) report progress; every finished variant's event carries its result row.

*Where* variants are made is an executor's business: :class:`LocalExecutor` walks the tree here,
depth first, handing each parent model to its children in memory; ``core.run.cluster.RayExecutor``
makes the shared prefix here and the independent branches as Ray tasks. Either way this process
decides what to compute (cache, resume), records every row and reports every event.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

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
    machine_hash,
    mark_interrupted_runs,
)
from core.store.rows import OVER_BUDGET, MetricValue, RunMeta, VariantInfo, build_row, machine_label

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


@dataclass
class Slot:
    """One node of the tree in one walk: its event id, its depth-first place, its chain position."""

    node: VariantNode
    seq: int  # event id: unique across the whole run (seeds included), as planned in RunStarted
    tree_node: int  # its place in one walk of the tree (the same for every seed)
    index: int  # chain position, 0 = baseline
    step_id: str
    label: str
    started: float = 0.0

    def started_event(self, measure_seconds: float | None = None, later_seconds: float | None = None) -> StepStarted:
        return StepStarted(node=self.seq, index=self.index, step=self.step_id, label=self.label,
                           title=_title(self.step_id), measure_seconds=measure_seconds, later_seconds=later_seconds)


# Above this many distinct configs still to come, the time left is estimated per step, not per config,
# so that estimating stays quick beside each variant of a very large sweep.
OUTLOOK_KINDS = 1000


class LocalExecutor:
    """Every variant in this process, depth first; a parent's model goes to its children in memory."""

    overlaps = False  # one variant at a time: the time left is the sum of what is still to come

    def walk(self, runner: Runner, tree: VariantNode, key: str) -> None:
        runner.visit(tree, None, key, None)

    def close(self) -> None:
        pass


def _usable_artifact(folder: Path) -> bool:
    from core.artifacts import is_complete_artifact
    from core.backends.artifact import is_complete_backend_artifact

    # a manifest alone is not a result: the weights (or a deployed backend file) must be whole
    return is_complete_artifact(folder) or is_complete_backend_artifact(folder)


class Runner:
    """Walks one run's variant tree: cache, compute (core.run.variant), record, report. Construct
    through :func:`run_recipe`."""

    def __init__(self, recipe: Recipe, store: Store, emit: Emit, cancelled: Callable[[], bool], *,
                 run: RunMeta, artifacts: Path, resuming: bool, executor: Any = None) -> None:
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
        self.executor = executor or LocalExecutor()
        self.places: dict[int, int] = {}  # id(node) -> its depth-first place in the tree
        self.seed_index = 0  # which of the run's seeds is being walked
        self.current_index: int | None = None  # chain position (0 = baseline) of the step in flight
        self.reference: VariantInfo | None = None  # what "% of reference" compares with (core.store.rows)
        self.baseline: VariantInfo | None = None
        self._teacher: Any = None  # the recipe's teacher model, loaded once
        # phase, "<phase>:<step id>" (the step's own last), "apply:<step id>" or "apply:<step id> <config>"
        # -> its last measured wall time; seeded with earlier runs' medians of the same work (walk)
        self.seconds: dict[str, float] = {}
        self.measured = False  # whether this run has measured a variant yet
        self._machine: dict[str, Any] | None = None
        self._train_rows: int | None = -1  # -1: not read yet; None: the task's training rows cannot be read
        # (step and config, reads its parent from disk) -> how many such variants are still to come in this run
        self.to_come: Counter[tuple[str, bool]] = Counter()
        self.kind_steps: dict[str, Any] = {}  # step and config -> the step (a ResolvedStep; None: baseline)
        self.loads_parent: dict[int, bool] = {}  # id(node) -> it is not its parent's last child

    @property
    def machine(self) -> dict[str, Any]:
        """This machine's fingerprint (core.measure.machine_fingerprint): where local variants are timed."""
        if self._machine is None:
            from core.measure import machine_fingerprint

            self._machine = machine_fingerprint()
        return self._machine

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
        from core.store import past_phase_seconds

        self.places = {id(n): i for i, n in enumerate(tree.walk())}
        self.loads_parent = {id(c): c is not n.children[-1] for n in tree.walk() for c in n.children}
        self.to_come = Counter(self._kind(n) for n in tree.walk() for _ in self.recipe.run_seeds)
        # A step this run has not measured yet is expected at its pace in earlier runs of the same work.
        try:
            past = past_phase_seconds(self.store, self.recipe.to_dict())
        except (WorkbenchError, SQLAlchemyError) as exc:  # an estimate never fails a run
            self.log(f"Earlier runs' timings could not be read ({exc}); the time left starts after the first "
                     "variant", "debug")
            past = {}
        self.seconds.update({k: past[f"{k}:baseline"] for k in variant.PHASES if f"{k}:baseline" in past})
        self.seconds.update(past)
        # Before this run measures anything, estimate only when every variant to come was timed before: a
        # step never timed would be priced at a guessed pace (hours for a fine-tune).
        self.measured = self.measured or (bool(past) and all(self._timed_before(self.kind_steps[name])
                                                             for name, _reads in self.to_come))
        for i, seed in enumerate(self.recipe.run_seeds):
            self.seed_index, self.reference, self.baseline = i, None, None
            self.walk_recipe = dataclasses.replace(self.recipe, seed=seed, seeds=())
            self.executor.walk(self, tree, keys.root_key(self.walk_recipe, self.ref, self.task, self.hasher))

    def slot(self, node: VariantNode) -> Slot:
        tree_node = self.places[id(node)]
        step_id, label = (node.step.step, node.step.label) if node.step else ("baseline", "baseline")
        if len(self.recipe.run_seeds) > 1:
            label += f" [seed {self.seed}]"
        return Slot(node, self.seed_index * len(self.places) + tree_node, tree_node,
                    node.step.index + 1 if node.step else 0, step_id, label, time.perf_counter())

    def visit(self, node: VariantNode, parent: _Done | None, key: str, state: Any) -> bool:
        """Produce ``node``'s variant here, then its children's (``state``: its parent's model, when in
        memory); True when it broke the recipe's accuracy budget (its subtree was skipped)."""
        done, new_state = self.produce(node, parent, key, state)
        if self.over_budget(done):
            for child in node.children:
                self.skip(child, f"{self.slot(node).label} is over the accuracy budget")
            return True
        # A sweep's values run in the order written; the first one over budget ends the sweep.
        over_at: str | None = None
        for i, child in enumerate(node.children):
            assert child.step is not None
            if over_at is not None:
                self.skip(child, f"an earlier value of this sweep ({over_at}) is over the accuracy budget")
                continue
            # A step may change its input in place: only the last child gets the model in memory,
            # its siblings read it from the artifact (else a sibling would start from a changed model).
            last = i == len(node.children) - 1
            if self.visit(child, done, self.child_key(key, child.step), new_state if last else None):
                over_at = child.step.label
        return False

    def produce(self, node: VariantNode, parent: _Done | None, key: str, state: Any) -> tuple[_Done, Any]:
        """One node in this process: reuse it or compute it, record it, report it. Returns it and
        its shipped model (None when reused)."""
        self.check_cancelled()
        slot = self.slot(node)
        self.current_index = slot.index
        self.emit(slot.started_event(*self.outlook(node, loads=state is None)))
        new_state = None
        done = self.reuse(slot, parent, key)
        if done is None:
            new_state, done = self.compute(slot, parent, key, state)
        self.report(slot, done)
        return done, new_state

    def reuse(self, slot: Slot, parent: _Done | None, key: str) -> _Done | None:
        """This run's own finished variant (resuming) or a cached one, recorded; None: compute it."""
        node, label = slot.node, slot.label
        reused = find_in_run(self.store, self.run.id, key) if self.resuming else None
        if reused is not None and not _usable_artifact(reused.artifact_path):
            self.log(f"{label}: its artifact {reused.artifact_path} is gone or damaged; making it again", "warning")
            reused = None
        if reused is not None:
            self.log(f"{label}: already finished in this run (variant {reused.id})")
            return _Done(self._info_of(reused, node, parent, slot.tree_node), key, _predictions(reused))
        cached = find_cached(self.store, key, _usable_artifact)
        if cached is None:
            return None
        flags = [f for f in cached.flags if f.get("code") != OVER_BUDGET]  # judged by this run's budget
        over = self.budget_flag({m.name: m.value for m in cached.metrics})
        done = self.record(node, parent, key, cached.metrics, cached.artifact_path, time.perf_counter() - slot.started,
                           cached.info, flags=flags + ([over.to_dict()] if over else []), tree_node=slot.tree_node,
                           predictions=cached.predictions, cached_from=cached.id, machine=cached.machine)
        self.log(f"{label}: reused from cache (variant {cached.id})")
        return done

    def child_key(self, parent_key: str, step: Any) -> str:
        """The cache key of ``step`` made from the variant keyed ``parent_key`` in this run."""
        return keys.child_key(parent_key, step, self.teacher_id, self.task.id, self.hasher)

    @staticmethod
    def over_budget(done: _Done) -> bool:
        return any(f.get("code") == OVER_BUDGET for f in done.info.flags)

    def skip(self, node: VariantNode, reason: str) -> None:
        """Account for a subtree that will not run: its planned nodes are reported skipped."""
        for n in node.walk():
            self.to_come[self._kind(n)] -= 1
            slot = self.slot(n)
            self.emit(StepSkipped(node=slot.seq, index=slot.index, label=slot.label, reason=reason))
        self.log(f"{node.step.label if node.step else 'baseline'} and what follows it not run: {reason}")

    def budget_flag(self, metrics: dict[str, float | None]) -> Any:
        """The "over budget" flag (core.measure.verdicts) of a variant with these metrics, or None."""
        from core.measure import verdicts

        if self.recipe.budget is None or self.reference is None:
            return None  # no budget, or this variant is the first trained one: the reference itself
        name = self.task.primary_metric
        return verdicts.over_budget(self.task, metrics.get(name), self.reference.metrics.get(name), self.reference.id,
                                    self.recipe.budget)

    def expected_seconds(self, step: Any, *, loads: bool) -> dict[str, float]:
        """Each phase's expected seconds for a variant made by ``step`` (a ResolvedStep; None: the baseline),
        from this run's measurements so far and earlier runs' of the same work (core.run.variant.expected_seconds;
        ``loads``: its parent's model must be read from its artifact). The step's work is its config's own
        when timed before, else the step's last, else ``Step.training_work``."""
        from core.state import TRAINABLE
        from core.steps import get_step

        step_id = step.step if step else None
        trains, work = False, None
        if step is not None:
            step_cls = get_step(step.step)
            trains = step_cls.needs_teacher or TRAINABLE in step_cls.requires
            timed = variant.work_key(step.step, step.config_text) in self.seconds or f"apply:{step_id}" in self.seconds
            if not timed and self.train_rows() is not None:
                work = step_cls(step.config).training_work(self.train_rows(), self.task.id)
        return variant.expected_seconds(self.recipe.measure, self.seconds, step_id, trains=trains, work=work,
                                        loads=step is None or loads, config_text=step.config_text if step else None)

    def _timed_before(self, step: Any) -> bool:
        """Whether this step's variants (None: the baseline) have measured phases and, for a step, this
        config's own work in ``self.seconds``."""
        step_id = step.step if step else "baseline"
        return f"evaluate:{step_id}" in self.seconds and (
            step is None or variant.work_key(step_id, step.config_text) in self.seconds)

    def _kind(self, node: VariantNode) -> tuple[str, bool]:
        """What a variant's expected time depends on: its step and config (as text: a config need not be
        hashable) and whether it reads its parent from disk; ``self.kind_steps`` keeps each kind's step."""
        step = node.step
        name = "baseline" if step is None else f"{step.step} {step.config_text}"
        self.kind_steps.setdefault(name, step)
        return name, step is None or self.loads_parent[id(node)]

    def outlook(self, node: VariantNode, *, loads: bool) -> tuple[float | None, float | None]:
        """(``node``'s load, save and measuring seconds, every later planned variant's seconds), expected from
        this run's measured phases and earlier runs'; (None, None) before this run measured anything, unless
        earlier runs timed every variant it plans. Counts ``node`` as begun."""
        self.to_come[self._kind(node)] -= 1
        if not self.measured:
            return None, None
        mine = self.expected_seconds(node.step, loads=loads)
        measuring = sum(v for k, v in mine.items() if k != "apply")
        if self.executor.overlaps:
            return measuring, None
        kinds = [(self.kind_steps[name], reads, count) for (name, reads), count in self.to_come.items() if count > 0]
        if len(kinds) > OUTLOOK_KINDS:  # a huge sweep: one config stands for all of its step's
            grouped: dict[tuple[str | None, bool], tuple[Any, int]] = {}
            for step, reads, count in kinds:
                first, total = grouped.get((step.step if step else None, reads), (step, 0))
                grouped[(step.step if step else None, reads)] = (first, total + count)
            kinds = [(first, reads, total) for (_step_id, reads), (first, total) in grouped.items()]
        later = sum(count * sum(self.expected_seconds(step, loads=reads).values()) for step, reads, count in kinds)
        return measuring, later

    def job(self, slot: Slot, parent: _Done | None, key: str, *, loads: bool) -> variant.Job:
        """What to compute for ``slot`` (``loads``: its parent's model must be read from its artifact)."""
        node = slot.node
        step_id = node.step.step if node.step else None
        plan = variant.shares(self.expected_seconds(node.step, loads=loads))
        return variant.Job(
            recipe=self.walk_recipe, step=node.step, key=key, node=slot.seq, index=slot.index, shares=plan,
            folder=self.artifacts / f"{slot.seq:03d}-{step_id or 'baseline'}-{key[:8]}",
            parent_artifact=parent.artifact if parent else None,
            parent_predictions=parent.predictions if parent else None, parent_size=parent.size if parent else None,
        )

    def compute(self, slot: Slot, parent: _Done | None, key: str, state_in: Any) -> tuple[Any, _Done]:
        job = self.job(slot, parent, key, loads=state_in is None)
        shipped, made = variant.make_variant(job, self.task, emit=self.emit, cancelled=self.cancelled,
                                             state_in=state_in, teacher=lambda: self.teacher_for(parent))
        return shipped, self.made(slot, parent, key, made, time.perf_counter() - slot.started, self.machine)

    def made(self, slot: Slot, parent: _Done | None, key: str, made: variant.Made, seconds: float,
             machine: dict[str, Any]) -> _Done:
        """Record a computed variant (made here or on a Ray node, timed on ``machine``)."""
        measured = {k: v for k, v in made.timings.items() if k not in ("apply", "apply_cpu")}
        self.seconds.update(measured)
        # and per step: an int8 variant measures about twice as fast as its fp32 parent
        self.seconds.update({f"{k}:{slot.step_id}": v for k, v in measured.items()})
        evaluated = len(made.predictions.get("indices") or ())
        if evaluated and made.timings.get("evaluate"):
            self.seconds["evaluate_per_row"] = made.timings["evaluate"] / evaluated
        if slot.node.step is not None:
            self.seconds[f"apply:{slot.step_id}"] = made.timings["apply"]
            self.seconds[variant.work_key(slot.step_id, slot.node.step.config_text)] = made.timings["apply"]
        self.measured = True
        over = self.budget_flag({v.name: v.value for v in made.values})
        return self.record(slot.node, parent, key, made.values, made.folder, seconds, made.info,
                           flags=made.flags + ([over.to_dict()] if over is not None else []),
                           tree_node=slot.tree_node, predictions=made.predictions, machine=machine)

    def report(self, slot: Slot, done: _Done) -> None:
        """The finished variant's row, to whoever listens."""
        info = done.info
        if slot.node.step is None:
            self.baseline = info
        ref = self.reference
        if info.head_trained and (ref is None or (ref.step_index != 0 and (info.node or 0) < (ref.node or 0))):
            self.reference = info  # the baseline if trained, else the first trained variant (core.store.rows)
        row = build_row(info, self.run, self.reference, self.baseline)
        self.emit(StepFinished(node=slot.seq, index=slot.index, variant_id=info.id, cached=info.cached,
                               seconds=round(time.perf_counter() - slot.started, 3), row=row.to_dict()))

    def record(self, node: VariantNode, parent: _Done | None, key: str, metrics: list[MetricValue], folder: Path,
               seconds: float, info: dict[str, Any], *, flags: list[dict[str, str]], tree_node: int,
               predictions: dict[str, Any] | None, cached_from: int | None = None,
               machine: dict[str, Any] | None = None) -> _Done:
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
            cached_from=cached_from, seed=self.seed, node=tree_node, predictions=predictions, machine=machine,
        )
        info_row = VariantInfo(
            id=vid, run_id=self.run.id, parent_id=parent.info.id if parent else None,
            step_index=step.index + 1 if step else 0, step_id=step.step if step else "baseline",
            label=step.label if step else "baseline", config=config, cached=cached_from is not None,
            cached_from_id=cached_from, seconds=seconds, flags=flags, artifact_path=str(folder), artifact_bytes=nbytes,
            metrics={m.name: m.value for m in metrics}, units={m.name: m.unit for m in metrics}, swept=swept,
            seed=self.seed, node=tree_node, **_machine_fields(machine),
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
            swept=step.swept_values if step else {}, seed=self.seed, node=tree_node, **_machine_fields(stored.machine),
        )

    def train_rows(self) -> int | None:
        """Rows of the task's train split, read once, for the progress plan of steps not yet timed."""
        if self._train_rows == -1:
            try:
                self._train_rows = len(self.task.load("train")) if "train" in self.task.splits else None
            except Exception:  # only an estimate: the step itself reports a data problem, in its words
                self._train_rows = None
        return self._train_rows

    def teacher_for(self, parent: _Done | None) -> Any:
        """A fresh copy of the step's input ('parent'), or the recipe's teacher, loaded once per run."""
        if self.recipe.teacher in (None, "parent"):
            return variant.load_teacher(self.recipe, self.task, parent.artifact if parent else None)
        if self._teacher is None:
            self._teacher = variant.load_teacher(self.recipe, self.task, None)
        return self._teacher


def _machine_fields(machine: dict[str, Any] | None) -> dict[str, str | None]:
    if machine is None:
        return {"machine": None, "machine_label": None}
    return {"machine": machine_hash(machine), "machine_label": machine_label(machine)}


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
    ray: str | None = None,
    shared_artifacts: bool = False,
) -> Terminal:
    """Run (or resume) a recipe into the database, reporting events through ``emit``; return the
    terminal event (finished, failed or cancelled).

    Raises RecipeError/StoreError before a run is recorded (invalid recipe, unusable database);
    once the run exists, errors end it as failed/cancelled and are returned as the terminal event.
    ``resume_run`` continues a failed, cancelled or interrupted run from its last finished step
    (``recipe`` may then be None: the run's own recipe is used). ``ray`` ("auto" or a cluster's
    address) makes the independent branches on that Ray cluster (core.run.cluster); with
    ``shared_artifacts`` every Ray node reads and writes the artifacts folder at the same path
    instead of sending artifacts through Ray's object store.
    """
    from core.models import ModelRef
    from core.paths import default_artifacts

    emit = emit or (lambda event: None)
    cancelled = cancelled or (lambda: False)
    store = open_store(db_url_or_path)
    executor: Any = None
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
        if ray is not None:  # reach the cluster before a run is recorded: a wrong address records nothing
            from core.run.cluster import RayExecutor

            executor = RayExecutor.connect(ray, shared_artifacts=shared_artifacts, emit=emit, recipe=recipe)
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
                        artifacts=ctx.artifacts_dir, resuming=resume_run is not None, executor=executor)
        return _execute(runner, tree)
    finally:
        if executor is not None:
            executor.close()
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
        if runner.recipe.measure.retime_on_driver:
            from core.run.retime import retime_run

            retime_run(runner)
    except StepCancelled as exc:
        finish_run(runner.store, run_id, s.CANCELLED, str(exc), "StepCancelled")
        terminal = RunCancelled(run_id=run_id)
    except WorkbenchError as exc:
        kind = getattr(exc, "kind", None) or type(exc).__name__  # a step that failed on a Ray node keeps its type
        finish_run(runner.store, run_id, s.FAILED, str(exc), kind)
        terminal = RunFailed(run_id=run_id, error=str(exc), kind=kind, index=runner.current_index)
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
