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
from core.store.rows import (
    BACKEND_LATENCY,
    MetricValue,
    ResultRow,
    RunMeta,
    VariantInfo,
    build_rows,
    machine_label,
    reference_of,
)
from core.store.rows import merge_seeds as merge_seed_rows


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
    primary_metric: str | None = None
    name: str = ""  # the user's labels (schema 3); shown name: name or recipe_name
    tags: tuple[str, ...] = ()
    note: str = ""

    @property
    def title(self) -> str:
        return self.name or self.recipe_name or f"run {self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tags": list(self.tags)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def _runs_query(counts: Any) -> Any:
    return (
        select(
            s.Run.id, s.Run.status, s.Model.ref, s.Run.task, s.Recipe.name, s.Run.seed, s.Run.created_at,
            s.Run.started_at, s.Run.finished_at, s.Run.error, s.Run.error_kind, s.Run.attempts,
            s.Run.artifacts_dir, s.Run.pid, s.Run.primary_metric, s.Run.name.label("run_name"), s.Run.tags,
            s.Run.note, counts,
        )
        .join(s.Model, s.Model.id == s.Run.model_id)
        .join(s.Recipe, s.Recipe.id == s.Run.recipe_id)
    )


def _run_info(r: Any) -> RunInfo:
    seconds = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
    return RunInfo(
        id=r.id, status=r.status, model=r.ref, task=r.task, recipe_name=r.name or "", seed=r.seed,
        created_at=_iso(r.created_at) or "", started_at=_iso(r.started_at), finished_at=_iso(r.finished_at),
        seconds=seconds, error=r.error, error_kind=r.error_kind, variants=r[-1], attempts=r.attempts,
        artifacts_dir=r.artifacts_dir, pid=r.pid, primary_metric=r.primary_metric, name=r.run_name or "",
        tags=tuple(json.loads(r.tags or "[]")), note=r.note or "",
    )


def list_runs(store: Store, *, model: str | None = None, status: str | None = None,
              limit: int | None = None) -> list[RunInfo]:
    """Runs, newest first; optionally only those of one model reference (str(ModelRef)) or status."""
    counts = (
        select(s.Variant.run_id, func.count(s.Variant.id).label("n")).group_by(s.Variant.run_id).subquery()
    )
    query = (
        _runs_query(func.coalesce(counts.c.n, 0))
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
    return [_run_info(r) for r in rows]


def get_run(store: Store, run_id: int) -> RunInfo:
    """One run; StoreError naming the id when it does not exist."""
    counts = select(func.count(s.Variant.id)).where(s.Variant.run_id == run_id).scalar_subquery()
    with store.read() as session:
        row = session.execute(_runs_query(counts).where(s.Run.id == run_id)).first()
    if row is None:
        raise StoreError(f"No run {run_id} in {store.path}; 'workbench-cli runs' lists them")
    return _run_info(row)


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
    " v.seconds, v.flags, a.path, a.bytes, v.swept, v.seed, v.node, v.environment_id FROM variants v"
    " LEFT JOIN artifacts a ON a.variant_id = v.id"
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
        env_ids = sorted({r[16] for r in rows if r[16] is not None})
        machines = {eid: (digest, machine_label(json.loads(body))) for eid, digest, body in cursor.execute(
            f"SELECT id, content_hash, body FROM environments WHERE id IN ({','.join('?' * len(env_ids))})",
            env_ids).fetchall()} if env_ids else {}
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
            config=loads(r[6]), cached=bool(r[7]), cached_from_id=r[8], seconds=r[9], flags=loads(r[10] or "[]"),
            artifact_path=r[11], artifact_bytes=r[12], metrics=metrics.get(r[0], {}), units=units.get(r[0], {}),
            swept=loads(r[13] or "{}"), seed=r[14], node=r[15],
            machine=machines.get(r[16], (None, None))[0], machine_label=machines.get(r[16], (None, None))[1],
        )
        for r in rows
    ]


