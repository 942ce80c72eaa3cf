"""Reading results: the functions the GUI and the CLI use. Stable API; plain dataclasses out, no ORM.

All functions take an open :class:`~core.store.db.Store` (``core.store.open_store(path)``) and are
read-only. They use plain column selects (no ORM object loading) so that the GUI-facing queries stay
fast with tens of thousands of variants (see benchmarks/bench_queries.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.store import schema as s
from core.store.db import Store, StoreError

# Metric names the runner records besides the task's own metrics.
SIZE_METRICS = ("params", "nonzero_params", "artifact_bytes", "weights_bytes")
LATENCY_METRICS = ("latency_p50", "latency_p90", "latency_mean")
EVAL_METRICS = ("eval_examples", "eval_seconds")
NON_TASK = set(SIZE_METRICS) | set(LATENCY_METRICS) | set(EVAL_METRICS)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    value: float | None
    unit: str
    split: str


@dataclass(frozen=True)
class RunInfo:
    """One run as listed in the runs view."""

    id: int
    status: str  # running | finished | failed | cancelled | interrupted
    model: str
    task: str
    recipe_name: str
    seed: int
    created_at: str  # ISO 8601, UTC
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    error: str | None
    error_kind: str | None
    variants: int
    attempts: int
    artifacts_dir: str
    pid: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VariantInfo:
    """One variant with its metrics (name -> value) and units (name -> unit)."""

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

    @property
    def task_metrics(self) -> dict[str, float | None]:
        return {k: v for k, v in self.metrics.items() if k not in NON_TASK}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def list_runs(store: Store, *, model: str | None = None, status: str | None = None,
              limit: int | None = None) -> list[RunInfo]:
    """Runs, newest first; optionally only those of one model reference (str(ModelRef)) or status."""
    counts = (
        select(s.Variant.run_id, func.count(s.Variant.id).label("n")).group_by(s.Variant.run_id).subquery()
    )
    query = (
        select(
            s.Run.id, s.Run.status, s.Model.ref, s.Run.task, s.Recipe.name, s.Run.seed, s.Run.created_at,
            s.Run.started_at, s.Run.finished_at, s.Run.error, s.Run.error_kind, s.Run.attempts,
            s.Run.artifacts_dir, s.Run.pid, func.coalesce(counts.c.n, 0),
        )
        .join(s.Model, s.Model.id == s.Run.model_id)
        .join(s.Recipe, s.Recipe.id == s.Run.recipe_id)
        .outerjoin(counts, counts.c.run_id == s.Run.id)
        .order_by(s.Run.id.desc())
    )
    if model is not None:
        query = query.where(s.Model.ref == model)
    if status is not None:
        query = query.where(s.Run.status == status)
    if limit is not None:
        query = query.limit(limit)
    with store.read() as session:
        rows = session.execute(query).all()
    out = []
    for r in rows:
        seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
        out.append(
            RunInfo(
                id=r.id, status=r.status, model=r.ref, task=r.task, recipe_name=r.name or "", seed=r.seed,
                created_at=_iso(r.created_at) or "", started_at=_iso(r.started_at), finished_at=_iso(r.finished_at),
                seconds=seconds, error=r.error, error_kind=r.error_kind, variants=r[-1], attempts=r.attempts,
                artifacts_dir=r.artifacts_dir, pid=r.pid,
            )
        )
    return out


def get_run(store: Store, run_id: int) -> RunInfo:
    """One run; StoreError naming the id when it does not exist."""
    with store.read() as session:
        exists = session.execute(select(s.Run.id).where(s.Run.id == run_id)).first()
    if exists is None:
        raise StoreError(f"No run {run_id} in {store.path}; 'workbench-cli runs' lists them")
    return _one_run(store, run_id)


def _one_run(store: Store, run_id: int) -> RunInfo:
    counts = select(func.count(s.Variant.id)).where(s.Variant.run_id == run_id).scalar_subquery()
    query = (
        select(
            s.Run.id, s.Run.status, s.Model.ref, s.Run.task, s.Recipe.name, s.Run.seed, s.Run.created_at,
            s.Run.started_at, s.Run.finished_at, s.Run.error, s.Run.error_kind, s.Run.attempts,
            s.Run.artifacts_dir, s.Run.pid, counts,
        )
        .join(s.Model, s.Model.id == s.Run.model_id)
        .join(s.Recipe, s.Recipe.id == s.Run.recipe_id)
        .where(s.Run.id == run_id)
    )
    with store.read() as session:
        r = session.execute(query).one()
    seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
    return RunInfo(
        id=r.id, status=r.status, model=r.ref, task=r.task, recipe_name=r.name or "", seed=r.seed,
        created_at=_iso(r.created_at) or "", started_at=_iso(r.started_at), finished_at=_iso(r.finished_at),
        seconds=seconds, error=r.error, error_kind=r.error_kind, variants=r[-1], attempts=r.attempts,
        artifacts_dir=r.artifacts_dir, pid=r.pid,
    )


def run_recipe_text(store: Store, run_id: int) -> str:
    """The canonical JSON of the recipe a run executed."""
    with store.read() as session:
        body = session.execute(
            select(s.Recipe.body).join(s.Run, s.Run.recipe_id == s.Recipe.id).where(s.Run.id == run_id)
        ).scalar()
    if body is None:
        raise StoreError(f"No run {run_id} in {store.path}")
    return body


def run_environment(store: Store, run_id: int) -> dict[str, Any]:
    """The machine fingerprint (library versions, CPU, threads) recorded for a run."""
    with store.read() as session:
        body = session.execute(
            select(s.Environment.body).join(s.Run, s.Run.environment_id == s.Environment.id).where(s.Run.id == run_id)
        ).scalar()
    return json.loads(body) if body else {}


_VARIANTS_SQL = (
    "SELECT v.id, v.run_id, v.parent_id, v.step_index, v.step_id, v.label, v.config, v.cached, v.cached_from_id,"
    " v.seconds, v.flag, a.path, a.bytes FROM variants v LEFT JOIN artifacts a ON a.variant_id = v.id"
    " WHERE {where} ORDER BY v.run_id, v.id"
)
_METRICS_SQL = (
    "SELECT m.variant_id, m.name, m.value, m.unit FROM metrics m JOIN variants v ON v.id = m.variant_id"
    " WHERE {where}"  # index order: per variant, metrics come in insertion order
)


def _variants(store: Store, where: str, params: tuple[Any, ...]) -> list[VariantInfo]:
    """Variants matching an SQL condition on ``v`` with their metrics.

    The two hot GUI queries go through the DB-API cursor directly: on thousands of rows the result
    processing of SQLAlchemy costs more than SQLite itself (benchmarks/bench_queries.py).
    """
    with store.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        rows = cursor.execute(_VARIANTS_SQL.format(where=where), params).fetchall()
        metric_rows = cursor.execute(_METRICS_SQL.format(where=where), params).fetchall()
        cursor.close()
    metrics: dict[int, dict[str, float | None]] = defaultdict(dict)
    units: dict[int, dict[str, str]] = defaultdict(dict)
    for vid, name, value, unit in metric_rows:
        metrics[vid][name] = value
        units[vid][name] = unit
    loads = json.loads
    return [
        VariantInfo(
            id=r[0], run_id=r[1], parent_id=r[2], step_index=r[3], step_id=r[4], label=r[5],
            config=loads(r[6]), cached=bool(r[7]), cached_from_id=r[8], seconds=r[9], flag=r[10],
            artifact_path=r[11], artifact_bytes=r[12], metrics=metrics.get(r[0], {}), units=units.get(r[0], {}),
        )
        for r in rows
    ]


def run_variants(store: Store, run_id: int) -> list[VariantInfo]:
    """Every variant of a run (baseline first), with metrics; parents come before children."""
    return _variants(store, "v.run_id = ?", (int(run_id),))


def variants_of_model(store: Store, model: str) -> list[VariantInfo]:
    """Every variant produced from one model reference (str(ModelRef)) across all runs."""
    where = "v.run_id IN (SELECT r.id FROM runs r JOIN models mo ON mo.id = r.model_id WHERE mo.ref = ?)"
    return _variants(store, where, (model,))


def get_variants(store: Store, variant_ids: list[int]) -> list[VariantInfo]:
    """The given variants (in id order); StoreError naming any id that does not exist."""
    ids = sorted({int(v) for v in variant_ids})
    found = _variants(store, f"v.id IN ({','.join('?' * len(ids))})", tuple(ids)) if ids else []
    missing = sorted(set(ids) - {v.id for v in found})
    if missing:
        raise StoreError(f"No variant {', '.join(map(str, missing))} in {store.path}; 'workbench-cli show RUN' lists them")
    return found


def variant_metrics(store: Store, variant_ids: list[int]) -> dict[int, list[MetricInfo]]:
    """All metric rows (with unit and split) of the given variants."""
    with store.read() as session:
        rows = session.execute(
            select(s.Metric.variant_id, s.Metric.name, s.Metric.value, s.Metric.unit, s.Metric.split)
            .where(s.Metric.variant_id.in_(list(variant_ids)))
            .order_by(s.Metric.id)
        ).all()
    out: dict[int, list[MetricInfo]] = {v: [] for v in variant_ids}
    for vid, name, value, unit, split in rows:
        out.setdefault(vid, []).append(MetricInfo(name, value, unit, split))
    return out


# ------------------------------------------------------------------------------------------
# Result tables: one function builds them, the GUI and the CLI both export them.


@dataclass
class Table:
    """Columns in display order and rows as dicts keyed by column (values: str, int, float, None)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    units: dict[str, str] = field(default_factory=dict)


