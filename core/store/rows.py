"""Result rows: one variant as every consumer shows it (the window's table and charts, the CLI, every
export), computed in one place from what the database holds.

A row carries the variant's swept values (from the stored JSON, never parsed back from a label),
its task's primary metric with its 95 % interval, the change against its parent with the paired
interval, the flags (FLAG_TITLES: untrained head, did not learn, within noise, still improving and the rest), the
measurement settings, and "% of reference", size and latency ratios. The *reference* is the run's
baseline, unless the baseline's head was never trained: then it is the run's first trained variant
(a fresh head's chance-level metric is no yardstick). Sizes and latencies do not depend on training:
with no trained variant at all, they are still compared with the baseline (the metric is not). :func:`build_rows` is pure: the runner uses it
on a variant it has just measured and the queries use it on stored variants; :func:`merge_seeds`
turns a multi-seed run's rows into one row per variant with the mean and standard deviation.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# Metric names the runner records besides the task's own metrics.
SIZE_METRICS = ("params", "nonzero_params", "artifact_bytes", "weights_bytes")
LATENCY_METRICS = ("latency_p50", "latency_p90", "latency_mean", "latency_p50_ci95_low", "latency_p50_ci95_high")
SETTINGS_METRICS = ("eval_examples", "eval_seconds", "latency_batch", "latency_seq_len", "latency_threads",
                    "latency_repeats", "load_avg_1m", "roundtrip_max_abs_diff")
DELTA_METRICS = ("delta_vs_parent", "delta_vs_parent_ci95_low", "delta_vs_parent_ci95_high", "learned_margin",
                 "learned_margin_ci95_low", "learned_margin_ci95_high")
NON_TASK = frozenset((*SIZE_METRICS, *LATENCY_METRICS, *SETTINGS_METRICS, *DELTA_METRICS))
CI_LOW, CI_HIGH = "_ci95_low", "_ci95_high"
# Per-backend measurements (measure.backends, core.backends.measure): name + backend.
BACKEND_LATENCY = "latency_p50_ms_"
BACKEND_PREFIXES = (BACKEND_LATENCY, "export_bytes_", "roundtrip_agreement_", "roundtrip_max_abs_diff_")

# Flag codes and what the user reads (core.measure.verdicts decides which apply).
UNTRAINED_HEAD = "untrained_head"
DID_NOT_LEARN = "did_not_learn"
WITHIN_NOISE = "within_noise"
NOT_SMALLER = "not_smaller"
EXPORT_DISAGREES = "export_disagrees"  # an exported file predicts differently: not timed as this variant
NOT_ON_BACKEND = "not_on_backend"  # a backend could not take the variant (package, operator, variant type)
OVER_BUDGET = "over_budget"  # the recipe's accuracy budget (core.recipe.Budget) is broken: its branch stops
TIMED_ELSEWHERE = "timed_elsewhere"  # computed per row: its latency and its yardstick's come from two machines
STILL_IMPROVING = "still_improving"  # training's held-out score still rose beyond noise when its budget ran out
FLAG_TITLES = {UNTRAINED_HEAD: "untrained head", DID_NOT_LEARN: "did not learn", WITHIN_NOISE: "within noise",
               NOT_SMALLER: "not smaller on disk", OVER_BUDGET: "over budget", EXPORT_DISAGREES: "export disagrees",
               NOT_ON_BACKEND: "not timed on a backend", TIMED_ELSEWHERE: "timed elsewhere",
               STILL_IMPROVING: "still improving"}


def flag_title(code: str) -> str:
    return FLAG_TITLES.get(code, code.replace("_", " "))


def machine_label(fingerprint: dict[str, Any]) -> str:
    """A machine fingerprint (core.measure.machine_fingerprint) in words: host and CPU."""
    host, cpu = fingerprint.get("host"), fingerprint.get("cpu_model")
    cores = fingerprint.get("cores_available") or fingerprint.get("cores")
    return " ".join(str(x) for x in (host or "unknown host", f"({cpu}, {cores} cores)" if cpu else "") if x)

MB = 1_000_000


def is_task_metric(name: str) -> bool:
    return name not in NON_TASK and not name.endswith((CI_LOW, CI_HIGH)) and not name.startswith(BACKEND_PREFIXES)


def backend_latencies(metrics: dict[str, float | None]) -> dict[str, list[float | None]]:
    """backend -> [p50 ms, 95 % low, 95 % high] of the ``latency_p50_ms_<backend>`` metrics, in stored order."""
    return {name[len(BACKEND_LATENCY):]: [value, metrics.get(name + CI_LOW), metrics.get(name + CI_HIGH)]
            for name, value in metrics.items()
            if name.startswith(BACKEND_LATENCY) and not name.endswith((CI_LOW, CI_HIGH)) and value is not None}


def fastest_of(latencies: dict[str, list[float | None]]) -> str | None:
    """The backend with the lowest p50 (None when nothing was timed on backends)."""
    timed = {b: v[0] for b, v in latencies.items() if v and v[0] is not None}
    return min(timed, key=lambda b: timed[b]) if timed else None


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
    flags: list[dict[str, str]]
    artifact_path: str | None
    artifact_bytes: int | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    node: int | None = None
    machine: str | None = None  # content hash of the fingerprint of the machine it was made and timed on
    machine_label: str | None = None  # that machine in words (host, CPU)

    @property
    def task_metrics(self) -> dict[str, float | None]:
        return {k: v for k, v in self.metrics.items() if is_task_metric(k)}

    @property
    def size_bytes(self) -> int | None:
        size = self.metrics.get("artifact_bytes")
        return int(size) if size is not None else self.artifact_bytes

    @property
    def head_trained(self) -> bool:
        return not any(f.get("code") == UNTRAINED_HEAD for f in self.flags)

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
    """One variant in the results table."""

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
    seed: int | None
    metric_name: str | None  # the task's primary metric
    metric: float | None
    metric_ci_low: float | None  # 95 % bootstrap interval over the dev examples
    metric_ci_high: float | None
    delta_vs_parent: float | None  # metric minus the parent's, on the same examples
    delta_ci_low: float | None  # paired 95 % interval of that change
    delta_ci_high: float | None
    reference: int | None  # the variant the ratios compare with (and "% of reference", when trained)
    pct_baseline: float | None  # metric as % of the reference's
    task_metrics: dict[str, float | None]
    task_intervals: dict[str, list[float | None]]  # metric -> [low, high]
    params: int | None
    nonzero_params: int | None
    size_mb: float | None
    size_ratio: float | None  # reference bytes / these bytes
    pct_smaller: float | None
    latency_p50_ms: float | None
    latency_p50_ci_low: float | None  # 95 % interval of the median over the timed repeats
    latency_p50_ci_high: float | None
    latency_p90_ms: float | None
    speedup: float | None  # reference p50 / this p50
    flags: list[dict[str, str]]  # [{code, text}], see core.measure.verdicts
    eval_examples: int | None
    latency_batch: int | None
    latency_seq_len: int | None
    latency_threads: int | None
    latency_repeats: int | None
    load_avg_1m: float | None  # the machine's load when the variant was timed
    artifact_path: str | None
    seeds: int = 1  # > 1: metric, size and latency are means over seeds
    machine: str | None = None  # where it was made and timed (core.store.rows.machine_label)
    metric_sd: float | None = None  # standard deviation of the metric over seeds
    # measure.backends: backend -> [p50 ms, 95 % low, 95 % high], timed side by side in the same rounds
    backend_latency: dict[str, list[float | None]] = field(default_factory=dict)
    fastest_backend: str | None = None  # the backend with the lowest p50 of those
    # 95 % bounds of the speed-up from both p50 intervals (reference low / this high, reference high /
    # this low): a speed-up whose bounds include 1 is within the timing noise
    speedup_ci_low: float | None = None
    speedup_ci_high: float | None = None

    @property
    def is_baseline(self) -> bool:
        return self.step == 0

    @property
    def flag_codes(self) -> list[str]:
        return [f["code"] for f in self.flags]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        return cls(**data)

    def flat(self) -> dict[str, Any]:
        """The row as export columns: task metrics, their intervals and swept values in their own
        columns (``<metric>_ci95_low``/``_high``), flags as their titles and their reasons."""
        out = {k: v for k, v in self.to_dict().items()
               if k not in ("task_metrics", "task_intervals", "swept", "artifact_path", "flags", "backend_latency")}
        for backend, (p50, low, high) in self.backend_latency.items():
            name = BACKEND_LATENCY + backend
            out[name], out[name + CI_LOW], out[name + CI_HIGH] = p50, low, high
        for name, value in self.task_metrics.items():
            out[name] = value
            low, high = self.task_intervals.get(name, [None, None])
            out[name + CI_LOW], out[name + CI_HIGH] = low, high
        out.update({f"swept_{k}": v for k, v in self.swept.items()})
        out["flags"] = "; ".join(flag_title(f["code"]) for f in self.flags)
        out["flag_reasons"] = " | ".join(f["text"] for f in self.flags)
        return out


def reference_of(variants: list[VariantInfo]) -> VariantInfo | None:
    """A run's yardstick: its baseline when the baseline's head was trained, else its first
    variant with a trained head (None when no variant of the run has one)."""
    ordered = sorted(variants, key=lambda v: (v.node if v.node is not None else v.step_index, v.id))
    base = next((v for v in ordered if v.step_index == 0), None)
    if base is not None and base.head_trained:
        return base
    return next((v for v in ordered if v.head_trained), None)


def build_row(v: VariantInfo, run: RunMeta, reference: VariantInfo | None,
              baseline: VariantInfo | None = None) -> ResultRow:
    m = v.metrics
    tasks = v.task_metrics
    name = run.primary_metric if run.primary_metric in tasks else next(iter(tasks), None)
    metric = m.get(name) if name else None
    ref_metric = reference.metrics.get(name) if reference is not None and name else None
    yardstick = reference or baseline  # for sizes and latencies
    size, ref_size = v.size_bytes, yardstick.size_bytes if yardstick is not None else None
    p50 = m.get("latency_p50")
    ref_p50 = yardstick.metrics.get("latency_p50") if yardstick is not None else None
    ratio = ref_size / size if ref_size and size else None
    return ResultRow(
        run=v.run_id, variant=v.id, parent=v.parent_id, step=v.step_index, step_id=v.step_id, label=v.label,
        cached=v.cached, model=run.model, task=run.task, swept=dict(v.swept), seed=v.seed,
        metric_name=name, metric=metric,
        metric_ci_low=m.get(f"{name}{CI_LOW}") if name else None, metric_ci_high=m.get(f"{name}{CI_HIGH}") if name else None,
        delta_vs_parent=m.get("delta_vs_parent"), delta_ci_low=m.get("delta_vs_parent" + CI_LOW),
        delta_ci_high=m.get("delta_vs_parent" + CI_HIGH),
        reference=yardstick.id if yardstick is not None else None,
        pct_baseline=100.0 * metric / ref_metric if metric is not None and ref_metric else None,
        task_metrics=tasks, task_intervals={k: [m.get(k + CI_LOW), m.get(k + CI_HIGH)] for k in tasks},
        params=_int(m.get("params")), nonzero_params=_int(m.get("nonzero_params")),
        size_mb=size / MB if size else None, size_ratio=ratio,
        pct_smaller=100.0 * (1 - 1 / ratio) if ratio else None,
        latency_p50_ms=p50, latency_p50_ci_low=m.get("latency_p50" + CI_LOW),
        latency_p50_ci_high=m.get("latency_p50" + CI_HIGH), latency_p90_ms=m.get("latency_p90"),
        speedup=ref_p50 / p50 if ref_p50 and p50 else None,
        **speedup_bounds(m, yardstick.metrics if yardstick is not None and yardstick.id != v.id else {}),
        flags=list(v.flags) + timed_elsewhere(v, yardstick), eval_examples=_int(m.get("eval_examples")), latency_batch=_int(m.get("latency_batch")),
        latency_seq_len=_int(m.get("latency_seq_len")), latency_threads=_int(m.get("latency_threads")),
        latency_repeats=_int(m.get("latency_repeats")), load_avg_1m=m.get("load_avg_1m"),
        artifact_path=v.artifact_path, machine=v.machine_label, backend_latency=(on_backends := backend_latencies(m)),
        fastest_backend=fastest_of(on_backends),
    )


def timed_elsewhere(v: VariantInfo, yardstick: VariantInfo | None) -> list[dict[str, str]]:
    """The flag a row gets when its latency and its yardstick's were timed on different machines
    (a run whose branches ran on a Ray cluster): its speed-up would compare two machines."""
    if (yardstick is None or v.machine is None or yardstick.machine is None or v.machine == yardstick.machine
            or v.metrics.get("latency_p50") is None):
        return []
    return [{"code": TIMED_ELSEWHERE, "text": (
        f"timed on {v.machine_label}, its reference (variant {yardstick.id}) on {yardstick.machine_label}: "
        "the speed-up compares two machines; set measure.retime_on_driver: true to time every variant of "
        "the run on one machine at its end")}]


def build_rows(variants: list[VariantInfo], runs: dict[int, RunMeta],
               references: dict[tuple[int, int | None], VariantInfo | None],
               baselines: dict[tuple[int, int | None], VariantInfo]) -> list[ResultRow]:
    """Rows in the given order; both maps are keyed by (run id, seed)."""
    return [build_row(v, runs[v.run_id], references.get((v.run_id, v.seed)), baselines.get((v.run_id, v.seed)))
            for v in variants]


def merge_seeds(rows: list[ResultRow], nodes: list[int | None]) -> list[ResultRow]:
    """One row per (run, tree node) when a run was made with several seeds: the first seed's row
    with metric, size, latency and ratios replaced by their means, and the metric's standard deviation."""
    groups: dict[tuple[int, int | None], list[ResultRow]] = {}
    order: list[tuple[int, int | None]] = []
    for row, node in zip(rows, nodes, strict=True):
        key = (row.run, node if node is not None else -row.variant)
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(row)
    out = []
    for key in order:
        group = groups[key]
        if len(group) == 1:
            out.append(group[0])
            continue

        def mean(field_name: str, group: list[ResultRow] = group) -> float | None:
            values = [getattr(r, field_name) for r in group if getattr(r, field_name) is not None]
            return statistics.fmean(values) if values else None

        metrics = [r.metric for r in group if r.metric is not None]
        on_backends = {b: [statistics.fmean(r.backend_latency[b][0] for r in group if b in r.backend_latency), None, None]  # type: ignore[misc]
                       for b in group[0].backend_latency}
        flags = {f["code"]: f for r in group for f in r.flags}  # a flag any seed raised
        out.append(replace(
            group[0], seeds=len(group), metric=mean("metric"),
            metric_sd=statistics.stdev(metrics) if len(metrics) > 1 else None,
            metric_ci_low=None, metric_ci_high=None, delta_vs_parent=mean("delta_vs_parent"),
            delta_ci_low=None, delta_ci_high=None, pct_baseline=mean("pct_baseline"), size_mb=mean("size_mb"),
            size_ratio=mean("size_ratio"), pct_smaller=mean("pct_smaller"), latency_p50_ms=mean("latency_p50_ms"),
            latency_p50_ci_low=None, latency_p50_ci_high=None, latency_p90_ms=mean("latency_p90_ms"),
            speedup=mean("speedup"), speedup_ci_low=None, speedup_ci_high=None, flags=list(flags.values()), seed=None,
            task_metrics={k: statistics.fmean(v for r in group if (v := r.task_metrics.get(k)) is not None)
                          for k in group[0].task_metrics if any(r.task_metrics.get(k) is not None for r in group)},
            task_intervals={}, backend_latency=on_backends, fastest_backend=fastest_of(on_backends),
        ))
    return out


def speedup_bounds(mine: dict[str, float | None], reference: dict[str, float | None]) -> dict[str, float | None]:
    """``speedup_ci_low`` / ``_high`` from the two p50 intervals (conservative: both hold, so the ratio
    lies between); None where an interval is missing (the reference itself, a retimed or averaged row)."""
    low, high = mine.get("latency_p50" + CI_LOW), mine.get("latency_p50" + CI_HIGH)
    ref_low, ref_high = reference.get("latency_p50" + CI_LOW), reference.get("latency_p50" + CI_HIGH)
    if not (low and high and ref_low and ref_high) or min(low, high, ref_low, ref_high) <= 0:
        return {"speedup_ci_low": None, "speedup_ci_high": None}
    return {"speedup_ci_low": ref_low / high, "speedup_ci_high": ref_high / low}


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None
