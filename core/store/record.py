"""Writing results: the runner's only way into the database. Each function is one short transaction."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.store import schema as s
from core.store.db import Store
from core.store.rows import MetricValue


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _get_or_create(session: Any, cls: type, match: dict[str, Any], **values: Any) -> Any:
    row = session.scalars(select(cls).filter_by(**match)).first()
    if row is None:
        row = cls(**match, **values)
        session.add(row)
        session.flush()
    return row


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), so a reused pid is not mistaken for our worker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int | None, start: str | None, host: str | None) -> bool:
    """Whether the worker that owns a run is still running (on another host we cannot tell: assume yes)."""
    if pid is None:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat_path = Path(f"/proc/{pid}/stat")
    if stat_path.exists():
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):  # zombie: dead, only not yet reaped by its parent
            return False
        if start is not None and fields[19] != start:
            return False
    return True


@dataclass
class RunContext:
    """Identity of a run as the runner needs it."""

    run_id: int
    artifacts_dir: Path
    attempts: int = 1


def mark_interrupted_runs(store: Store) -> list[int]:
    """Runs found ``running`` whose worker is gone become ``interrupted`` (resumable). Returns their ids."""
    if store.read_only:  # nothing can be marked; readers still see the run as it was left
        return []
    with store.read() as session:
        candidates = session.execute(
            select(s.Run.id, s.Run.pid, s.Run.pid_start, s.Run.host).where(s.Run.status == s.RUNNING)
        ).all()
    dead = [r.id for r in candidates if not pid_alive(r.pid, r.pid_start, r.host)]
    if dead:
        with store.write() as session:
            for run in session.scalars(select(s.Run).where(s.Run.id.in_(dead), s.Run.status == s.RUNNING)):
                run.status = s.INTERRUPTED
                run.error = run.error or "The worker stopped without finishing (killed or crashed); resume to continue"
                run.error_kind = run.error_kind or "Interrupted"
                run.finished_at = now()
    return dead


@dataclass
class RunIdentity:
    model_ref: str
    model_kind: str
    model_hash: str
    task: str
    data_hash: str
    recipe_json: str
    recipe_name: str
    seed: int
    environment: dict[str, Any] = field(default_factory=dict)
    primary_metric: str | None = None


def create_run(store: Store, ident: RunIdentity, artifacts_root: Path) -> RunContext:
    """Record a new run as ``running`` by this process; its artifacts go to ``artifacts_root/run-N``."""
    pid = os.getpid()
    with store.write() as session:
        model = _get_or_create(
            session, s.Model, {"ref": ident.model_ref, "content_hash": ident.model_hash},
            kind=ident.model_kind, created_at=now(),
        )
        dataset = _get_or_create(
            session, s.Dataset, {"task": ident.task, "content_hash": ident.data_hash}, created_at=now()
        )
        recipe = _get_or_create(
            session, s.Recipe, {"content_hash": sha256_text(ident.recipe_json)},
            name=ident.recipe_name, body=ident.recipe_json, created_at=now(),
        )
        env_json = json.dumps(ident.environment, sort_keys=True)
        env = _get_or_create(session, s.Environment, {"content_hash": sha256_text(env_json)}, body=env_json,
                             created_at=now())
        run = s.Run(
            recipe_id=recipe.id, model_id=model.id, dataset_id=dataset.id, environment_id=env.id,
            task=ident.task, seed=ident.seed, status=s.RUNNING, created_at=now(), started_at=now(),
            pid=pid, pid_start=process_start(pid), host=socket.gethostname(), artifacts_dir="", attempts=1,
            primary_metric=ident.primary_metric,
        )
        session.add(run)
        session.flush()
        folder = Path(artifacts_root) / f"run-{run.id:05d}"
        run.artifacts_dir = str(folder)
        return RunContext(run_id=run.id, artifacts_dir=folder)


def claim_run_for_resume(store: Store, run_id: int, environment: dict[str, Any]) -> tuple[RunContext, str]:
    """Mark a failed/cancelled/interrupted run ``running`` again by this process; return it and its recipe JSON."""
    from core.store.db import StoreError

    mark_interrupted_runs(store)
    pid = os.getpid()
    with store.write() as session:
        run = session.get(s.Run, run_id)
        if run is None:
            raise StoreError(f"No run {run_id} in {store.path}")
        if run.status not in s.RESUMABLE:
            raise StoreError(
                f"Run {run_id} is {run.status}; only failed, cancelled or interrupted runs can be resumed"
            )
        env_json = json.dumps(environment, sort_keys=True)
        env = _get_or_create(session, s.Environment, {"content_hash": sha256_text(env_json)}, body=env_json,
                             created_at=now())
        run.environment_id = env.id
        run.status = s.RUNNING
        run.error = None
        run.error_kind = None
        run.finished_at = None
        run.pid = pid
        run.pid_start = process_start(pid)
        run.host = socket.gethostname()
        run.attempts = (run.attempts or 1) + 1
        return RunContext(run_id=run.id, artifacts_dir=Path(run.artifacts_dir), attempts=run.attempts), run.recipe.body


def finish_run(store: Store, run_id: int, status: str, error: str | None = None, kind: str | None = None) -> None:
    with store.write() as session:
        run = session.get(s.Run, run_id)
        if run is None:
            return
        run.status = status
        run.error = error
        run.error_kind = kind
        run.finished_at = now()


@dataclass
class StoredVariant:
    """What the runner needs to know about a finished variant (its own or a cached one)."""

    id: int
    artifact_path: Path
    metrics: list[MetricValue]
    info: dict[str, Any]
    flags: list[dict[str, str]] = field(default_factory=list)
    predictions: dict[str, Any] | None = None  # {"indices": [...], "predictions": [...]} on the dev split
    machine: dict[str, Any] | None = None  # the fingerprint of the machine it was made and timed on


def add_variant(
    store: Store,
    *,
    run_id: int,
    parent_id: int | None,
    step_index: int,
    step_id: str,
    label: str,
    config: dict[str, Any],
    cache_key: str,
    metrics: list[MetricValue],
    artifact_path: Path,
    artifact_bytes: int,
    seconds: float,
    flags: list[dict[str, str]] | None = None,
    info: dict[str, Any] | None = None,
    cached_from: int | None = None,
    swept: dict[str, Any] | None = None,
    seed: int | None = None,
    node: int | None = None,
    predictions: dict[str, Any] | None = None,
    machine: dict[str, Any] | None = None,
) -> int:
    """Commit one finished variant with its metrics and artifact in one transaction; return its id.
    ``machine`` is the fingerprint of the machine it was made and timed on."""
    with store.write() as session:
        environment_id = _environment(session, machine).id if machine is not None else None
        variant = s.Variant(
            run_id=run_id, parent_id=parent_id, step_index=step_index, step_id=step_id, label=label,
            config=json.dumps(config, sort_keys=True), swept=json.dumps(swept or {}), cache_key=cache_key, cached=cached_from is not None,
            cached_from_id=cached_from, seconds=seconds, flags=json.dumps(flags or []),
            info=json.dumps(info or {}, default=str), seed=seed, node=node, environment_id=environment_id,
            created_at=now(),
        )
        session.add(variant)
        session.flush()
        session.add_all(
            s.Metric(variant_id=variant.id, name=m.name, value=m.value, unit=m.unit, split=m.split) for m in metrics
        )
        session.add(s.Artifact(variant_id=variant.id, path=str(artifact_path), bytes=artifact_bytes))
        if predictions is not None:
            session.add(s.Prediction(variant_id=variant.id, split="dev", body=json.dumps(predictions)))
        return variant.id


def machine_hash(body: dict[str, Any]) -> str:
    """The content hash a fingerprint (or any environment) is stored under: equal hashes, same machine."""
    return sha256_text(json.dumps(body, sort_keys=True))


def _environment(session: Any, body: dict[str, Any]) -> s.Environment:
    text = json.dumps(body, sort_keys=True)
    return _get_or_create(session, s.Environment, {"content_hash": sha256_text(text)}, body=text, created_at=now())


def replace_latency(store: Store, variant_id: int, metrics: list[MetricValue], machine: dict[str, Any],
                    note: dict[str, Any]) -> None:
    """Swap a variant's latency metrics for ones timed again on ``machine`` (measure.retime_on_driver),
    in one transaction; ``note`` (what was replaced, and where it had been timed) joins its info."""
    names = [m.name for m in metrics]
    with store.write() as session:
        variant = session.get(s.Variant, variant_id)
        if variant is None:
            return
        for old in session.scalars(select(s.Metric).where(s.Metric.variant_id == variant_id, s.Metric.name.in_(names))):
            session.delete(old)
        session.add_all(
            s.Metric(variant_id=variant_id, name=m.name, value=m.value, unit=m.unit, split=m.split) for m in metrics
        )
        variant.environment_id = _environment(session, machine).id
        variant.info = json.dumps({**json.loads(variant.info or "{}"), **note}, default=str)


def _stored(session: Any, variant: s.Variant) -> StoredVariant | None:
    artifact = session.scalars(select(s.Artifact).where(s.Artifact.variant_id == variant.id)).first()
    if artifact is None:
        return None
    metrics = [
        MetricValue(m.name, m.value, m.unit, m.split)
        for m in session.scalars(select(s.Metric).where(s.Metric.variant_id == variant.id).order_by(s.Metric.id))
    ]
    body = session.scalars(select(s.Prediction.body).where(s.Prediction.variant_id == variant.id)).first()
    machine = session.get(s.Environment, variant.environment_id) if variant.environment_id is not None else None
    return StoredVariant(id=variant.id, artifact_path=Path(artifact.path), metrics=metrics,
                         info=json.loads(variant.info or "{}"), flags=json.loads(variant.flags or "[]"),
                         predictions=json.loads(body) if body else None,
                         machine=json.loads(machine.body) if machine is not None else None)


def find_in_run(store: Store, run_id: int, cache_key: str) -> StoredVariant | None:
    """This run's own finished variant for ``cache_key`` (used when resuming)."""
    with store.read() as session:
        variant = session.scalars(
            select(s.Variant).where(s.Variant.run_id == run_id, s.Variant.cache_key == cache_key).order_by(s.Variant.id)
        ).first()
        return _stored(session, variant) if variant is not None else None


def find_cached(store: Store, cache_key: str, usable: Callable[[Path], bool]) -> StoredVariant | None:
    """The newest finished variant of any run with this cache key whose artifact is ``usable``
    (still on disk and complete: the caller knows what an artifact folder holds)."""
    with store.read() as session:
        for variant in session.scalars(
            select(s.Variant).where(s.Variant.cache_key == cache_key).order_by(s.Variant.id.desc()).limit(20)
        ):
            stored = _stored(session, variant)
            if stored is not None and usable(stored.artifact_path):
                return stored
    return None
