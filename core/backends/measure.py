"""One variant on every backend of ``measure.backends``: export, round-trip check, then timing of
every backend that agrees, side by side in interleaved rounds (same process, threads and inputs).

What the runner stores per backend ``b``: ``latency_p50_ms_<b>`` with its 95 % interval (over the
rounds), and for an exported backend its file's bytes (``export_bytes_<b>``) and the round trip
(``roundtrip_agreement_<b>``, ``roundtrip_max_abs_diff_<b>``). A backend that cannot take the
variant (a missing package, an operator the exporter refuses, a variant type it cannot run) or an
export that disagrees is a flag naming the backend and the reason; it is not timed, and the other
backends still are. The variant's own ``latency_p50`` is the row of the backend it ships on (torch,
or the file's backend for ``quantize.static_int8``), from the same rounds.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backends.deploy import DISAGREES, BackendVariant, deploy_variant
from core.backends.packages import TORCH
from core.backends.support import title
from core.errors import StepCancelled
from core.store.rows import CI_HIGH, CI_LOW, EXPORT_DISAGREES, NOT_ON_BACKEND, MetricValue

LATENCY_PREFIX = "latency_p50_ms_"  # + backend: the stored metric and the export column


@dataclass
class BackendMeasurement:
    values: list[MetricValue]
    flags: list[Any]  # core.measure.verdicts.Flag
    info: dict[str, Any] = field(default_factory=dict)  # per backend: status, message, export, round trip, timing


def native_backend(model: Any) -> str:
    """The backend a variant ships on: its file's for a deployed model, else torch."""
    return str(getattr(model, "backend", TORCH)) if hasattr(model, "session") else TORCH


def measure_backends(
    state: Any,
    task: Any,
    settings: Any,
    *,
    exports: Path,
    seed: int,
    label: str = "",
    progress: Callable[[float, str], None] = lambda fraction, message="": None,
    cancelled: Callable[[], bool] = lambda: False,
) -> BackendMeasurement:
    """Put ``state`` (the reloaded, shipped variant) on each of ``settings.backends`` and time them.

    Exported files go to ``exports/<backend>`` (kept: they are what a user deploys). The backend
    the variant ships on is always timed, listed or not, since its p50 is the variant's latency.
    """
    import torch

    from core.backends.timing import TimedSession, time_sessions
    from core.measure.intervals import median_interval
    from core.measure.timing import LatencyReport
    from core.measure.variant import latency_values
    from core.measure.verdicts import Flag

    native = native_backend(state.model)
    backends = list(settings.backends) + ([native] if native not in settings.backends else [])
    threads = int(settings.threads or torch.get_num_threads())
    placed: dict[str, BackendVariant] = {}
    for i, backend in enumerate(backends):
        if cancelled():
            raise StepCancelled("Run cancelled by the user")
        progress(0.6 * i / len(backends), f"latency: exporting to {title(backend)}")
        placed[backend] = deploy_variant(
            state.model, state.tokenizer, task, backend, None if backend == TORCH else exports / backend,
            variant=label, threads=threads, transforms=state.transforms, seed=seed, max_length=settings.max_length,
        )
    if native in placed and placed[native].ok and placed[native].session.threads != threads:
        # A deployed file opened with another thread count (measure.threads unset): reopen it to match.
        from core.backends.artifact import load_backend_artifact

        loaded = load_backend_artifact(state.model.folder, threads=threads)
        placed[native].session, placed[native].model = loaded.session, loaded.model
    values: list[MetricValue] = []
    flags: list[Flag] = []
    for backend, placement in placed.items():
        if placement.round_trip is not None:
            trip = placement.round_trip
            values += [MetricValue(f"roundtrip_agreement_{backend}", float(trip.agreement), "fraction", "probe"),
                       MetricValue(f"roundtrip_max_abs_diff_{backend}", float(trip.max_abs_diff), "", "probe")]
        if placement.bytes is not None and backend != native:
            values.append(MetricValue(f"export_bytes_{backend}", float(placement.bytes), "bytes"))
        if not placement.ok:
            code = EXPORT_DISAGREES if placement.status == DISAGREES else NOT_ON_BACKEND
            flags.append(Flag(code, f"{title(backend)}: {placement.message}"))
    timed = [b for b in backends if placed[b].ok]
    info: dict[str, Any] = {b: {k: v for k, v in p.to_dict().items() if k != "variant"} for b, p in placed.items()}
    if cancelled():
        raise StepCancelled("Run cancelled by the user")
    progress(0.6, f"latency: timing {', '.join(title(b) for b in timed)} side by side")
    results = time_sessions(
        [TimedSession(name=b, session=placed[b].session, tokenizer=state.tokenizer, variant=label) for b in timed],
        batch_size=settings.latency_batch_size, seq_len=settings.latency_seq_len, threads=threads,
        rounds=settings.latency_repeats, warmup=settings.latency_warmup, seed=0,
    ) if timed else []
    for result in results:
        ci = median_interval(result.times_ms, seed=seed)
        name = LATENCY_PREFIX + result.name
        values += [MetricValue(name, result.p50_ms, "ms"), MetricValue(name + CI_LOW, ci.low, "ms"),
                   MetricValue(name + CI_HIGH, ci.high, "ms")]
        info[result.name]["latency"] = {k: v for k, v in result.to_dict().items() if k != "times_ms"}
        info[result.name]["latency"]["times_ms"] = [round(t, 3) for t in result.times_ms]
        if result.name == native:
            values += latency_values(LatencyReport(
                p50_ms=result.p50_ms, p90_ms=result.p90_ms, mean_ms=result.mean_ms, batch_size=result.batch_size,
                seq_len=result.seq_len, threads=result.threads, repeats=result.rounds, warmup=result.warmup,
                min_ms=result.min_ms, max_ms=result.max_ms, times_ms=result.times_ms), seed=seed)
    for placement in placed.values():  # runtimes hold compiled models and thread pools: free them now
        if placement.backend != native:
            placement.session = placement.model = None
    gc.collect()
    progress(1.0, "latency measured")
    return BackendMeasurement(values=values, flags=flags, info=info)
