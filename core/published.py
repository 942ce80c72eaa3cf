"""The two published systems' reported results: data with sources, never measured here.

Anything drawn or printed from this module must say "published (not measured here)". Sources:
/work/shared/DESIGN.md (the project's design), issue 4 (the TinyBERT study) and issue 5 (the SQuAD
system), which quote the papers:

- "Further compression of TinyBERT" study: BERT-base teacher 437.98 MB, TinyBERT student 58.39 MB,
  TinyBERT int8 43.74 MB (about 10-15 % faster); pruning 10-30 % "costs nothing and sometimes helps"
  and the pruned model was stored densely (still 58.39 MB). Per-task scores are not among the
  recorded figures, so the int8 and distillation points have no metric change here.
- "Compressed SQuAD 2.0 model with BERT" (BERT-base start, CS224N dev split): per-tensor linear
  n-bit quantization 16 and 10 bits free, 8 bits F1 -0.8, 6 bits F1 -16, 4 bits a collapse;
  12 -> 6 -> 3 layers at F1 76.8 / 72.7; vocabulary 25 % at F1 70.2; final models 21-58 MB.

For the chart (the metric-vs-size overlay) each point is a *size ratio against its system's start*
and a *metric change in points* against that start; :func:`overlay_points` places them relative to
one of the user's variants. A figure the papers do not give is None, and such a point is not drawn.
Torch-free and dependency-free: the window imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABEL = "published (not measured here)"

TINYBERT_PAPER = 'the "further compression of TinyBERT" study (BERT-base teacher, TinyBERT student)'
SQUAD_PAPER = '"Compressed SQuAD 2.0 model with BERT" (BERT-base start, CS224N dev split)'
# The tasks each system reported on: its points are drawn only on a chart of one of them.
SQUAD_TASKS = ("squad_v2",)
TINYBERT_TASKS = ("sst2", "cola", "rte", "stsb", "qnli")

# The TinyBERT study (issue 4). Sizes in decimal MB, as the study reports them.
PUBLISHED_TINYBERT: dict[str, Any] = {
    "bert_base_mb": 437.98,
    "tinybert_mb": 58.39,
    "tinybert_int8_mb": 43.74,
    "pruned_mb": 58.39,  # the pruned model was stored densely: no smaller on disk
    "int8_faster_pct": (10, 15),  # "about 10-15 % faster" inference from int8
    "pruning": "10-30 % pruning costs nothing and sometimes helps",
}
PUBLISHED_TINYBERT["int8_vs_fp32_artifact_ratio"] = PUBLISHED_TINYBERT["tinybert_int8_mb"] / PUBLISHED_TINYBERT["tinybert_mb"]
PUBLISHED_TINYBERT["student_vs_teacher_artifact_ratio"] = PUBLISHED_TINYBERT["tinybert_mb"] / PUBLISHED_TINYBERT["bert_base_mb"]

# The compressed SQuAD 2.0 system (issue 5).
PUBLISHED_SQUAD: dict[str, Any] = {
    "layers": "12 -> 6 -> 3 layers at F1 76.8 / 72.7",
    "f1_6_of_12_layers": 76.8,
    "f1_3_of_12_layers": 72.7,
    "vocab_25_f1": 70.2,
    "bits": {16: "free (no loss)", 10: "free (no loss)", 8: "F1 -0.8 vs start", 6: "F1 -16 vs start", 4: "collapse"},
    "bits_f1_change": {16: 0.0, 10: 0.0, 8: -0.8, 6: -16.0, 4: None},  # None: "collapse", no number given
    "sketch": "with fine-tuning: no loss",
    "final_mb": (21, 58),
}


@dataclass(frozen=True)
class PublishedPoint:
    """One reported result: its size against the system's start and its metric change in points."""

    system: str
    label: str
    size_ratio: float  # this model's size / the start's
    metric_change: float | None  # points of the paper's metric against the start; None: not reported
    metric: str  # the paper's metric
    start: str  # what both numbers are relative to
    source: str
    tasks: tuple[str, ...]  # the tasks it was reported on: drawn only against a variant of one of them
    note: str = ""

    @property
    def drawable(self) -> bool:
        return self.metric_change is not None


def _squad_bits(bits: int) -> PublishedPoint:
    change = PUBLISHED_SQUAD["bits_f1_change"][bits]
    return PublishedPoint(
        system="Compressed SQuAD 2.0", label=f"{bits}-bit", size_ratio=bits / 32, metric_change=change, metric="F1",
        start="the fine-tuned BERT-base (fp32)", source=SQUAD_PAPER, tasks=SQUAD_TASKS,
        note=f"{PUBLISHED_SQUAD['bits'][bits]}; size ratio {bits}/32: the scheme stores {bits} bits per 32-bit weight "
             "(the paper gives no MB per bit width)")


PUBLISHED_POINTS: tuple[PublishedPoint, ...] = (
    *(_squad_bits(b) for b in (16, 10, 8, 6, 4)),
    PublishedPoint(
        system="TinyBERT, further compressed", label="pruned 10-30 %", size_ratio=PUBLISHED_TINYBERT["pruned_mb"]
        / PUBLISHED_TINYBERT["tinybert_mb"], metric_change=0.0, metric="task metric", start="TinyBERT (58.39 MB)",
        source=TINYBERT_PAPER, tasks=TINYBERT_TASKS, note="pruning 10-30 % costs nothing and sometimes helps; stored densely, so no smaller"),
    PublishedPoint(
        system="TinyBERT, further compressed", label="int8", size_ratio=PUBLISHED_TINYBERT["int8_vs_fp32_artifact_ratio"],
        metric_change=None, metric="task metric", start="TinyBERT (58.39 MB)", source=TINYBERT_PAPER,
        tasks=TINYBERT_TASKS, note="43.74 MB, about 10-15 % faster; its metric change is not among the recorded figures"),
    PublishedPoint(
        system="TinyBERT, further compressed", label="TinyBERT (distilled)",
        size_ratio=PUBLISHED_TINYBERT["student_vs_teacher_artifact_ratio"], metric_change=None, metric="task metric",
        start="BERT-base (437.98 MB)", source=TINYBERT_PAPER, tasks=TINYBERT_TASKS,
        note="58.39 MB; its metric change is not among the recorded figures"),
)


@dataclass(frozen=True)
class OverlayPoint:
    x_mb: float
    y_metric: float
    point: PublishedPoint

    @property
    def tip(self) -> str:
        p = self.point
        return (f"{LABEL}\n{p.system}: {p.label}\n{p.size_ratio:.3f}x the size of {p.start}, "
                f"{p.metric_change:+.1f} {p.metric} points\n{p.note}\nsource: {p.source}")


def overlay_points(reference_mb: float, reference_metric: float, task: str) -> list[OverlayPoint]:
    """The drawable published points reported on ``task``, placed against one of the user's variants
    of it (usually a run's reference): x = its MB x the size ratio, y = its metric + the change (in
    points: SQuAD's F1 is in points already, the GLUE metrics run from 0 to 1)."""
    per_unit = 1.0 if task in SQUAD_TASKS else 100.0
    return [OverlayPoint(reference_mb * p.size_ratio, reference_metric + p.metric_change / per_unit, p)  # type: ignore[operator]
            for p in PUBLISHED_POINTS if p.drawable and task in p.tasks]


def not_drawn() -> list[PublishedPoint]:
    """Reported results without a metric change: listed beside the chart, never placed on it."""
    return [p for p in PUBLISHED_POINTS if not p.drawable]
