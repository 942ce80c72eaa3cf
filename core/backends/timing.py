"""Latency of several (variant, backend) sessions side by side: same inputs, threads and rounds.

Each session is warmed up, then every round times every session once (the order rotated each
round, with a short pause between calls so one runtime's spinning worker threads do not steal
time from the next); the per-session median (p50) comes with its spread (p25/p75, p90, min/max).
Inputs are built by ``core.measure.timing``'s constructor (seeded random ids of one shape), once
per tokenizer, so sessions sharing a tokenizer see the very same batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.backends.errors import BackendError


@dataclass
class TimedSession:
    """A session to time: ``name`` labels the row (e.g. ``int8 / openvino``)."""

    name: str
    session: Any  # core.backends.session.BackendSession
    tokenizer: Any
    variant: str = ""


@dataclass
class SessionLatency:
    name: str
    variant: str
    backend: str
    p50_ms: float
    p25_ms: float
    p75_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    batch_size: int
    seq_len: int
    threads: int
    rounds: int
    warmup: int
    times_ms: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_sessions(
    sessions: Sequence[TimedSession],
    *,
    batch_size: int = 8,
    seq_len: int = 128,
    threads: int,
    rounds: int = 20,
    warmup: int = 3,
    seed: int = 0,
    pause_s: float = 0.01,
) -> list[SessionLatency]:
    """Time every session in interleaved rounds; one result per session, in the given order.

    Every session must run with ``threads`` threads (set when it was opened): a mismatch is an
    error, not a footnote, since latencies at different thread counts are not comparable.
    """
    import numpy as np

    from core.measure.evaluation import pinned_threads
    from core.measure.timing import probe_batch  # the one definition of latency inputs

    if rounds < 1 or warmup < 0 or batch_size < 1 or seq_len < 1:
        raise BackendError("timing needs rounds, batch_size and seq_len >= 1 and warmup >= 0")
    names = [s.name for s in sessions]
    if len(set(names)) != len(names):
        raise BackendError(f"session names must be unique, got {names}")
    for s in sessions:
        if s.session.threads != threads:
            raise BackendError(
                f"{s.name} runs with {s.session.threads} threads, the others with {threads}: open every "
                "session with the same thread count", backend=s.session.backend)
    inputs: dict[int, dict[str, Any]] = {}
    batches = []
    for s in sessions:
        key = id(s.tokenizer)
        if key not in inputs:
            model = getattr(s.session, "model", None) or _NoModel()  # a torch session's embeddings bound the ids
            torch_batch = probe_batch(model, s.tokenizer, batch_size=batch_size, seq_len=seq_len, seed=seed)
            inputs[key] = {k: v.numpy() for k, v in torch_batch.items()}
        batches.append(inputs[key])
    times: list[list[float]] = [[] for _ in sessions]
    with pinned_threads(threads):
        for s, batch in zip(sessions, batches, strict=True):
            for _ in range(warmup):
                s.session.run(batch)
        order = list(range(len(sessions)))
        for r in range(rounds):
            shift = r % len(order)
            for i in order[shift:] + order[:shift]:
                if pause_s:
                    time.sleep(pause_s)
                start = time.perf_counter()
                sessions[i].session.run(batches[i])
                times[i].append((time.perf_counter() - start) * 1000.0)
    out = []
    for s, ts in zip(sessions, times, strict=True):
        arr = np.asarray(ts)
        out.append(SessionLatency(
            name=s.name, variant=s.variant, backend=s.session.backend,
            p50_ms=float(np.percentile(arr, 50)), p25_ms=float(np.percentile(arr, 25)),
            p75_ms=float(np.percentile(arr, 75)), p90_ms=float(np.percentile(arr, 90)), mean_ms=float(arr.mean()),
            min_ms=float(arr.min()), max_ms=float(arr.max()), batch_size=batch_size, seq_len=seq_len,
            threads=threads, rounds=rounds, warmup=warmup, times_ms=[float(t) for t in ts],
            settings=asdict(s.session.info()),
        ))  # fmt: skip
    return out


class _NoModel:
    """The latency-input constructor reads the vocabulary from the model when it can; sessions
    have no embeddings to ask, so the tokenizer's size is used."""

    def get_input_embeddings(self) -> Any:
        raise AttributeError("no torch embeddings behind a backend session")


def paired_ratio(a: SessionLatency, b: SessionLatency, *, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """a/b latency ratio from the same rounds: median of per-round ratios with a 95 % bootstrap interval."""
    import numpy as np

    ra = np.asarray(a.times_ms)
    rb = np.asarray(b.times_ms)
    if ra.size != rb.size or not ra.size:
        raise BackendError(f"{a.name} and {b.name} were not timed in the same rounds")
    ratios = ra / rb
    rng = np.random.default_rng(seed)
    medians = np.median(ratios[rng.integers(0, ratios.size, (resamples, ratios.size))], axis=1)
    return {"ratio": float(np.median(ratios)), "low": float(np.percentile(medians, 2.5)),
            "high": float(np.percentile(medians, 97.5))}  # fmt: skip
