"""Managing runs: the user's labels (name, tags, note), disk use, deleting a run with its
artifacts, and collecting artifact folders that no run refers to any more.

Artifact folders are plain paths here (the store never imports what writes them): a run owns the
folder recorded as its ``artifacts_dir`` (``run-NNNNN`` under an artifacts root); each variant's
artifact is a folder inside it, or, for a variant reused from the cache, another run's folder.
Nothing outside a ``run-*`` folder is ever deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select

from core.store import schema as s
from core.store.db import Store, StoreError
from core.store.record import mark_interrupted_runs, pid_alive

RUN_FOLDER_PREFIX = "run-"
MAX_TAGS = 20
MAX_TAG_CHARS = 40


def tree_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 when it is gone); symlinks are not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed meanwhile
    return total


# --- labels ----------------------------------------------------------------------------------


def clean_tags(tags: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """Tags as stored: split on commas when given as text, trimmed, without duplicates, in order.
    A tag that is too long or too many tags raise StoreError naming the limit."""
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    out: list[str] = []
    for raw in items:
        if not isinstance(raw, str):
            raise StoreError(f"A tag must be text, got {raw!r}")
        tag = " ".join(raw.split())
        if not tag or tag in out:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise StoreError(f"Tag '{tag[:MAX_TAG_CHARS]}…' is longer than {MAX_TAG_CHARS} characters; shorten it")
        out.append(tag)
    if len(out) > MAX_TAGS:
        raise StoreError(f"{len(out)} tags given; a run keeps at most {MAX_TAGS}")
    return tuple(out)


def set_run_labels(store: Store, run_id: int, *, name: str | None = None,
                   tags: list[str] | tuple[str, ...] | str | None = None, note: str | None = None) -> None:
    """Change a run's name, tags or note (None leaves one unchanged). Allowed while it runs: the
    worker never writes these columns."""
    cleaned = clean_tags(tags) if tags is not None else None
    with store.write() as session:
        run = session.get(s.Run, run_id)
        if run is None:
            raise StoreError(f"No run {run_id} in {store.path}; 'workbench-cli runs' lists them")
        if name is not None:
            run.name = " ".join(name.split())
        if cleaned is not None:
            run.tags = json.dumps(list(cleaned))
        if note is not None:
            run.note = note.strip()


# --- disk use --------------------------------------------------------------------------------


def run_disk_usage(store: Store, run_ids: list[int] | None = None) -> dict[int, int]:
    """Bytes on disk of each run's own artifact folder (variants reused from another run's cache
    take no space of their own). Runs whose folder is gone count 0."""
    query = select(s.Run.id, s.Run.artifacts_dir)
    if run_ids is not None:
        query = query.where(s.Run.id.in_([int(r) for r in run_ids]))
    with store.read() as session:
        rows = session.execute(query).all()
    return {r.id: tree_bytes(Path(r.artifacts_dir)) if r.artifacts_dir else 0 for r in rows}


# --- deleting a run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteReport:
    run_id: int
    variants: int
    bytes_freed: int
    folder: str
    dependents: tuple[int, ...] = ()  # other runs whose cached variants pointed into this run's folder


def _owned_folder(artifacts_dir: str) -> Path | None:
    """The run's folder if it is one the runner made (``run-NNNNN``); never anything else."""
    if not artifacts_dir:
        return None
    folder = Path(artifacts_dir)
    return folder if folder.name.startswith(RUN_FOLDER_PREFIX) else None


def run_dependents(store: Store, run_id: int) -> list[int]:
    """Other runs holding variants reused from this run's cache (their artifact is in its folder)."""
    with store.read() as session:
        folder = session.execute(select(s.Run.artifacts_dir).where(s.Run.id == run_id)).scalar()
        if not folder:
            return []
        prefix = str(Path(folder)) + os.sep
        rows = session.execute(
            select(s.Variant.run_id).join(s.Artifact, s.Artifact.variant_id == s.Variant.id)
            .where(s.Variant.run_id != run_id, s.Artifact.path.startswith(prefix, autoescape=True)).distinct()
        ).all()
    return sorted(r.run_id for r in rows)


