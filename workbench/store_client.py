"""The GUI's only door to the results database: ``core.store``'s query and export functions.

Returns plain dicts (no ORM objects reach the widgets) with the keys the results view shows,
and keeps the store's own rows for export, so the GUI exports exactly what the CLI exports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_STORES: dict[Path, Any] = {}
_LABEL = re.compile(r"^(?P<step>[\w.:-]+)\((?P<args>.*)\)$")


def _store(db: Path) -> Any | None:
    """An open Store for ``db`` (kept open: one engine per database), or None when there is no file."""
    db = Path(db)
    if not db.exists():
        return None
    store = _STORES.get(db)
    if store is None:
        from core.store import open_store

        store = _STORES[db] = open_store(db, create=False)
    return store


def warm_up() -> None:
    """Run the view's queries once on an empty scratch database, off the GUI thread.

    A process's first query imports SQLAlchemy's SQLite dialect and compiles every statement:
    about 100 ms that hold the GIL. Without this it happens when a run's first variant lands,
    and the GUI thread stalls for it mid-run.
    """
    import tempfile

    from core.store import open_store

    with tempfile.TemporaryDirectory(prefix="workbench-warm-") as folder:
        db = Path(folder) / "warm.sqlite"
        open_store(db).close()
        try:
            results(db)
            mark_interrupted(db)
            interrupted_run(db)
        finally:
            store = _STORES.pop(db, None)
            if store is not None:
                store.close()


def close_all() -> None:
    for store in _STORES.values():
        store.close()
    _STORES.clear()


def list_runs(db: Path) -> list[dict[str, Any]]:
    store = _store(db)
    if store is None:
        return []
    from core.store import list_runs as query

    return [r.to_dict() for r in query(store)]


def mark_interrupted(db: Path) -> list[int]:
    """Runs recorded as running whose worker is gone become 'interrupted' (resumable)."""
    store = _store(db)
    if store is None:
        return []
    from core.store import mark_interrupted_runs

    return list(mark_interrupted_runs(store))


def interrupted_run(db: Path) -> int | None:
    """The newest run that can be resumed from its last finished step, if any."""
    for run in list_runs(db):  # newest first
        if run["status"] == "interrupted":
            return int(run["id"])
    return None


def parse_label(label: str) -> tuple[str, dict[str, float]]:
    """'prune.global_magnitude(amount=0.1)' -> ('prune.global_magnitude', {'amount': 0.1})."""
    m = _LABEL.match(label or "")
    if not m:
        return label, {}
    values: dict[str, float] = {}
    for part in m.group("args").split(","):
        key, _, value = part.partition("=")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            continue
    return m.group("step"), values


def results(db: Path, run_ids: list[int] | None = None) -> tuple[list[dict[str, Any]], Any]:
    """(rows for the view, the store's Table for export). Every run when ``run_ids`` is None."""
    store = _store(db)
    if store is None:
        return [], None
    from core.store import list_runs as query_runs
    from core.store import results_table
    from core.tasks import get_task

    runs = {r.id: r for r in query_runs(store)}
    table = results_table(store, run_ids=run_ids)
    primary: dict[str, str | None] = {}
    rows = []
    for raw in table.rows:
        run = runs.get(raw["run"])
        task = run.task if run else ""
        if task not in primary:
            try:
                primary[task] = get_task(task).primary_metric
            except Exception:  # custom task not registered in this process: first task metric
                primary[task] = None
        name = primary[task]
        if name is None or name not in raw:
            name = next((c for c in table.columns[6:] if c not in _NON_TASK and raw.get(c) is not None), None)
        step, sweep = parse_label(str(raw.get("label") or ""))
        ratio = raw.get("size_ratio")
        rows.append({
            "raw": raw,
            "variant_id": raw["variant"],
            "run_id": raw["run"],
            "index": raw["step"],
            "label": raw.get("label"),
            "step": step,
            "sweep": sweep or None,
            "baseline": raw["step"] == 0,
            "cached": raw.get("cached"),
            "metric_name": name,
            "metric": raw.get(name) if name else None,
            "params": raw.get("params"),
            "nonzero": raw.get("nonzero_params"),
            "mb": raw.get("size_mb"),
            "pct_smaller": 100.0 * (1 - 1 / ratio) if ratio else None,
            "p50": raw.get("latency_p50_ms"),
            "p90": raw.get("latency_p90_ms"),
            "speedup": raw.get("speedup"),
            "flag": raw.get("flag"),
            "model": run.model if run else None,
            "task": task,
        })
    _fill_pct_baseline(rows)
    return rows, table


_NON_TASK = {"params", "nonzero_params", "size_mb", "size_ratio", "latency_p50_ms", "latency_p90_ms", "speedup", "flag"}


def _fill_pct_baseline(rows: list[dict[str, Any]]) -> None:
    base = {r["run_id"]: r for r in rows if r["baseline"]}
    for r in rows:
        b = base.get(r["run_id"])
        if b is not None and r["metric"] is not None and b["metric"]:
            r["pct_baseline"] = 100.0 * r["metric"] / b["metric"]
        else:
            r["pct_baseline"] = None


def export_table(table: Any, variant_ids: list[int] | None, fmt: str) -> str:
    """The store's export (the CLI's), restricted to the given variants in the given order."""
    from core.store import Table
    from core.store import export_table as export

    rows = table.rows
    if variant_ids is not None:
        by_id = {r["variant"]: r for r in table.rows}
        rows = [by_id[v] for v in variant_ids if v in by_id]
    return export(Table(columns=table.columns, rows=rows, units=table.units), fmt)
