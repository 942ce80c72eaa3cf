"""The GUI's only door to the results database: ``core.store``'s query and export functions.

Rows reach the widgets as plain dicts of :class:`core.store.ResultRow` (the same rows the CLI prints
and every export holds, and that a running worker sends with each finished variant).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_STORES: dict[Path, Any] = {}


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
    """The newest run that was stopped before its end (cancelled, or interrupted by a closed window or a
    dead worker): it can be resumed from its last finished step. A failed run is not offered: its
    error dialog says what to fix first."""
    for run in list_runs(db):  # newest first
        if run["status"] in ("interrupted", "cancelled"):
            return int(run["id"])
    return None


def run_duration(db: Path, recipe: Any) -> Any:
    """How long ``recipe`` (a core.recipe.Recipe) should run, by what the same work took in this database
    (a core.recipe.DurationEstimate; None without a database)."""
    store = _store(db)
    if store is None:
        return None
    from core.recipe.estimate import run_duration as estimate
    from core.store import past_step_seconds

    return estimate(recipe, past_step_seconds(store, recipe.to_dict()))


def results(db: Path) -> list[dict[str, Any]]:
    """Every run's result rows (as dicts), oldest run first."""
    store = _store(db)
    if store is None:
        return []
    from core.store import result_rows

    return [r.to_dict() for r in result_rows(store)]


def run_titles(db: Path) -> dict[int, dict[str, Any]]:
    """Each run's id -> its listing (name, tags, note, recipe name, status), for the run picker."""
    return {int(r["id"]): r for r in list_runs(db)}


def curves(db: Path, variant_id: int) -> dict[str, Any]:
    """The training curves stored with a variant ({phase: {series: [[step, value], ...]}}), or {}."""
    store = _store(db)
    if store is None:
        return {}
    from core.store import variant_info

    return dict(variant_info(store, variant_id).get("curves") or {})


def run_recipe(db: Path, run_id: int) -> dict[str, Any]:
    """The recipe a run executed, as a dict (core.recipe.Recipe.from_dict reads it)."""
    import json

    store = _store(db)
    if store is None:
        raise FileNotFoundError(f"no results database at {db}")
    from core.store import run_recipe_text

    return dict(json.loads(run_recipe_text(store, run_id)))


def set_labels(db: Path, run_id: int, **labels: Any) -> None:
    store = _store(db)
    if store is None:
        raise FileNotFoundError(f"no results database at {db}")
    from core.store import set_run_labels

    set_run_labels(store, run_id, **labels)


def disk_usage(db: Path) -> dict[int, int]:
    store = _store(db)
    if store is None:
        return {}
    from core.store import run_disk_usage

    return run_disk_usage(store)


def delete_run(db: Path, run_id: int, *, force: bool = False) -> Any:
    store = _store(db)
    if store is None:
        raise FileNotFoundError(f"no results database at {db}")
    from core.store import delete_run as delete

    return delete(store, run_id, force=force)


def dependents(db: Path, run_id: int) -> list[int]:
    store = _store(db)
    if store is None:
        return []
    from core.store import run_dependents

    return run_dependents(store, run_id)


def collect_garbage(db: Path, artifacts: Path, *, dry_run: bool = False) -> Any:
    store = _store(db)
    if store is None:
        raise FileNotFoundError(f"no results database at {db}")
    from core.store import collect_garbage as collect

    return collect(store, [artifacts], dry_run=dry_run)


def export_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """The given rows through the store's exporter (the CLI's), in the given order."""
    from core.store import ResultRow, export_table, table_of

    return export_table(table_of([ResultRow.from_dict(r) for r in rows]), fmt)