def delete_run(store: Store, run_id: int, *, force: bool = False) -> DeleteReport:
    """Delete a run, its variants, metrics and its artifact folder.

    Refused (StoreError) while its worker is running, and, unless ``force``, when other runs reused
    its variants from the cache: their numbers would stay but their artifacts would be gone.
    """
    mark_interrupted_runs(store)  # a run whose worker died is no longer "running"
    with store.read() as session:
        run = session.execute(
            select(s.Run.id, s.Run.status, s.Run.pid, s.Run.pid_start, s.Run.host, s.Run.artifacts_dir)
            .where(s.Run.id == run_id)
        ).first()
        variants = session.execute(select(s.Variant.id).where(s.Variant.run_id == run_id)).all()
    if run is None:
        raise StoreError(f"No run {run_id} in {store.path}; 'workbench-cli runs' lists them")
    if run.status == s.RUNNING and pid_alive(run.pid, run.pid_start, run.host):
        raise StoreError(
            f"Run {run_id} is running (worker process {run.pid}); cancel it or let it finish, then delete it"
        )
    dependents = tuple(run_dependents(store, run_id))
    if dependents and not force:
        runs = ", ".join(map(str, dependents))
        raise StoreError(
            f"Runs {runs} reused variants of run {run_id} from the cache; deleting it removes those artifacts "
            "too (their numbers stay). Delete with --force to go ahead"
        )
    folder = _owned_folder(run.artifacts_dir)
    freed = tree_bytes(folder) if folder is not None else 0
    with store.write() as session:
        # variants, their metrics and artifact rows go by ON DELETE CASCADE; other runs' links to
        # them (parent, cached_from) become NULL.
        session.execute(delete(s.Run).where(s.Run.id == run_id))
    if folder is not None and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    return DeleteReport(run_id=run_id, variants=len(variants), bytes_freed=freed,
                        folder=str(folder) if folder is not None else "", dependents=dependents)


# --- garbage collection ------------------------------------------------------------------------


@dataclass
class GarbageReport:
    """What :func:`collect_garbage` removed (or, on a dry run, would remove)."""

    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    skipped_running: list[int] = field(default_factory=list)


def collect_garbage(store: Store, roots: list[Path] | None = None, *, dry_run: bool = False) -> GarbageReport:
    """Remove artifact folders no run refers to, and empty folders, under the artifacts roots.

    ``roots`` default to every folder holding a run's folder (plus the ones given). Removed: a
    ``run-*`` folder of a run that no longer exists; inside a run's folder, any entry that is not
    a recorded variant artifact (a step killed while saving, an old scratch folder); then empty
    folders. A running run's folder is never touched: its next artifact is not recorded yet.
    """
    mark_interrupted_runs(store)
    with store.read() as session:
        runs = session.execute(select(s.Run.id, s.Run.status, s.Run.artifacts_dir)).all()
        artifact_paths = {str(Path(p)) for (p,) in session.execute(select(s.Artifact.path)).all()}
    run_folders = {str(Path(r.artifacts_dir)): r for r in runs if r.artifacts_dir}
    scan = {Path(p).parent for p in run_folders} | {Path(r) for r in roots or []}
    report = GarbageReport()
    report.skipped_running = sorted(r.id for r in runs if r.status == s.RUNNING)

    def remove(path: Path) -> None:
        report.removed.append(str(path))
        report.bytes_freed += tree_bytes(path) if path.is_dir() else path.lstat().st_size
        if not dry_run:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    for root in sorted(scan):
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if not (child.is_dir() and child.name.startswith(RUN_FOLDER_PREFIX)):
                continue  # not ours
            run = run_folders.get(str(child))
            if run is None:
                remove(child)  # its run was deleted (or never recorded)
                continue
            if run.status == s.RUNNING:
                continue
            for entry in sorted(child.iterdir()):
                if str(entry) not in artifact_paths:
                    remove(entry)
            if not dry_run and not any(child.iterdir()):
                child.rmdir()  # an empty run folder (a run with no variant yet) is recreated on resume
                report.removed.append(str(child))
    return report