def run_variants(store: Store, run_id: int) -> list[VariantInfo]:
    """Every variant of a run (baseline first), with metrics; parents come before children."""
    return _variants(store, "v.run_id = ?", (int(run_id),))


def _runs_like(session: Any, recipe_body: dict[str, Any]) -> list[int]:
    """Runs whose recipe has ``recipe_body``'s model, task, data and measurement settings: the same work."""
    wanted = {k: recipe_body.get(k) for k in ("model", "task", "data", "measure")}
    runs = session.execute(select(s.Run.id, s.Recipe.body).join(s.Recipe, s.Recipe.id == s.Run.recipe_id)
                           .where(s.Run.task == recipe_body.get("task"))).all()
    return [rid for rid, body in runs if _same(json.loads(body), wanted)]


def _past_variants(store: Store, recipe_body: dict[str, Any], column: Any, *, limit: int | None = None) -> list[Any]:
    """(step id, config as stored, ``column``) of the variants that runs of the same work computed (not reused)
    here and not on a Ray cluster, whose time includes shipping the artifact; newest first."""
    with store.read() as session:
        matching = _runs_like(session, recipe_body)
        if not matching:
            return []
        query = (select(s.Variant.step_id, s.Variant.config, column)
                 .where(s.Variant.run_id.in_(matching), s.Variant.cached.is_(False), s.Variant.seconds > 0,
                        s.Variant.info.not_like('%"ray":%'))
                 .order_by(s.Variant.id.desc()))
        return list(session.execute(query if limit is None else query.limit(limit)).all())


def past_step_seconds(store: Store, recipe_body: dict[str, Any], *, per_step: int = 20) -> dict[tuple[str, str], list[float]]:
    """Wall seconds of the variants earlier runs computed (not reused) here, not on a Ray cluster, with this
    recipe's model, task, data and measurement settings (``recipe_body``: a recipe's dict), by (step id, the
    step's config as stored), newest first, at most ``per_step`` each: what the same work took before."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for step_id, config, seconds in _past_variants(store, recipe_body, s.Variant.seconds):
        if len(out[(step_id, config)]) < per_step:
            out[(step_id, config)].append(float(seconds))
    return dict(out)


# The newest variants read for past timings: enough for every step of a large sweep, bounded at run start.
_PAST_VARIANTS = 2000


def past_phase_seconds(store: Store, recipe_body: dict[str, Any], *, per_step: int = 20) -> dict[str, float]:
    """The median seconds of each phase of the variants earlier runs computed here (as
    :func:`past_step_seconds` selects them), keyed as the runner's time-left estimate reads them
    (core.run.variant.expected_seconds): ``"<phase>:<step id>"`` for loading, saving and measuring,
    ``"apply:<step id> <config as stored>"`` for the step's own work, which depends on its config. From the
    ``per_step`` newest variants of each step (of each step and config for the work)."""
    import statistics

    times: dict[str, list[float]] = defaultdict(list)
    for step_id, config, info in _past_variants(store, recipe_body, s.Variant.info, limit=_PAST_VARIANTS):
        try:  # parsed here, not by SQLite's json_extract: before 3.42 it refuses the NaN a diverged loss writes
            timings = json.loads(info).get("timings") or {}
        except (ValueError, AttributeError):
            continue
        for phase, seconds in timings.items():
            if phase == "apply_cpu" or not isinstance(seconds, int | float):
                continue
            # the same keys as core.run.variant.work_key (the store does not import the runner above it)
            key = f"apply:{step_id} {config}" if phase == "apply" else f"{phase}:{step_id}"
            if len(times[key]) < per_step:
                times[key].append(float(seconds))
    return {key: statistics.median(values) for key, values in times.items()}


def _same(body: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(body.get(k) == v for k, v in wanted.items())


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


def variant_info(store: Store, variant_id: int) -> dict[str, Any]:
    """The step's report stored with a variant (timings, training curves, step statistics)."""
    with store.read() as session:
        body = session.execute(select(s.Variant.info).where(s.Variant.id == variant_id)).scalar()
    if body is None:
        raise StoreError(f"No variant {variant_id} in {store.path}")
    return json.loads(body or "{}")


