"""``measure.retime_on_driver``: at the end of a run, time every variant of it again on this machine.

Branches made on a Ray cluster were timed on the node that made them, so a run's latencies may come
from several machines (core.store.rows flags them "timed elsewhere"). Retiming loads each stored
artifact here, times it with the run's settings and replaces its latency metrics; the numbers it
replaces stay in the variant's info (``retimed``), with the machine they came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.protocol import Log

# The metrics a timing produces (core.measure.variant): the ones retiming replaces.
LATENCY_NAMES = ("latency_p50", "latency_p50_ci95_low", "latency_p50_ci95_high", "latency_p90", "latency_mean",
                 "latency_batch", "latency_seq_len", "latency_threads", "latency_repeats", "load_avg_1m")


def latency_values(state: Any, settings: Any, seed: int) -> list[Any]:
    """Time ``state``'s model with the run's settings, as the metrics measure_variant records."""
    from core.measure import latency
    from core.measure.variant import latency_values as measured

    lat = latency(state.model, state.tokenizer, batch_size=settings.latency_batch_size,
                  seq_len=settings.latency_seq_len, warmup=settings.latency_warmup,
                  repeats=settings.latency_repeats, threads=settings.threads)
    return measured(lat, seed=seed)


def retime_run(runner: Any) -> None:
    """Time every variant of ``runner``'s run again here, one after another, and store the numbers."""
    from core.steps import load_state
    from core.store.queries import run_variants
    from core.store.record import replace_latency
    from core.store.rows import machine_label

    variants = [v for v in run_variants(runner.store, runner.run.id)
                if v.artifact_path and v.metrics.get("latency_p50") is not None]
    here = machine_label(runner.machine)
    for i, v in enumerate(variants, 1):
        runner.check_cancelled()
        runner.emit(Log(level="info", message=f"timing variant {v.id} ({v.label}) again on {here} ({i}/{len(variants)})"))
        state = load_state(Path(v.artifact_path))
        values = latency_values(state, runner.recipe.measure, seed=v.seed if v.seed is not None else runner.seed)
        before = {name: v.metrics.get(name) for name in LATENCY_NAMES if name in v.metrics}
        replace_latency(runner.store, v.id, values, runner.machine,
                        {"retimed": {"before": before, "timed_on": v.machine_label}})
        del state
    runner.emit(Log(level="info", message=f"every latency of run {runner.run.id} is now timed on {here}"))
