"""Sensitivity maps in the results database (schema 4): written by core.analysis while it measures,
read by the CLI and the window, exported as CSV, Markdown or JSON.

A map belongs to one stored variant; each cell is one transform applied to one part of the model
alone, with the metric change against the untouched variant on the same dev examples and its
paired 95 % interval. Cells are committed as they are measured, so a cancelled map keeps what it
finished (status ``cancelled``). A map left ``running`` by a process that is gone reads as
``interrupted``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from core.store import schema as s
from core.store.db import Store, StoreError
from core.store.queries import Table, export_table
from core.store.record import now, pid_alive, process_start

RUNNING, FINISHED, CANCELLED, FAILED, INTERRUPTED = "running", "finished", "cancelled", "failed", "interrupted"


@dataclass(frozen=True)
class SensitivityCell:
    transform: str
    layer: str
    position: int
    metric: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    examples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SensitivityMap:
    """One stored map with its cells (in measuring order)."""

    id: int
    variant_id: int
    metric: str
    base_metric: float | None
    examples: int
    seed: int
    grouping: str  # "layer" | "role"
    transforms: list[str]
    status: str
    body: dict[str, Any]
    seconds: float | None
    created_at: str
    cells: list[SensitivityCell] = field(default_factory=list)

    @property
    def layers(self) -> list[str]:
        """The parts measured (or planned), bottom to top."""
        planned = self.body.get("parts")
        if planned:
            return list(planned)
        return [c.layer for c in sorted({c.layer: c for c in self.cells}.values(), key=lambda c: c.position)]

    @property
    def points(self) -> float:
        """Points per metric unit: 100 for 0-1 metrics (accuracy), 1 for 0-100 ones (SQuAD F1)."""
        return float(self.body.get("points", 100.0))

    def cell(self, transform: str, layer: str) -> SensitivityCell | None:
        return next((c for c in self.cells if c.transform == transform and c.layer == layer), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SensitivityMap:
        return cls(**{**data, "cells": [SensitivityCell(**c) for c in data.get("cells", [])]})


# --- writing ------------------------------------------------------------------------------------
def create_sensitivity_map(store: Store, *, variant_id: int, metric: str, base_metric: float | None, examples: int,
                           seed: int, grouping: str, transforms: list[str], body: dict[str, Any]) -> int:
    """Record a map as ``running`` by this process; return its id."""
    pid = os.getpid()
    with store.write() as session:
        if session.get(s.Variant, variant_id) is None:
            raise StoreError(f"No variant {variant_id} in {store.path}; 'workbench-cli show RUN' lists them")
        row = s.SensitivityMap(
            variant_id=variant_id, metric=metric, base_metric=base_metric, examples=examples, seed=seed,
            grouping=grouping, transforms=json.dumps(transforms), status=RUNNING,
            body=json.dumps({**body, "pid": pid, "pid_start": process_start(pid)}), created_at=now(),
        )
        session.add(row)
        session.flush()
        return row.id


def add_sensitivity_cell(store: Store, map_id: int, cell: SensitivityCell) -> None:
    with store.write() as session:
        variant_id = session.execute(select(s.SensitivityMap.variant_id).where(s.SensitivityMap.id == map_id)).scalar()
        if variant_id is None:
            raise StoreError(f"No sensitivity map {map_id} in {store.path}")
        session.add(s.SensitivityCell(map_id=map_id, variant_id=variant_id, created_at=now(), **cell.to_dict()))


def finish_sensitivity_map(store: Store, map_id: int, status: str, seconds: float, *,
                           error: str | None = None) -> None:
    with store.write() as session:
        row = session.get(s.SensitivityMap, map_id)
        if row is None:
            return
        row.status = status
        row.seconds = seconds
        if error:
            row.body = json.dumps({**json.loads(row.body or "{}"), "error": error})


# --- reading ------------------------------------------------------------------------------------
def _status(row: Any, body: dict[str, Any]) -> str:
    if row.status == RUNNING and not pid_alive(body.get("pid"), body.get("pid_start"), None):
        return INTERRUPTED
    return row.status


def _map(row: Any, cells: list[SensitivityCell]) -> SensitivityMap:
    body = json.loads(row.body or "{}")
    return SensitivityMap(
        id=row.id, variant_id=row.variant_id, metric=row.metric, base_metric=row.base_metric, examples=row.examples,
        seed=row.seed, grouping=row.grouping, transforms=json.loads(row.transforms), status=_status(row, body),
        body=body, seconds=row.seconds, created_at=row.created_at.isoformat(timespec="seconds") + "Z", cells=cells,
    )


def _cells(session: Any, map_ids: list[int]) -> dict[int, list[SensitivityCell]]:
    out: dict[int, list[SensitivityCell]] = {i: [] for i in map_ids}
    rows = session.scalars(select(s.SensitivityCell).where(s.SensitivityCell.map_id.in_(map_ids))
                           .order_by(s.SensitivityCell.id))
    for c in rows:
        out[c.map_id].append(SensitivityCell(
            transform=c.transform, layer=c.layer, position=c.position, metric=c.metric, delta=c.delta,
            ci_low=c.ci_low, ci_high=c.ci_high, examples=c.examples, seed=c.seed))
    return out


def sensitivity_maps(store: Store, variant_id: int | None = None) -> list[SensitivityMap]:
    """Every stored map (of one variant, when given), newest first, with their cells."""
    query = select(s.SensitivityMap).order_by(s.SensitivityMap.id.desc())
    if variant_id is not None:
        query = query.where(s.SensitivityMap.variant_id == variant_id)
    with store.read() as session:
        rows = list(session.scalars(query))
        cells = _cells(session, [r.id for r in rows]) if rows else {}
        return [_map(r, cells[r.id]) for r in rows]


def sensitivity_map(store: Store, map_id: int) -> SensitivityMap:
    """One map with its cells; StoreError naming the id when there is none."""
    with store.read() as session:
        row = session.get(s.SensitivityMap, map_id)
        if row is None:
            raise StoreError(f"No sensitivity map {map_id} in {store.path}; 'workbench-cli sensitivity --list' lists them")
        return _map(row, _cells(session, [map_id])[map_id])


# --- tables and exports -------------------------------------------------------------------------
SENSITIVITY_COLUMNS = ["map", "variant", "layer", "transform", "metric_name", "base_metric", "metric", "delta_points",
                       "ci_low_points", "ci_high_points", "examples", "seed"]


def sensitivity_table(m: SensitivityMap) -> Table:
    """One row per cell (long form), the change in points (x100 for 0-1 metrics)."""
    p = m.points

    def pts(v: float | None) -> float | None:
        return None if v is None else v * p

    rows = [{"map": m.id, "variant": m.variant_id, "layer": c.layer, "transform": c.transform,
             "metric_name": m.metric, "base_metric": m.base_metric, "metric": c.metric, "delta_points": pts(c.delta),
             "ci_low_points": pts(c.ci_low), "ci_high_points": pts(c.ci_high), "examples": c.examples, "seed": c.seed}
            for c in sorted(m.cells, key=lambda c: (c.position, m.transforms.index(c.transform)
                                                    if c.transform in m.transforms else 0))]
    return Table(columns=list(SENSITIVITY_COLUMNS), rows=rows,
                 units={"delta_points": "points", "ci_low_points": "points", "ci_high_points": "points"})


def interval_text(m: SensitivityMap, c: SensitivityCell | None) -> str:
    """'-1.2 [-2.0, -0.4]' in points; '' for a cell not measured."""
    if c is None or c.delta is None:
        return ""
    p = m.points
    text = f"{c.delta * p:+.1f}"
    if c.ci_low is not None and c.ci_high is not None:
        text += f" [{c.ci_low * p:+.1f}, {c.ci_high * p:+.1f}]"
    return text


def sensitivity_grid(m: SensitivityMap) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of the layers x transforms table a person reads: each cell the change in
    points with its paired 95 % interval."""
    columns = ["part", *m.transforms]
    rows = [[layer, *(interval_text(m, m.cell(t, layer)) for t in m.transforms)] for layer in m.layers]
    return columns, rows