def variant_predictions(store: Store, variant_id: int) -> dict[str, Any] | None:
    """A variant's per-example dev predictions ({"indices", "predictions", "confidences"}), None if none
    were stored. Rows stored before confidences existed read with ``"confidences": None``."""
    with store.read() as session:
        body = session.execute(select(s.Prediction.body).where(s.Prediction.variant_id == variant_id)).scalar()
    if not body:
        return None
    stored = json.loads(body)
    stored.setdefault("confidences", None)
    return stored


def variant_metrics(store: Store, variant_ids: list[int]) -> dict[int, list[MetricValue]]:
    """All metric rows (with unit and split) of the given variants."""
    with store.read() as session:
        rows = session.execute(
            select(s.Metric.variant_id, s.Metric.name, s.Metric.value, s.Metric.unit, s.Metric.split)
            .where(s.Metric.variant_id.in_(list(variant_ids)))
            .order_by(s.Metric.id)
        ).all()
    out: dict[int, list[MetricValue]] = {v: [] for v in variant_ids}
    for vid, name, value, unit, split in rows:
        out.setdefault(vid, []).append(MetricValue(name, value, unit, split))
    return out


# ------------------------------------------------------------------------------------------
# Result tables: one function builds them, the GUI and the CLI both export them.


@dataclass
class Table:
    """Columns in display order and rows as dicts keyed by column (values: str, int, float, None)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    units: dict[str, str] = field(default_factory=dict)


def result_rows(store: Store, run_ids: list[int] | None = None, variant_ids: list[int] | None = None, *,
                merge_seeds: bool = True) -> list[ResultRow]:
    """The comparison rows: every variant of the given runs, just the given variants, or (neither)
    every run. A fixed handful of queries whatever the number of runs. A run made with several
    seeds gives one row per variant (mean and standard deviation) unless ``merge_seeds`` is False."""
    if variant_ids:
        variants = get_variants(store, variant_ids)
    elif run_ids is not None:
        ids = sorted({int(r) for r in run_ids})
        variants = _variants(store, f"v.run_id IN ({','.join('?' * len(ids))})", tuple(ids)) if ids else []
        missing = sorted(set(ids) - _existing_runs(store, ids))
        if missing:
            raise StoreError(f"No run {', '.join(map(str, missing))} in {store.path}; 'workbench-cli runs' lists them")
    else:
        variants = _variants(store, "1 = 1", ())
    runs = _run_meta(store, sorted({v.run_id for v in variants}))
    whole = variants if not variant_ids else (
        _variants(store, f"v.run_id IN ({','.join('?' * len(runs))})", tuple(runs)) if runs else [])
    by_run_seed: dict[tuple[int, int | None], list[VariantInfo]] = {}
    for v in whole:
        by_run_seed.setdefault((v.run_id, v.seed), []).append(v)
    references = {key: reference_of(group) for key, group in by_run_seed.items()}
    baselines = {key: v for key, group in by_run_seed.items() for v in group if v.step_index == 0}
    rows = build_rows(variants, runs, references, baselines)
    if merge_seeds and len({(v.run_id, v.seed) for v in whole}) > len({v.run_id for v in whole}):
        return merge_seed_rows(rows, [v.node for v in variants])
    return rows


def _existing_runs(store: Store, ids: list[int]) -> set[int]:
    with store.read() as session:
        return set(session.scalars(select(s.Run.id).where(s.Run.id.in_(ids))))


def _run_meta(store: Store, ids: list[int]) -> dict[int, RunMeta]:
    if not ids:
        return {}
    with store.read() as session:
        rows = session.execute(
            select(s.Run.id, s.Model.ref, s.Run.task, s.Run.primary_metric)
            .join(s.Model, s.Model.id == s.Run.model_id).where(s.Run.id.in_(ids))
        ).all()
    return {r.id: RunMeta(r.id, r.ref, r.task, r.primary_metric) for r in rows}


# Export columns in display order; the task metrics and swept values go after "cached".
_LEADING = ["run", "variant", "parent", "step", "label", "cached"]
_TRAILING = ["metric_name", "metric", "metric_ci_low", "metric_ci_high", "metric_sd", "seeds", "delta_vs_parent",
             "delta_ci_low", "delta_ci_high", "reference", "pct_baseline", "params", "nonzero_params", "size_mb",
             "size_ratio", "pct_smaller", "latency_p50_ms", "latency_p50_ci_low", "latency_p50_ci_high",
             "latency_p90_ms", "speedup", "speedup_ci_low", "speedup_ci_high", "flags", "flag_reasons", "seed", "eval_examples", "latency_batch",
             "latency_seq_len", "latency_threads", "latency_repeats", "load_avg_1m"]
UNITS = {"size_mb": "MB", "latency_p50_ms": "ms", "latency_p50_ci_low": "ms", "latency_p50_ci_high": "ms",
         "latency_p90_ms": "ms", "size_ratio": "x", "speedup": "x", "speedup_ci_low": "x", "speedup_ci_high": "x", "pct_baseline": "%", "pct_smaller": "%",
         "load_avg_1m": "runnable tasks"}


def table_of(rows: list[ResultRow]) -> Table:
    """Rows as an export table: one column per task metric and per swept field of any row."""
    extra: list[str] = []
    on_backends: list[str] = []
    for r in rows:
        intervals = [n + s for n in r.task_metrics for s in ("_ci95_low", "_ci95_high")]
        for name in [*r.task_metrics, *intervals, *(f"swept_{k}" for k in r.swept)]:
            if name not in extra:
                extra.append(name)
        for backend in r.backend_latency:
            for name in (BACKEND_LATENCY + backend + end for end in ("", "_ci95_low", "_ci95_high")):
                if name not in on_backends:
                    on_backends.append(name)
    trailing = list(_TRAILING)
    if on_backends:  # measure.backends: after the shipped latency, each backend's, then the fastest
        at = trailing.index("latency_p90_ms")
        trailing[at:at] = [*on_backends, "fastest_backend"]
    units = dict(UNITS) | dict.fromkeys(on_backends, "ms")
    return Table(columns=[*_LEADING, *extra, *trailing], rows=[r.flat() for r in rows], units=units)


def results_table(store: Store, run_ids: list[int] | None = None, variant_ids: list[int] | None = None) -> Table:
    """The comparison table of :func:`result_rows`, as the CLI and the window export it."""
    return table_of(result_rows(store, run_ids=run_ids, variant_ids=variant_ids))


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


def _numeric(table: Table, column: str) -> bool:
    values = [r.get(column) for r in table.rows if r.get(column) is not None]
    return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def export_table(table: Table, fmt: str) -> str:
    """The table as CSV, Markdown (pipe table), LaTeX (a booktabs tabular scaled to the line width) or JSON text."""
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
        # Shrunk to the line width when wider (a comparison has some 40 columns and ran off the page),
        # never enlarged; numbers right-aligned. Landscape pages keep the text larger.
        align = "".join("r" if _numeric(table, c) else "l" for c in cols)
        lines = [
            r"% needs \usepackage{booktabs,graphicx}; a landscape page (\usepackage{pdflscape}) keeps the text larger",
            r"\noindent\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
            r"\begin{tabular}{" + align + "}",
            r"\toprule",
            " & ".join(_latex(c) for c in cols) + r" \\",
            r"\midrule",
        ]
        for row in table.rows:
            lines.append(" & ".join(_latex(_fmt(row.get(c))) for c in cols) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}%", "}"]
        return "\n".join(lines) + "\n"
    raise StoreError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}")
