"""Make one variant, away from the database: load its input, apply its step, save the artifact,
reload it and measure what ships, and judge the numbers (intervals and flags).

A :class:`Job` holds plain values only (the recipe, the resolved step, paths, the parent's
predictions and sizes), so it can run in the worker (core.run.runner) or on another machine (a Ray
task); what it makes (:class:`Made`) goes back to whoever records it. Events reach ``emit``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ArtifactError, StepCancelled
from core.protocol import Curve, Event, Log, Progress
from core.store.rows import CI_HIGH, CI_LOW, MetricValue

PHASES = ("load", "apply", "save", "evaluate", "size", "latency")


@dataclass
class Job:
    """One node of the variant tree to compute. ``step`` is None for the baseline."""

    recipe: Any  # core.recipe.Recipe, with ``seed`` the seed of this walk
    step: Any  # core.recipe.ResolvedStep | None
    key: str  # its cache key (stored in the artifact's manifest)
    folder: Path  # where its artifact goes
    node: int  # event id
    index: int  # chain position (0 = baseline)
    parent_artifact: Path | None = None  # loaded when no parent model is handed over in memory
    parent_predictions: list[Any] | None = None  # for the paired interval against the parent
    parent_size: dict[str, int | None] | None = None  # params, nonzero_params, artifact_bytes (size flag)
    shares: dict[str, tuple[float, float]] = field(default_factory=dict)  # phase -> slice of the node's 0..1

    @property
    def seed(self) -> int:
        return int(self.recipe.seed)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, to run the job in another process (core.run.cluster)."""
        step = self.step
        return {
            "recipe": self.recipe.to_dict(), "key": self.key, "folder": str(self.folder), "node": self.node,
            "index": self.index,
            "step": None if step is None else {"index": step.index, "step": step.step, "config": step.config.to_dict(),
                                               "swept": list(step.swept)},
            "parent_artifact": None if self.parent_artifact is None else str(self.parent_artifact),
            "parent_predictions": self.parent_predictions, "parent_size": self.parent_size,
            "shares": {k: list(v) for k, v in self.shares.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """The job :meth:`to_dict` wrote; the steps it names must be registered here."""
        from core.recipe import Recipe, ResolvedStep
        from core.steps import get_step

        s = data["step"]
        step = None if s is None else ResolvedStep(
            index=s["index"], step=s["step"], config=get_step(s["step"]).config_cls.from_dict(s["config"], step=s["step"]),
            swept=tuple(s["swept"]))
        return cls(recipe=Recipe.from_dict(data["recipe"]), step=step, key=data["key"], folder=Path(data["folder"]),
                   node=data["node"], index=data["index"],
                   parent_artifact=None if data["parent_artifact"] is None else Path(data["parent_artifact"]),
                   parent_predictions=data["parent_predictions"], parent_size=data["parent_size"],
                   shares={k: (float(v[0]), float(v[1])) for k, v in data["shares"].items()})


@dataclass
class Made:
    """A computed variant, ready to record."""

    folder: Path
    values: list[MetricValue]
    flags: list[dict[str, str]]
    predictions: dict[str, Any]  # {"indices", "predictions"} on the dev split
    info: dict[str, Any]  # the step's report, timings and training curves
    timings: dict[str, float]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def node_progress(emit: Callable[[Event], None], node: int, index: int) -> Callable[[float, str], None]:
    """Progress of one node, throttled to 10 per second (a new phase's message always goes through)
    and never going backwards."""
    shown, phase, last = [0.0], [""], [0.0]

    def report(fraction: float, message: str = "") -> None:
        now = time.monotonic()
        fraction = max(shown[0], min(1.0, float(fraction)))
        kind = message.split(" ", 1)[0]
        if fraction < 1.0 and now - last[0] < 0.1 and kind == phase[0]:
            return
        last[0], shown[0], phase[0] = now, fraction, kind
        emit(Progress(node=node, index=index, fraction=fraction, message=message))

    return report


def measure_progress(report: Callable[[float, str], None],
                     share: dict[str, tuple[float, float]]) -> Callable[[float, str], None]:
    """measure_variant's 0..1 (core.measure.variant.PHASES) mapped onto the node's time slices."""
    from core.measure.variant import PHASES as MEASURE_PHASES

    def on_progress(fraction: float, message: str = "") -> None:
        for name, (a, b) in MEASURE_PHASES.items():
            if fraction <= b or name == "latency":
                lo, hi = share[name]
                local = min(1.0, max(0.0, (fraction - a) / (b - a)))
                report(lo + (hi - lo) * local, message)
                return

    return on_progress


def load_start(recipe: Any, task: Any) -> Any:
    """The chain's input: a stored variant given as the model, or the model with its task head
    (``head_trained`` says whether the head came from the checkpoint)."""
    from core.models import ModelRef, load_task_model, load_tokenizer
    from core.state import ModelState
    from core.steps import load_state
    from core.tasks import head_carry_over_problem

    ref = ModelRef.parse(recipe.model)
    folder = ref.local_folder()
    if folder is not None and (folder / "manifest.json").is_file():
        state = load_state(folder)
        if state.head != task.head:
            raise ArtifactError(f"{folder} has a {state.head} head; task {task.id} needs {task.head}")
        problem = head_carry_over_problem(state.task, getattr(state.model.config, "num_labels", None), task)
        if problem:
            raise ArtifactError(f"{folder} was made for task {state.task}: {problem}; choose a variant of this task")
        if state.task != task.id:  # a variant of another task (QNLI's before RTE): the chain now runs on this one
            state.task = task.id  # else its variants' manifests would name the task it was made for
            state.data = {}  # rows prepared for the old task are not this task's training data
        return state
    model, head_trained = load_task_model(ref, head=task.head, num_labels=task.num_labels)  # type: ignore[arg-type]
    model.eval()
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task=task.id, head=task.head,
                      info={"head_trained": head_trained})


def load_teacher(recipe: Any, task: Any, parent_artifact: Path | None) -> Any:
    """The model a distilling step learns from: a fresh copy of its input ('parent', the default) or
    the recipe's teacher model."""
    from core.models import ModelRef, load_model, load_tokenizer
    from core.state import ModelState
    from core.steps import load_state

    if recipe.teacher in (None, "parent"):
        assert parent_artifact is not None
        teacher = load_state(parent_artifact)
    else:
        ref = ModelRef.parse(recipe.teacher)
        folder = ref.local_folder()
        if folder is not None and (folder / "manifest.json").is_file():
            teacher = load_state(folder)
        else:
            model = load_model(ref, head=task.head, num_labels=task.num_labels)  # type: ignore[arg-type]
            teacher = ModelState(model, load_tokenizer(ref), task.id, task.head)
    teacher.model.eval()
    return teacher


def make_variant(job: Job, task: Any, *, emit: Callable[[Event], None], cancelled: Callable[[], bool],
                 state_in: Any = None, teacher: Callable[[], Any] | None = None) -> tuple[Any, Made]:
    """Compute ``job``: returns the shipped model state (the reloaded artifact, for the children)
    and what to record. ``state_in`` is the parent's model when still in memory; ``teacher``, when
    given, supplies the distillation teacher (so a caller can keep one loaded)."""
    from core.measure.variant import measure_variant
    from core.state import DEPLOYED, StepContext
    from core.steps import get_step, load_state

    progress = node_progress(emit, job.node, job.index)
    share = job.shares or even_shares()
    seed_everything(job.seed)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    step_info: dict[str, Any] = {}
    if job.step is None:
        progress(0.0, "loading the model")
        state = load_start(job.recipe, task)
        timings["load"] = time.perf_counter() - clock
    else:
        if state_in is None:  # a parent still in memory costs no load: its ~0 s must not stand for one
            progress(0.0, "loading the parent variant")
            state_in = load_state(job.parent_artifact)
            timings["load"] = time.perf_counter() - clock
        step_cls = get_step(job.step.step)
        teacher_state = None
        if step_cls.needs_teacher:
            teacher_state = teacher() if teacher is not None else load_teacher(job.recipe, task, job.parent_artifact)
        scratch = job.folder.parent / "scratch" / job.folder.name
        scratch.mkdir(parents=True, exist_ok=True)
        lo, hi = share["apply"]
        curves: dict[str, dict[str, list[list[float]]]] = {}

        def curve(phase: str, series: str, step: int, value: float) -> None:
            curves.setdefault(phase, {}).setdefault(series, []).append([step, value])
            emit(Curve(node=job.node, index=job.index, phase=phase, series=series, step=step, value=value))

        ctx = StepContext(
            seed=job.seed, task=task, scratch=scratch, progress=lambda f, m="": progress(lo + (hi - lo) * f, m),
            log=lambda message: emit(Log(level="info", message=message)), cancelled=cancelled,
            teacher=teacher_state, threads=job.recipe.measure.threads, curve=curve,
        )
        before = dict(state_in.info)
        clock, cpu = time.perf_counter(), time.process_time()
        try:
            state = step_cls(job.step.config).apply(state_in, ctx)
            step_info = {k: v for k, v in state.info.items() if before.get(k) != v}
            if curves:
                step_info["curves"] = curves  # stored with the variant, viewable after the run
            timings["apply"] = time.perf_counter() - clock
            timings["apply_cpu"] = time.process_time() - cpu  # this process, every thread: a shared machine's load shows less here
            if cancelled():
                raise StepCancelled("Run cancelled by the user")
            # A deployed file (quantize.static_int8) still lies in the step's scratch: saved before it goes.
            shipped, roundtrip = save_and_reload(job, state, progress, share, timings)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # scratch is per step; artifacts are what stays
            with contextlib.suppress(OSError):  # not empty (another node's scratch) or already gone
                scratch.parent.rmdir()
    if job.step is None:
        if cancelled():
            raise StepCancelled("Run cancelled by the user")
        shipped, roundtrip = save_and_reload(job, state, progress, share, timings)
    settings = job.recipe.measure
    deployed = DEPLOYED in shipped.traits
    if deployed:
        from core.backends.artifact import size_report as backend_size_report

        sizer = backend_size_report
    else:
        sizer = None
    on_measure = measure_progress(progress, share)
    if settings.timed_on_backends:  # latency is timed after, on every backend: the bar stops before its slice
        from core.measure.variant import PHASES as MEASURE_PHASES

        measuring = on_measure

        def on_measure(fraction: float, message: str = "") -> None:
            measuring(min(fraction, MEASURE_PHASES["latency"][0]), message)
    measured = measure_variant(shipped, job.folder, task, settings, seed=job.seed, progress=on_measure,
                               cancelled=cancelled,
                               time_latency=not settings.timed_on_backends, sizer=sizer)
    timings.update(measured.seconds)
    values, flags = assess(job, task, shipped, measured)
    values.append(MetricValue("roundtrip_max_abs_diff", roundtrip, "", "probe"))
    backend_info: dict[str, Any] = {}
    if settings.timed_on_backends:
        from core.backends.measure import measure_backends

        clock = time.perf_counter()
        lo, hi = share["latency"]
        on_backends = measure_backends(
            shipped, task, settings, exports=job.folder.parent / "exports" / job.folder.name, seed=job.seed,
            label=job.step.label if job.step else "baseline", cancelled=cancelled,
            progress=lambda f, m="": progress(lo + (hi - lo) * f, m),
        )
        timings["latency"] = time.perf_counter() - clock
        values += on_backends.values
        flags += on_backends.flags
        backend_info = {"backends": on_backends.info}
    info = {**step_info, **backend_info, "timings": {k: round(v, 3) for k, v in timings.items()}}
    emit(Log(level="debug", message="timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())))
    predictions = {"indices": measured.evaluation.indices, "predictions": measured.evaluation.predictions,
                   "confidences": measured.evaluation.confidences}
    return shipped, Made(job.folder, values, [f.to_dict() for f in flags], predictions, info, timings)


def save_and_reload(job: Job, state: Any, progress: Callable[[float, str], None],
                    share: dict[str, tuple[float, float]], timings: dict[str, float]) -> tuple[Any, float]:
    """Save the variant's artifact and reload it: what ships is measured and the chain continues from
    it. A deployed model (a backend file) is copied as is and reopened on its backend."""
    from core.artifacts import save_artifact
    from core.state import DEPLOYED
    from core.steps import load_state

    progress(share["save"][0], "saving the artifact")
    clock = time.perf_counter()
    extra = {"info": state.info, "cache_key": job.key}
    if DEPLOYED in state.traits:
        from core.backends.artifact import save_deployed

        save_deployed(state.model, job.folder, extra={**extra, "base": str(job.recipe.model)})
    else:
        save_artifact(state, job.folder, base=str(job.recipe.model), extra=extra)
    shipped = load_state(job.folder, threads=job.recipe.measure.threads)
    roundtrip = max_output_difference(state, shipped)
    timings["save"] = time.perf_counter() - clock
    return shipped, roundtrip


def assess(job: Job, task: Any, state: Any, measured: Any) -> tuple[list[MetricValue], list[Any]]:
    """Intervals on the task metrics, the change against the parent and the flags (core.measure.verdicts)."""
    from core.measure import SizeReport, size_flag, verdicts
    from core.steps import get_step

    ev, seed = measured.evaluation, job.seed
    values = list(measured.values)
    for name, ci in verdicts.intervals(task, ev.predictions, ev.references, seed=seed).items():
        values += [MetricValue(name + CI_LOW, ci.low, "", "dev"), MetricValue(name + CI_HIGH, ci.high, "", "dev")]
    head_trained = bool(state.info.get("head_trained"))
    margin = verdicts.learned(task, ev.predictions, ev.references, seed=seed) if head_trained else None
    if margin is not None:
        values += interval_values("learned_margin", margin)
    delta = None
    parent = job.parent_predictions
    if parent is not None and len(parent) == len(ev.predictions):
        delta = verdicts.versus_parent(task, ev.predictions, parent, ev.references, seed=seed)
        values += interval_values("delta_vs_parent", delta)
    size_reason = None
    p = job.parent_size
    if job.step is not None and get_step(job.step.step).compresses and p and p.get("params") is not None:
        parent_report = SizeReport(params=int(p["params"]), nonzero_params=int(p.get("nonzero_params") or 0),
                                   artifact_bytes=p.get("artifact_bytes"))
        size_reason = size_flag(parent_report, measured.size)
    trained = state.info.get(job.step.step) if job.step is not None else None  # this step's own training record
    convergence = trained.get("convergence") if isinstance(trained, dict) else None
    return values, verdicts.flags(task, head_trained=head_trained, learned_margin=margin, delta=delta,
                                  size_reason=size_reason, convergence=convergence)


def interval_values(name: str, interval: Any) -> list[MetricValue]:
    return [MetricValue(name, interval.value, "", "dev"), MetricValue(name + CI_LOW, interval.low, "", "dev"),
            MetricValue(name + CI_HIGH, interval.high, "", "dev")]


def max_output_difference(a: Any, b: Any) -> float:
    """Largest absolute difference of the two models' outputs on a fixed probe batch: the saved
    artifact must reload to the model the step produced (0 for every lossless codec)."""
    import torch

    from core.measure.timing import probe_batch

    batch = probe_batch(a.model, a.tokenizer, batch_size=2, seq_len=16, seed=0)
    with torch.inference_mode():
        out_a, out_b = a.model(**batch), b.model(**batch)
    names = [k for k in ("logits", "start_logits", "end_logits") if getattr(out_a, k, None) is not None]
    return max(float((getattr(out_a, k).float() - getattr(out_b, k).float()).abs().max()) for k in names)


def work_key(step_id: str, config_text: str) -> str:
    """The history key of one config's own work (``ResolvedStep.config_text``): it depends on the config."""
    return f"apply:{step_id} {config_text}"


def expected_seconds(measure: Any, history: dict[str, float], step_id: str | None, *, trains: bool = False,
                     work: float | None = None, loads: bool = True, config_text: str | None = None) -> dict[str, float]:
    """How long each phase of the next node should take, so its 0..1 progress runs with the clock.

    From the run's last measured node of the same step (or earlier runs' median of it), else its last
    measured node (``history``: phase, "<phase>:<step id>", "evaluate_per_row", "apply:<step id>" or
    :func:`work_key` -> seconds); before the first one, from the measurement settings (forward-pass tokens
    at an assumed 2.5 ms each: only the ratios matter). The step's work is its config's own
    (``config_text``) when timed, else the step's last; a step not yet seen costs its ``work`` (one-row
    forward passes, ``Step.training_work``) at the evaluation's pace per row; without it, 3x the measuring
    when it trains, else 0.2x.
    """
    per_token = 0.0025
    eval_rows = measure.eval_limit or 1000
    guess = {
        "load": 10.0, "save": 1.0, "size": 1.0,
        "evaluate": per_token * eval_rows * measure.max_length / 2,
        "latency": per_token * (measure.latency_warmup + measure.latency_repeats) * measure.latency_batch_size
        * measure.latency_seq_len,
    }
    out = {k: history.get(f"{k}:{step_id or 'baseline'}", history.get(k, v)) for k, v in guess.items()}
    measuring = out["evaluate"] + out["size"] + out["latency"]
    out["load"] = out["load"] if loads else 0.0
    if step_id is None:
        out["apply"] = 0.0
    elif config_text is not None and work_key(step_id, config_text) in history:
        out["apply"] = history[work_key(step_id, config_text)]
    elif f"apply:{step_id}" in history:
        out["apply"] = history[f"apply:{step_id}"]
    elif work is not None:
        out["apply"] = work * history.get("evaluate_per_row", per_token * measure.max_length / 2)
    else:
        out["apply"] = (3.0 if trains else 0.2) * measuring
    return {k: v if k in ("load", "apply") else max(v, 0.01) for k, v in out.items()}


def shares(expected: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Each phase's slice of the node's 0..1, in proportion to its expected time."""
    total = sum(expected[k] for k in PHASES)
    out, start = {}, 0.0
    for k in PHASES:
        out[k] = (start, start + expected[k] / total)
        start = out[k][1]
    return out


def even_shares() -> dict[str, tuple[float, float]]:
    return shares(dict.fromkeys(PHASES, 1.0))