EXPORT_FORMATS = ("csv", "markdown", "json")


def export_sensitivity(m: SensitivityMap, fmt: str) -> str:
    """CSV and JSON: one row per cell (JSON with the map's settings); Markdown: the layers x
    transforms grid with intervals, under a line saying what was measured."""
    if fmt == "csv":
        return export_table(sensitivity_table(m), "csv")
    if fmt == "json":
        table = sensitivity_table(m)
        meta = {k: v for k, v in m.to_dict().items() if k != "cells"}
        meta["body"] = {k: v for k, v in m.body.items() if k not in ("pid", "pid_start")}
        return json.dumps({"map": meta, "columns": table.columns, "units": table.units, "rows": table.rows},
                          indent=2) + "\n"
    if fmt == "markdown":
        columns, rows = sensitivity_grid(m)
        lines = [describe(m), "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    raise StoreError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}")


def describe(m: SensitivityMap) -> str:
    """One line: what the map measured, how, and its state."""
    base = "" if m.base_metric is None else f" (untouched: {m.base_metric * m.points:.1f})"
    took = "" if m.seconds is None else f", {m.seconds:.0f} s"
    return (f"Sensitivity map {m.id} of variant {m.variant_id}: change of {m.metric}{base} in points when each "
            f"transform is applied to one {m.grouping} alone; {m.examples} dev examples (seed {m.seed}); 95 % paired "
            f"bootstrap intervals; {m.status}{took}")
