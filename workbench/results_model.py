"""Variant rows as a Qt table model, sortable and filterable through a QSortFilterProxyModel.

Rows are :class:`core.store.ResultRow` dicts: from :func:`workbench.store_client.results`, or
from a running worker's events (the same rows the CLI exports). Columns are read by name; a row
lacking one shows "—", and fields the table does not know are left alone. Task metrics besides
each row's headline metric (F1, Matthews, Spearman, ...) get columns of their own.

Every number carries its uncertainty and settings, as core.store computes them: the metric with its
95 % interval (or mean ± sd over seeds), the change against the parent greyed and marked "≈" when
its paired interval includes 0, flags as badges with their reasons, and the measurement settings
(dev examples, latency batch × sequence, threads, repeats, machine load) beside the numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from core.store.pareto import UNTRUSTED
from core.store.rows import (
    DID_NOT_LEARN,
    NOT_SMALLER,
    OVER_BUDGET,
    STILL_IMPROVING,
    UNTRAINED_HEAD,
    WITHIN_NOISE,
    flag_title,
)

# Badge colours by what a flag means: the numbers are not results (red), a difference is not one
# (grey), the step did not pay off (orange), more training may pay (blue).
FLAG_COLORS = {UNTRAINED_HEAD: "#c0392b", DID_NOT_LEARN: "#c0392b", WITHIN_NOISE: "#7f8790", NOT_SMALLER: "#d9822b",
               OVER_BUDGET: "#c0392b", STILL_IMPROVING: "#2e6da4"}
NOISE_COLOR = "#8a8f98"


@dataclass(frozen=True)
class Column:
    key: str  # a ResultRow field, or "task_metrics.<name>"
    title: str
    fmt: str = ""  # format spec for numbers
    tip: str = ""

    def value(self, row: dict[str, Any]) -> Any:
        if self.key.startswith("task_metrics."):
            return (row.get("task_metrics") or {}).get(self.key.split(".", 1)[1])
        if self.key.startswith("backend_latency."):
            return (self.interval(row) or [None])[0]
        return row.get(self.key)

    def interval(self, row: dict[str, Any]) -> list[float | None] | None:
        """[p50, 95 % low, 95 % high] of a per-backend latency column; None for other columns."""
        if not self.key.startswith("backend_latency."):
            return None
        return (row.get("backend_latency") or {}).get(self.key.split(".", 1)[1])


COLUMNS: tuple[Column, ...] = (
    Column("run", "Run", "d", "The run that produced the variant"),
    Column("variant", "ID", "d", "Variant id: the charts' ticks, 'workbench-cli compare' and the folder names use it"),
    Column("label", "Variant", tip="The step after which this variant was measured (★ best within the budget, "
                                   "⚑ a warning, ↺ reused from the cache)"),
    Column("metric", "Metric [95 % CI]", ".4f", "Task metric (primary) on the evaluation split, with its 95 % "
                                                "bootstrap interval over the dev examples (mean ± sd over seeds "
                                                "when a run used several)"),
    Column("delta_vs_parent", "Δ parent", "+.4f", "Metric change against the parent variant on the same examples; "
                                                  "'≈' and grey when its paired 95 % interval includes 0 (within "
                                                  "noise: not a difference these dev examples can tell)"),
    Column("flags", "Flags", tip="Warnings about the numbers: untrained head, did not learn, within noise, "
                                 "not smaller on disk, still improving when training's budget ran out "
                                 "(hover for the reasons)"),
    Column("pct_baseline", "% of reference", ".1f", "Metric as a percentage of the run's reference variant: its "
                                                "baseline, or its first trained variant when the baseline's head is "
                                                "untrained (then the baseline itself reads below 100)"),
    Column("size_mb", "MB on disk", ".2f", "Bytes of the reloadable artifact folder, in MB (10^6)"),
    Column("pct_smaller", "% smaller", ".1f", "Size saved against the run's baseline"),
    Column("latency_p50_ms", "p50 ms", ".2f", "Median latency of one batch"),
    Column("speedup", "Speed-up", ".2f", "Reference p50 / this p50, measured in the same run; '≈' and grey when "
                                         "the bounds from both p50 intervals include 1 (within the timing noise)"),
    Column("settings", "Measured with", tip="Dev examples the metric used · latency batch × sequence · threads · "
                                            "timed repeats (hover for the machine's load)"),
    Column("latency_p90_ms", "p90 ms", ".2f", "90th-percentile latency of one batch"),
    Column("params", "Params", ",d", "Parameters, shared tensors counted once"),
    Column("nonzero_params", "Non-zeros", ",d", "Parameters that are not zero"),
)


def _points(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "—" if value is None else f"{value:.4f}"


def metric_text(row: dict[str, Any]) -> str:
    """'0.860 [0.826, 0.894]', or '0.860 ± 0.012 (3 seeds)', or '0.8600' without an interval (the
    tooltip has four decimals; the interval's width says how many of them mean anything)."""
    value = row.get("metric")
    if value is None:
        return "—"
    if (row.get("seeds") or 1) > 1:
        sd = row.get("metric_sd")
        return f"{value:.3f} ± {sd:.3f} ({row['seeds']} seeds)" if sd is not None else f"{value:.3f} ({row['seeds']} seeds)"
    low, high = row.get("metric_ci_low"), row.get("metric_ci_high")
    if low is not None and high is not None:
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"{value:.4f}"


def metric_tip(row: dict[str, Any]) -> str:
    name, task = row.get("metric_name") or "metric", row.get("task") or ""
    lines = [f"{name} on {task}: {_points(row, 'metric')}"]
    if (row.get("seeds") or 1) > 1:
        sd = row.get("metric_sd")
        lines.append(f"mean over {row['seeds']} seeds" + (f", standard deviation {sd:.4f}" if sd is not None else ""))
    elif row.get("metric_ci_low") is not None:
        lines.append(f"95 % interval {_points(row, 'metric_ci_low')} – {_points(row, 'metric_ci_high')} "
                     f"(bootstrap over {row.get('eval_examples') or 'the'} dev examples)")
    else:
        lines.append("no interval was measured for this variant")
    return "\n".join(lines)


def within_noise(row: dict[str, Any]) -> bool:
    """Whether the change against the parent is not one: its paired 95 % interval includes 0."""
    if any(f.get("code") == WITHIN_NOISE for f in row.get("flags") or ()):
        return True
    low, high = row.get("delta_ci_low"), row.get("delta_ci_high")
    return low is not None and high is not None and low <= 0.0 <= high


def speedup_within_noise(row: dict[str, Any]) -> bool:
    """Whether the speed-up is not one: its bounds from the two p50 intervals include 1."""
    low, high = row.get("speedup_ci_low"), row.get("speedup_ci_high")
    return low is not None and high is not None and low <= 1.0 <= high


def noise_marked(value: float | None, in_noise: bool, fmt: str) -> str:
    """A compared number as shown: '—' when missing, '≈ ' before it when the difference is inside the noise."""
    return "—" if value is None else ("≈ " if in_noise else "") + format(value, fmt)


def speedup_text(row: dict[str, Any]) -> str:
    return noise_marked(row.get("speedup"), speedup_within_noise(row), ".2f")


def variant_name(row: dict[str, Any]) -> str:
    """A short name for ticks: 'baseline', 'prune 0.1' for a swept pruning step (the step's
    family and its swept values), else the step id's last part ('dynamic int8')."""
    if row.get("step") == 0:
        return "baseline"
    parts = str(row.get("step_id") or row.get("label") or "").split(".")
    values = " ".join(str(v) for v in (row.get("swept") or {}).values())
    name = parts[0] if values or len(parts) == 1 else parts[-1]
    return f"{name.replace('_', ' ')} {values}".strip()


def branch_points(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """variant -> the ancestor that tells it apart, for each variant whose label another variant of its
    run shares (an int8 step after each of two pruning amounts): its nearest ancestor with swept
    values, else its parent."""
    by_id = {r.get("variant"): r for r in rows}
    count = Counter((r.get("run"), r.get("label")) for r in rows)
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        if count[(r.get("run"), r.get("label"))] < 2 or (parent := by_id.get(r.get("parent"))) is None:
            continue
        ancestor = parent
        while not ancestor.get("swept") and (up := by_id.get(ancestor.get("parent"))) is not None:
            ancestor = up
        out[r["variant"]] = ancestor if ancestor.get("swept") else parent
    return out


def delta_text(row: dict[str, Any]) -> str:
    return noise_marked(row.get("delta_vs_parent"), within_noise(row), "+.4f")


def _points_per_unit(task_id: Any) -> float | None:
    """The task's points per metric unit, as the flags speak (None for a task this window does not know)."""
    from core.errors import DataError
    from core.tasks import get_task

    try:
        return get_task(str(task_id)).points
    except DataError:
        return None


def delta_tip(row: dict[str, Any]) -> str:
    delta = row.get("delta_vs_parent")
    if delta is None:
        return "No parent to compare with (the baseline), or no paired measurement"
    parent = f" #{row['parent']}" if row.get("parent") is not None else ""
    points = _points_per_unit(row.get("task"))
    text = f"Change against the parent{parent}: {delta:+.4f}"
    if points is not None:
        text += f" ({delta * points:+.1f} points)"
    low, high = row.get("delta_ci_low"), row.get("delta_ci_high")
    if low is not None and high is not None:
        text += f"\npaired 95 % interval [{low:+.4f}, {high:+.4f}]"
        if points is not None:
            text += f", [{low * points:+.1f}, {high * points:+.1f}] points"
        text += ("\n≈ within noise: the interval includes 0, so these dev examples cannot tell the two apart"
                 if within_noise(row) else "\na real difference: the interval excludes 0")
    return text


def flags_text(row: dict[str, Any]) -> str:
    return " · ".join(flag_title(f.get("code", "")) for f in row.get("flags") or ())


def flags_tip(row: dict[str, Any]) -> str:
    lines = []
    for flag in row.get("flags") or ():
        title = flag_title(flag.get("code", ""))
        lines.append(f"⚑ {title[:1].upper()}{title[1:]}: {flag.get('text', '')}")
    return "\n".join(lines) or "No warning"


def latency_settings(row: dict[str, Any]) -> tuple[Any, ...] | None:
    """(batch, sequence, threads, repeats) a variant was timed with; None when it was not timed."""
    if row.get("latency_p50_ms") is None:
        return None
    return tuple(row.get(k) for k in ("latency_batch", "latency_seq_len", "latency_threads", "latency_repeats"))


def describe_latency_settings(settings: tuple[Any, ...]) -> str:
    batch, seq, threads, repeats = ("?" if v is None else v for v in settings)
    return f"batch {batch} × sequence {seq}, {threads} thread{'s' if threads != 1 else ''}, {repeats} repeats"


def settings_text(row: dict[str, Any]) -> str:
    parts = []
    if row.get("eval_examples") is not None:
        parts.append(f"{row['eval_examples']:,} ex")
    if row.get("latency_batch") is not None:
        parts.append(f"{row['latency_batch']}×{row.get('latency_seq_len') or '?'}")
    if row.get("latency_threads") is not None:
        parts.append(f"{row['latency_threads']} thr")
    if row.get("latency_repeats") is not None:
        parts.append(f"{row['latency_repeats']} rep")
    return " · ".join(parts) or "—"


def settings_tip(row: dict[str, Any]) -> str:
    lines = []
    if row.get("eval_examples") is not None:
        lines.append(f"Metric measured on {row['eval_examples']:,} dev examples")
    settings = latency_settings(row)
    if settings is not None:
        lines.append("Latency timed with " + describe_latency_settings(settings))
    if row.get("load_avg_1m") is not None:
        lines.append(f"Machine load while timing: {row['load_avg_1m']:.2f} (1-minute average)")
    return "\n".join(lines) or "No measurement settings were recorded for this variant"


def latency_tip(row: dict[str, Any]) -> str:
    p50 = row.get("latency_p50_ms")
    if p50 is None:
        return "Not timed"
    text = f"Median latency of one batch: {p50:.2f} ms"
    low, high = row.get("latency_p50_ci_low"), row.get("latency_p50_ci_high")
    if low is not None and high is not None:
        text += f"\n95 % interval {low:.2f} – {high:.2f} ms over the timed repeats"
    slow, shigh = row.get("speedup_ci_low"), row.get("speedup_ci_high")
    if row.get("speedup") is not None and slow is not None and shigh is not None:
        text += (f"\nSpeed-up {row['speedup']:.2f}×, between {slow:.2f}× and {shigh:.2f}× by the two p50 intervals"
                 + (": within the timing noise, not a speed-up these repeats can tell" if speedup_within_noise(row) else ""))
    return text + "\n" + settings_tip(row)


def mixed_settings(rows: list[dict[str, Any]]) -> str:
    """A warning when the rows compared were measured under different settings (latency settings,
    or different numbers of dev examples for one task); '' when they compare like with like."""
    warnings = []
    timed: dict[tuple[Any, ...], int] = {}
    for r in rows:
        settings = latency_settings(r)
        if settings is not None:
            timed[settings] = timed.get(settings, 0) + 1
    if len(timed) > 1:
        kinds = "; ".join(f"{describe_latency_settings(k)} ({n} variant{'s' if n != 1 else ''})"
                          for k, n in sorted(timed.items(), key=lambda kv: -kv[1]))
        warnings.append(f"⚠ Latencies in view were timed with different settings: {kinds}. Compare latencies "
                        "and speed-ups within one setting (filter by run)")
    examples: dict[str, set[Any]] = {}
    for r in rows:
        if r.get("metric") is not None and r.get("eval_examples") is not None:
            examples.setdefault(str(r.get("task")), set()).add(r["eval_examples"])
    for task, counts in examples.items():
        if len(counts) > 1:
            warnings.append(f"⚠ {task} metrics in view were measured on different numbers of dev examples "
                            f"({', '.join(f'{c:,}' for c in sorted(counts))})")
    return "\n".join(warnings)


def display_text(col: Column, row: dict[str, Any]) -> str:
    """What a cell shows (the table and the comparison pane alike)."""
    if col.key == "metric":
        return metric_text(row)
    if col.key == "delta_vs_parent":
        return delta_text(row)
    if col.key == "flags":
        return flags_text(row)
    if col.key == "settings":
        return settings_text(row)
    if col.key == "speedup":
        return speedup_text(row)
    value = col.value(row)
    if value is None:
        return "—"
    try:
        return format(value, col.fmt) if col.fmt else str(value)
    except (TypeError, ValueError):
        return str(value)


class FlagsDelegate(QStyledItemDelegate):
    """Paints a row's flags as coloured badges (the cell's text, for copying and exports, is the
    same titles joined by ' · ')."""

    PAD, GAP = 5, 4

    def _flags(self, index: QModelIndex | QPersistentModelIndex) -> list[dict[str, str]]:
        flags = index.data(FLAGS_ROLE)
        return list(flags) if flags else []

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        flags = self._flags(index)
        if not flags:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = QFontMetrics(option.font)
        x = float(option.rect.left() + 3)
        height = float(min(option.rect.height() - 4, metrics.height() + 2))
        y = option.rect.top() + (option.rect.height() - height) / 2
        for flag in flags:
            title = flag_title(flag.get("code", ""))
            width = float(metrics.horizontalAdvance(title) + 2 * self.PAD)
            if x + width > option.rect.right():
                painter.setPen(option.palette.color(QPalette.ColorRole.Text))
                painter.drawText(QRectF(x, y, option.rect.right() - x, height), Qt.AlignmentFlag.AlignVCenter, "…")
                break
            color = QColor(FLAG_COLORS.get(flag.get("code", ""), "#7f8790"))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            painter.drawRoundedRect(QRectF(x, y, width, height), height / 2, height / 2)
            painter.setPen(QColor("white"))
            painter.drawText(QRectF(x, y, width, height), Qt.AlignmentFlag.AlignCenter, title)
            x += width + self.GAP
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        flags = self._flags(index)
        base = super().sizeHint(option, index)
        if not flags:
            return base
        metrics = QFontMetrics(option.font)
        width = sum(metrics.horizontalAdvance(flag_title(f.get("code", ""))) + 2 * self.PAD + self.GAP for f in flags)
        return QSize(width + 6, max(base.height(), metrics.height() + 6))


FLAGS_ROLE = Qt.ItemDataRole.UserRole + 1  # a row's flags list, for the badge delegate


def extra_metric_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """A column per task metric that is not some row's headline metric, in first-seen order."""
    headline = {r.get("metric_name") for r in rows}
    names: list[str] = []
    for r in rows:
        for name in r.get("task_metrics") or {}:
            if name not in headline and name not in names:
                names.append(name)
    return [Column(f"task_metrics.{n}", n.replace("_", " "), ".4f", f"Task metric '{n}'") for n in names]


OVER_BUDGET_BACKGROUND = "#f6d5d1"  # light red, with dark text in both themes


def over_budget(row: dict[str, Any]) -> bool:
    """The recipe's accuracy budget flagged this variant: nothing after it ran."""
    return any(f.get("code") == OVER_BUDGET for f in row.get("flags") or ())


def backend_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """With measure.backends: a p50 column per backend any row was timed on, then the fastest backend."""
    backends = list(dict.fromkeys(b for r in rows for b in (r.get("backend_latency") or {})))
    if not backends:
        return []
    return [*(Column(f"backend_latency.{b}", f"p50 ms {b}", ".2f",
                     f"Median latency of one batch on {b}, timed side by side with the other backends "
                     "(interleaved rounds, same threads and inputs); the tip shows its 95 % interval")
              for b in backends),
            Column("fastest_backend", "Fastest backend", tip="The backend with the lowest p50 for this variant")]


def columns_for(rows: list[dict[str, Any]]) -> list[Column]:
    return [*COLUMNS, *backend_columns(rows), *extra_metric_columns(rows)]


class ResultsModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[Column] = list(COLUMNS)
        self.best_ids: set[int] = set()
        self.branches: dict[int, dict[str, Any]] = {}  # variant -> the ancestor that tells it apart

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)  # its own list: the view appends live rows to its list separately
        self.columns = columns_for(rows)
        self.branches = branch_points(self.rows)
        self.endResetModel()

    def add_row(self, row: dict[str, Any]) -> None:
        """One variant a running worker has just committed."""
        columns = columns_for([*self.rows, row])
        if columns != self.columns:
            self.set_rows([*self.rows, row])
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(row)
        self.endInsertRows()
        branches = branch_points(self.rows)
        changed = branches.keys() != self.branches.keys()  # an earlier row's name may need telling apart now
        self.branches = branches
        if changed:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.columns) - 1))

    def set_best(self, ids: set[int]) -> None:
        if ids != self.best_ids:
            self.best_ids = ids
            if self.rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.columns) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.columns):
            if role == Qt.ItemDataRole.DisplayRole:
                return self.columns[section].title
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.columns[section].tip or None
        return None

    def _label(self, row: dict[str, Any], value: Any) -> str:
        marks = "".join(m for m, on in (("★ ", row.get("variant") in self.best_ids),) if on)
        tail = "".join(m for m, on in ((" ⚑", bool(row.get("flags"))), (" over budget", over_budget(row)),
                                       (" ↺", bool(row.get("cached")))) if on)
        branch = self.branches.get(row.get("variant"))
        after = f"  (after {variant_name(branch)})" if branch is not None else ""
        return f"{marks}{value}{after}{tail}"

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = self.columns[index.column()]
        value = col.value(row)
        if role == Qt.ItemDataRole.DisplayRole:
            if col.key == "label" and value is not None:
                return self._label(row, value)
            return display_text(col, row)
        if role == FLAGS_ROLE:
            return row.get("flags") or [] if col.key == "flags" else None
        if role == Qt.ItemDataRole.UserRole:  # sort key
            if col.key == "flags":
                return len(row.get("flags") or ())
            if col.key == "settings":
                return settings_text(row)
            return value if value is not None else float("-inf")
        if role == Qt.ItemDataRole.ToolTipRole:
            if col.key == "label":
                notes = [str(row.get("label"))]
                if row.get("variant") in self.best_ids:
                    notes.append("★ Best within the budget: the smallest variant keeping the chosen share "
                                 "of its baseline's metric")
                if row.get("flags"):
                    notes.append(flags_tip(row))
                if row.get("cached"):
                    notes.append("↺ Reused from the cache: the same numbers as the variant it copies")
                return "\n".join(notes)
            if col.key == "metric":
                return metric_tip(row)
            if col.key == "delta_vs_parent":
                return delta_tip(row)
            if col.key == "flags":
                return flags_tip(row)
            if col.key == "settings":
                return settings_tip(row)
            if col.key in ("latency_p50_ms", "speedup"):
                return latency_tip(row)
            interval = col.interval(row)
            if interval and interval[1] is not None and interval[2] is not None:
                return f"p50 {interval[0]:.2f} ms, 95 % interval [{interval[1]:.2f}, {interval[2]:.2f}] ms"
            if col.tip:
                return col.tip
        if role == Qt.ItemDataRole.TextAlignmentRole and (col.fmt or col.key == "metric"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole and over_budget(row):
            return QColor(OVER_BUDGET_BACKGROUND)
        if role == Qt.ItemDataRole.ForegroundRole and over_budget(row):
            return QColor("#5a1a12")  # dark on the light red, whatever the theme
        if role == Qt.ItemDataRole.FontRole:
            noise = (col.key == "delta_vs_parent" and within_noise(row)) or (col.key == "speedup" and speedup_within_noise(row))
            if noise or row.get("step") == 0 or row.get("variant") in self.best_ids:
                font = QFont()
                font.setBold(not noise)
                font.setItalic(noise)
                return font
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.get("cached") or (col.key == "delta_vs_parent" and within_noise(row)) or (
                    col.key == "speedup" and speedup_within_noise(row)):
                return QColor(NOISE_COLOR)
            if col.key in ("metric", "pct_baseline") and UNTRUSTED & {f.get("code") for f in row.get("flags") or ()}:
                return QColor(NOISE_COLOR)  # not a result: a head at chance, or a model that did not learn
        return None


class ResultsFilter(QSortFilterProxyModel):
    """Sorts on the raw numbers; filters by run, task, text (label, step id, model, task, run) and
    hides cached copies in the all-runs view (a rerun from the cache repeats another run's rows)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.run_filter: int | None = None
        self.task_filter: str | None = None
        self.show_cached = False

    def _changed(self, **values: Any) -> None:
        self.beginFilterChange()
        for name, value in values.items():
            setattr(self, name, value)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_run(self, run_id: int | None) -> None:
        self._changed(run_filter=run_id)

    def set_task(self, task: str | None) -> None:
        self._changed(task_filter=task)

    def set_show_cached(self, show: bool) -> None:
        self._changed(show_cached=show)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        assert isinstance(model, ResultsModel)
        row = model.rows[source_row]
        if self.run_filter is not None and row.get("run") != self.run_filter:
            return False
        if self.task_filter is not None and row.get("task") != self.task_filter:
            return False
        if self.run_filter is None and row.get("cached") and not self.show_cached:
            return False
        pattern = self.filterRegularExpression()
        if not pattern.pattern():
            return True
        hay = " ".join(str(row.get(k) or "") for k in ("label", "step_id", "model", "task", "run"))
        return pattern.match(hay).hasMatch()

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:
        a, b = left.data(Qt.ItemDataRole.UserRole), right.data(Qt.ItemDataRole.UserRole)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
