"""Result rows: one variant as every consumer shows it (the window's table and charts, the CLI, every
export), computed in one place from what the database holds.

A row carries the variant's swept values (from the stored JSON, never parsed back from a label),
its task's primary metric, "% of baseline", size and latency ratios against the run's baseline.
:func:`build_rows` is pure: the runner uses it on a variant it has just measured (to put the row in
its event) and the queries use it on stored variants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Metric names the runner records besides the task's own metrics.
SIZE_METRICS = ("params", "nonzero_params", "artifact_bytes", "weights_bytes")
LATENCY_METRICS = ("latency_p50", "latency_p90", "latency_mean")
EVAL_METRICS = ("eval_examples", "eval_seconds")
NON_TASK = frozenset((*SIZE_METRICS, *LATENCY_METRICS, *EVAL_METRICS))

MB = 1_000_000


@dataclass(frozen=True)
class MetricValue:
    """One measured number as stored: unit '' for a task metric; the split it was measured on."""

    name: str
    value: float | None
    unit: str = ""
    split: str = ""


@dataclass(frozen=True)
class VariantInfo:
    """One stored variant with its metrics (name -> value) and units (name -> unit)."""

    id: int
    run_id: int
    parent_id: int | None
    step_index: int
    step_id: str
    label: str
    config: dict[str, Any]
    cached: bool
    cached_from_id: int | None
    seconds: float
    flag: str | None
    artifact_path: str | None
    artifact_bytes: int | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)

    @property
    def task_metrics(self) -> dict[str, float | None]:
        return {k: v for k, v in self.metrics.items() if k not in NON_TASK}

    @property
    def size_bytes(self) -> int | None:
        size = self.metrics.get("artifact_bytes")
        return int(size) if size is not None else self.artifact_bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunMeta:
    """What a row needs to know about its run."""

    id: int
    model: str
    task: str
    primary_metric: str | None


@dataclass(frozen=True)
class ResultRow:
    """One variant in the results table. Ratios compare with the run's baseline, measured in that run."""

    run: int
    variant: int
    parent: int | None
    step: int  # chain position; 0 = the baseline
    step_id: str
    label: str
    cached: bool
    model: str
    task: str
    swept: dict[str, Any]
    metric_name: str | None  # the task's primary metric
    metric: float | None
    pct_baseline: float | None  # metric as % of the baseline's
    task_metrics: dict[str, float | None]
    params: int | None
    nonzero_params: int | None
    size_mb: float | None
    size_ratio: float | None  # baseline bytes / these bytes
    pct_smaller: float | None
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    speedup: float | None  # baseline p50 / this p50
    flag: str | None
    artifact_path: str | None

    @property
    def is_baseline(self) -> bool:
        return self.step == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        return cls(**data)

    def flat(self) -> dict[str, Any]:
        """The row as export columns: task metrics and swept values spread into their own columns."""
        out = {k: v for k, v in self.to_dict().items() if k not in ("task_metrics", "swept", "artifact_path")}
        out.update(self.task_metrics)
        out.update({f"swept_{k}": v for k, v in self.swept.items()})
        return out


def build_row(v: VariantInfo, run: RunMeta, baseline: VariantInfo | None) -> ResultRow:
    m = v.metrics
    name = run.primary_metric if run.primary_metric in v.task_metrics else next(iter(v.task_metrics), None)
    metric = m.get(name) if name else None
    base_metric = baseline.metrics.get(name) if baseline is not None and name else None
    size, base_size = v.size_bytes, baseline.size_bytes if baseline is not None else None
    p50 = m.get("latency_p50")
    base_p50 = baseline.metrics.get("latency_p50") if baseline is not None else None
    ratio = base_size / size if base_size and size else None
    return ResultRow(
        run=v.run_id, variant=v.id, parent=v.parent_id, step=v.step_index, step_id=v.step_id, label=v.label,
        cached=v.cached, model=run.model, task=run.task, swept=dict(v.swept),
        metric_name=name, metric=metric,
        pct_baseline=100.0 * metric / base_metric if metric is not None and base_metric else None,
        task_metrics=v.task_metrics,
        params=_int(m.get("params")), nonzero_params=_int(m.get("nonzero_params")),
        size_mb=size / MB if size else None, size_ratio=ratio,
        pct_smaller=100.0 * (1 - 1 / ratio) if ratio else None,
        latency_p50_ms=p50, latency_p90_ms=m.get("latency_p90"),
        speedup=base_p50 / p50 if base_p50 and p50 else None,
        flag=v.flag, artifact_path=v.artifact_path,
    )


def build_rows(variants: list[VariantInfo], runs: dict[int, RunMeta],
               baselines: dict[int, VariantInfo]) -> list[ResultRow]:
    """Rows in the given order; ``baselines`` maps run id -> that run's baseline variant."""
    return [build_row(v, runs[v.run_id], baselines.get(v.run_id)) for v in variants]


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None