def results_table(store: Store, run_ids: list[int] | None = None, variant_ids: list[int] | None = None) -> Table:
    """The comparison table of variants: task metrics, size, latency, ratios to the run's baseline.

    Give run ids (every variant of those runs), variant ids (just those), or neither (every run).
    Ratios compare against the baseline (step 0) of the same run, measured in that same run.
    """
    if variant_ids:
        variants = get_variants(store, variant_ids)
    else:
        ids = run_ids if run_ids is not None else [r.id for r in reversed(list_runs(store))]
        for rid in ids:
            get_run(store, rid)  # names the missing id
        variants = [v for rid in ids for v in run_variants(store, rid)]
    baselines: dict[int, VariantInfo] = {}
    need = {v.run_id for v in variants}
    for rid in need:
        base = next((v for v in variants if v.run_id == rid and v.step_index == 0), None)
        if base is None:
            base = next((v for v in run_variants(store, rid) if v.step_index == 0), None)
        if base is not None:
            baselines[rid] = base
    task_metric_names: list[str] = []
    for v in variants:
        for name in v.task_metrics:
            if name not in task_metric_names:
                task_metric_names.append(name)
    columns = ["run", "variant", "parent", "step", "label", "cached", *task_metric_names,
               "params", "nonzero_params", "size_mb", "size_ratio", "latency_p50_ms", "latency_p90_ms",
               "speedup", "flag"]
    units = {"size_mb": "MB", "latency_p50_ms": "ms", "latency_p90_ms": "ms", "size_ratio": "x", "speedup": "x"}
    rows = []
    for v in variants:
        m = v.metrics
        base = baselines.get(v.run_id)
        size = m.get("artifact_bytes") if m.get("artifact_bytes") is not None else v.artifact_bytes
        base_size = None
        base_p50 = None
        if base is not None:
            base_size = base.metrics.get("artifact_bytes") or base.artifact_bytes
            base_p50 = base.metrics.get("latency_p50")
        p50 = m.get("latency_p50")
        row: dict[str, Any] = {
            "run": v.run_id,
            "variant": v.id,
            "parent": v.parent_id,
            "step": v.step_index,
            "label": v.label,
            "cached": v.cached,
            **{name: m.get(name) for name in task_metric_names},
            "params": _int(m.get("params")),
            "nonzero_params": _int(m.get("nonzero_params")),
            "size_mb": size / 1e6 if size else None,
            "size_ratio": base_size / size if base_size and size else None,
            "latency_p50_ms": p50,
            "latency_p90_ms": m.get("latency_p90"),
            "speedup": base_p50 / p50 if base_p50 and p50 else None,
            "flag": v.flag,
        }
        rows.append(row)
    return Table(columns=columns, rows=rows, units=units)


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None


EXPORT_FORMATS = ("csv", "markdown", "latex", "json")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _latex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in text)


def export_table(table: Table, fmt: str) -> str:
    """The table as CSV, Markdown (pipe table), LaTeX (booktabs tabular) or JSON text."""
    cols = table.columns
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for row in table.rows:
            writer.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in cols})
        return buf.getvalue()
    if fmt == "json":
        return json.dumps({"columns": cols, "units": table.units, "rows": [{c: r.get(c) for c in cols} for r in table.rows]},
                          indent=2) + "\n"
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for row in table.rows:
            lines.append("| " + " | ".join(_fmt(row.get(c)).replace("|", "\\|") for c in cols) + " |")
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        lines = [
            r"\begin{tabular}{" + "l" * len(cols) + "}",
            r"\toprule",
            " & ".join(_latex(c) for c in cols) + r" \\",
            r"\midrule",
        ]
        for row in table.rows:
            lines.append(" & ".join(_latex(_fmt(row.get(c))) for c in cols) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise StoreError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}")
