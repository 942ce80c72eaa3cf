"""Measure one variant: task metric on the dev split, size of its saved artifact, latency.

The runner calls :func:`measure_variant` after saving each variant; the settings are the recipe's
``measure:`` block (core.recipe.MeasureSettings), recorded with the run so numbers stay comparable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StepCancelled
from core.measure.evaluation import EvalResult, evaluate
from core.measure.intervals import median_interval
from core.measure.size import SizeReport, size_report
from core.measure.timing import LatencyReport, latency
from core.store.rows import MetricValue

# Where each phase's progress lies in measure_variant's 0..1 (the runner rescales it by time).
PHASES = {"evaluate": (0.0, 0.8), "size": (0.8, 0.85), "latency": (0.85, 1.0)}


@dataclass
class Measurement:
    values: list[MetricValue]
    size: SizeReport
    evaluation: EvalResult
    latency: LatencyReport | None  # None when the caller timed it (on every backend)
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall time


def measure_variant(
    state: Any,
    folder: Path,
    task: Any,
    settings: Any,
    *,
    seed: int,
    progress: Callable[[float, str], None] = lambda fraction, message="": None,
    cancelled: Callable[[], bool] = lambda: False,
    time_latency: bool = True,
    sizer: Callable[[Path], SizeReport] | None = None,
) -> Measurement:
    """Evaluate ``state.model`` on ``task``'s dev split, count its size and the bytes of ``folder``,
    and time it; ``progress`` runs from 0 to 1 across the three phases.

    ``time_latency=False`` leaves latency to the caller (core.backends times every backend side by
    side); ``sizer(folder)`` sizes an artifact that is not a torch module (a backend file)."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    progress(0.0, "evaluating")
    ev = evaluate(
        state.model, state.tokenizer, task, "dev", batch_size=settings.eval_batch_size,
        max_length=settings.max_length, limit=settings.eval_limit, sample_seed=seed, threads=settings.threads,
        progress=lambda f, m="": progress(PHASES["evaluate"][1] * f, m or "evaluating"), cancelled=cancelled,
    )
    seconds["evaluate"] = time.perf_counter() - clock
    if cancelled():
        raise StepCancelled("Run cancelled by the user")
    progress(PHASES["size"][0], "measuring size")
    clock = time.perf_counter()
    size = sizer(folder) if sizer is not None else size_report(state.model, folder)
    seconds["size"] = time.perf_counter() - clock
    values = [MetricValue(name, float(value), "", "dev") for name, value in ev.metrics.items()]
    values += [
        MetricValue("eval_examples", float(ev.examples), "count", "dev"),
        MetricValue("eval_seconds", float(ev.seconds), "s", "dev"),
        MetricValue("params", float(size.params), "count"),
        MetricValue("nonzero_params", float(size.nonzero_params), "count"),
        MetricValue("artifact_bytes", _f(size.artifact_bytes), "bytes"),
        MetricValue("weights_bytes", _f(size.weights_bytes), "bytes"),
    ]
    if not time_latency:
        progress(1.0, "measured")
        return Measurement(values=values, size=size, evaluation=ev, latency=None, seconds=seconds)
    progress(PHASES["latency"][0], "measuring latency")
    clock = time.perf_counter()
    lat = latency(
        state.model, state.tokenizer, batch_size=settings.latency_batch_size, seq_len=settings.latency_seq_len,
        warmup=settings.latency_warmup, repeats=settings.latency_repeats, threads=settings.threads,
    )
    seconds["latency"] = time.perf_counter() - clock
    progress(1.0, "measured")
    values += latency_values(lat, seed=seed)
    return Measurement(values=values, size=size, evaluation=ev, latency=lat, seconds=seconds)


def latency_values(lat: LatencyReport, *, seed: int) -> list[MetricValue]:
    """The stored latency of what ships: p50 with its interval over the timed repeats, the settings
    it was timed under, and the machine's load at the time."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # what else the machine was doing
    p50 = median_interval(lat.times_ms, seed=seed)
    return [
        MetricValue("latency_p50", float(lat.p50_ms), "ms"),
        MetricValue("latency_p50_ci95_low", p50.low, "ms"),
        MetricValue("latency_p50_ci95_high", p50.high, "ms"),
        MetricValue("latency_p90", float(lat.p90_ms), "ms"),
        MetricValue("latency_mean", float(lat.mean_ms), "ms"),
        MetricValue("latency_batch", float(lat.batch_size), "count"),
        MetricValue("latency_seq_len", float(lat.seq_len), "tokens"),
        MetricValue("latency_threads", float(lat.threads), "count"),
        MetricValue("latency_repeats", float(lat.repeats), "count"),
        MetricValue("load_avg_1m", load, "runnable tasks"),
    ]


def _f(value: Any) -> float | None:
    return float(value) if value is not None else None
