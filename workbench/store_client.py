"""The GUI's only door to the results database: ``core.store`` query and export functions.

Kept in one module so the window never sees ORM objects, and so the adapter to the store's
signatures lives in one place. Every function returns plain data and tolerates a missing DB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def available() -> bool:
    try:
        import core.store  # noqa: F401
    except ImportError:
        return False
    return True


def list_runs(db: Path) -> list[dict[str, Any]]:
    if not available() or not Path(db).exists():
        return []
    from core import store

    return [_as_dict(r) for r in store.list_runs(db=str(db))]


def results_rows(db: Path, run_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Rows of every variant of the given runs (all runs when None): the CLI's export rows."""
    if not available() or not Path(db).exists():
        return []
    from core import store

    if run_ids is None:
        run_ids = [int(r["id"] if "id" in r else r["run_id"]) for r in list_runs(db)]
    if not run_ids:
        return []
    return [_as_dict(r) for r in store.results_table(run_ids=run_ids, db=str(db))]


def export_table(rows: list[dict[str, Any]], fmt: str) -> str:
    from core import store

    return store.export_table(rows, fmt)


def interrupted_run(db: Path) -> int | None:
    """The newest run left 'interrupted' (or 'running' with no worker), if any."""
    for run in sorted(list_runs(db), key=lambda r: r.get("id") or r.get("run_id") or 0, reverse=True):
        if run.get("status") == "interrupted":
            return int(run.get("id") or run.get("run_id"))
    return None


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)  # type: ignore[arg-type]
    return dict(vars(obj))
