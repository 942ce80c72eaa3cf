"""Where two variants disagree: the dev examples on which their stored predictions differ, with the
text, the gold label, both predictions and their confidences, and a confusion matrix per variant.

Nothing is re-run: both variants' per-example predictions are read from the database (the runner
stores them), so they must have been evaluated on the same rows of the same data. The texts come
from the task's dev split. Classification: the labels differ. Regression: the values differ by more
than ``tolerance`` (default 5 % of the gold range). QA: the normalized answers differ; the
"confusion matrix" is answered / no answer against whether the question has one.

``python -m core.analysis.disagreements --db DB A B`` prints the report as JSON: the window runs it
in a subprocess because reading the dev texts needs the datasets library, which the GUI process
never imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import WorkbenchError
from core.store import Store, Table, export_table, variant_predictions

NO_ANSWER = "(no answer)"
FILTERS = ("all", "a-right", "b-right", "both-wrong")


@dataclass(frozen=True)
class Disagreement:
    index: int  # row of the dev split
    text: str
    gold: str
    a: str
    b: str
    a_confidence: float | None
    b_confidence: float | None
    a_correct: bool | None  # None for regression
    b_correct: bool | None

    @property
    def outcome(self) -> str:
        """'A right', 'B right', 'both wrong' (classification and QA), '' for regression."""
        if self.a_correct is None or self.b_correct is None:
            return ""
        if self.a_correct and not self.b_correct:
            return "A right"
        if self.b_correct and not self.a_correct:
            return "B right"
        return "both wrong" if not self.a_correct else "both right"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}


@dataclass
class DisagreementReport:
    a: int
    b: int
    a_label: str
    b_label: str
    task: str
    head: str
    metric: str | None
    a_metric: float | None
    b_metric: float | None
    examples: int  # evaluated by both
    labels: list[str]  # confusion matrix axes (gold rows, predicted columns)
    confusion_a: list[list[int]]
    confusion_b: list[list[int]]
    rows: list[Disagreement] = field(default_factory=list)
    tolerance: float | None = None  # regression only
    confidences: bool = True  # False: one of the variants was stored before confidences existed
    # B's primary metric minus A's on these examples, with its paired 95 % bootstrap interval: [value, low, high]
    difference: list[float] | None = None

    def filtered(self, which: str) -> list[Disagreement]:
        if which not in FILTERS:
            raise WorkbenchError(f"unknown filter '{which}'; use one of {', '.join(FILTERS)}")
        wanted = {"a-right": "A right", "b-right": "B right", "both-wrong": "both wrong"}.get(which)
        return [r for r in self.rows if wanted is None or r.outcome == wanted]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [r.to_dict() for r in self.rows]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DisagreementReport:
        rows = [Disagreement(**{k: v for k, v in r.items() if k != "outcome"}) for r in data.get("rows", [])]
        return cls(**{**data, "rows": rows})


def _data_hash(store: Store, variant_id: int) -> str | None:
    from sqlalchemy import select

    from core.store import schema as s

    with store.read() as session:
        return session.execute(
            select(s.Dataset.content_hash).join(s.Run, s.Run.dataset_id == s.Dataset.id)
            .join(s.Variant, s.Variant.run_id == s.Run.id).where(s.Variant.id == variant_id)).scalar()


def _label(task: Any, value: Any) -> str:
    if task.head == "regression":
        return f"{float(value):.3f}"
    if task.head == "qa":
        text = value.get("text", "") if isinstance(value, dict) else str(value)
        return text or NO_ANSWER
    names = task.label_names
    return str(names[int(value)]) if names and 0 <= int(value) < len(names) else str(value)


def compare_variants(store: Store, a: int, b: int, *, tolerance: float | None = None) -> DisagreementReport:
    """The disagreements of variants ``a`` and ``b`` (WorkbenchError naming what prevents it)."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    from core.analysis.source import variant_source
    from core.measure.intervals import paired_delta_interval
    from core.store.rows import flag_title

    if a == b:
        raise WorkbenchError("give two different variants")
    source_a, source_b = variant_source(store, a), variant_source(store, b)
    task = source_a.task
    if source_b.task.id != task.id:
        raise WorkbenchError(f"variant {a} is on {task.id} and variant {b} on {source_b.task.id}: "
                             "disagreements need the same task")
    if _data_hash(store, a) != _data_hash(store, b):
        raise WorkbenchError(f"variants {a} and {b} were evaluated on different versions of the {task.id} data")
    stored = {}
    for vid in (a, b):
        preds = variant_predictions(store, vid)
        if preds is None:
            raise WorkbenchError(f"variant {vid} has no stored per-example predictions (it was measured by an older "
                                 "workbench); run its recipe again to store them")
        stored[vid] = preds
    if stored[a]["indices"] != stored[b]["indices"]:
        raise WorkbenchError(f"variants {a} and {b} were evaluated on different dev examples "
                             f"({len(stored[a]['indices'])} and {len(stored[b]['indices'])} rows, or another sample); "
                             "compare variants measured with the same measurement settings and seed")
    indices = stored[a]["indices"]
    dev = task.load("dev").select(indices)
    preds_a, preds_b = stored[a]["predictions"], stored[b]["predictions"]
    conf_a = stored[a].get("confidences") or [None] * len(indices)
    conf_b = stored[b].get("confidences") or [None] * len(indices)
    if task.head == "qa":
        from core.tasks.squad import gold_texts, normalize_answer

        gold = [gold_texts(ans) for ans in dev["answers"]]
        texts = list(dev["question"])

        def answer(p: Any) -> str:
            return normalize_answer(p.get("text", "") if isinstance(p, dict) else str(p))

        differs = [answer(x) != answer(y) for x, y in zip(preds_a, preds_b, strict=True)]
        correct_a = [answer(p) in {normalize_answer(g) for g in gs} for p, gs in zip(preds_a, gold, strict=True)]
        correct_b = [answer(p) in {normalize_answer(g) for g in gs} for p, gs in zip(preds_b, gold, strict=True)]
        gold_text = [" | ".join(g for g in gs if g) or NO_ANSWER for gs in gold]
        labels = ["has answer", "no answer"]
        truth = [0 if any(gs) else 1 for gs in gold]
        cm_a = confusion_matrix(truth, [0 if answer(p) else 1 for p in preds_a], labels=[0, 1])
        cm_b = confusion_matrix(truth, [0 if answer(p) else 1 for p in preds_b], labels=[0, 1])
    else:
        refs = list(dev["label"])
        texts = list(dev["text"])
        if "text_pair" in dev.column_names:
            texts = [f"{t} ‖ {u}" for t, u in zip(texts, dev["text_pair"], strict=True)]
        gold_text = [_label(task, r) for r in refs]
        if task.head == "regression":
            if tolerance is None:
                tolerance = 0.05 * (max(refs) - min(refs)) if refs else 0.0
            differs = [abs(float(x) - float(y)) > tolerance for x, y in zip(preds_a, preds_b, strict=True)]
            correct_a = correct_b = [None] * len(refs)  # type: ignore[list-item]
            labels, cm_a, cm_b = [], np.zeros((0, 0), dtype=int), np.zeros((0, 0), dtype=int)
        else:
            differs = [int(x) != int(y) for x, y in zip(preds_a, preds_b, strict=True)]
            correct_a = [int(p) == int(r) for p, r in zip(preds_a, refs, strict=True)]
            correct_b = [int(p) == int(r) for p, r in zip(preds_b, refs, strict=True)]
            ids = list(range(task.num_labels))
            labels = [_label(task, i) for i in ids]
            cm_a = confusion_matrix(refs, [int(p) for p in preds_a], labels=ids)
            cm_b = confusion_matrix(refs, [int(p) for p in preds_b], labels=ids)
    rows = [Disagreement(index=int(indices[i]), text=texts[i], gold=gold_text[i], a=_label(task, preds_a[i]),
                         b=_label(task, preds_b[i]), a_confidence=conf_a[i], b_confidence=conf_b[i],
                         a_correct=correct_a[i], b_correct=correct_b[i])
            for i in range(len(indices)) if differs[i]]
    va, vb = source_a.variant, source_b.variant
    metric = task.primary_metric
    difference = paired_delta_interval(metric, preds_b, preds_a, list(dev["answers"] if task.head == "qa" else refs),
                                       task.score, task.resample, seed=0)

    def label(v: Any) -> str:
        flags = ", ".join(flag_title(f["code"]) for f in v.flags)
        return f"variant {v.id}: {v.label}" + (f" ({flags})" if flags else "")

    return DisagreementReport(
        a=a, b=b, a_label=label(va), b_label=label(vb), task=task.id, head=task.head, metric=metric,
        a_metric=va.metrics.get(metric), b_metric=vb.metrics.get(metric), examples=len(indices), labels=labels,
        confusion_a=np.asarray(cm_a).tolist(), confusion_b=np.asarray(cm_b).tolist(), rows=rows,
        tolerance=tolerance if task.head == "regression" else None,
        confidences=stored[a].get("confidences") is not None and stored[b].get("confidences") is not None,
        difference=[difference.value, difference.low, difference.high],
    )


COLUMNS = ["index", "outcome", "gold", "a", "a_confidence", "b", "b_confidence", "text"]


def table(report: DisagreementReport, rows: list[Disagreement] | None = None) -> Table:
    rows = report.rows if rows is None else rows
    return Table(columns=list(COLUMNS), rows=[{c: r.to_dict()[c] for c in COLUMNS} for r in rows])


# Which variant is A and which B, on every CSV row: a spreadsheet has no summary above its rows. Last, so
# the columns before keep their places for readers that go by position.
CSV_COLUMNS = [*COLUMNS, "variant_a", "variant_b"]


def csv_table(report: DisagreementReport, rows: list[Disagreement] | None = None) -> Table:
    examples = table(report, rows)
    return Table(columns=list(CSV_COLUMNS),
                 rows=[{**row, "variant_a": report.a, "variant_b": report.b} for row in examples.rows])


def summary(report: DisagreementReport) -> list[str]:
    n = len(report.rows)
    share = f"{100 * n / report.examples:.1f} %" if report.examples else "-"
    lines = [f"A = {report.a_label}", f"B = {report.b_label}",
             f"{n} of {report.examples} {report.task} dev examples get different predictions ({share})"]
    if report.head != "regression":
        counts = {o: sum(r.outcome == o for r in report.rows) for o in ("A right", "B right", "both wrong")}
        lines.append(", ".join(f"{k}: {v}" for k, v in counts.items()))
    else:
        lines.append(f"regression: values differing by more than {report.tolerance:.3g}")
    if report.difference is not None:
        value, low, high = report.difference
        verdict = ("within noise: the interval includes 0, so these examples cannot tell A and B apart"
                   if low <= 0.0 <= high else "a real difference: the interval excludes 0")
        lines.append(f"B - A: {report.metric} {value:+.4f}, paired 95 % interval [{low:+.4f}, {high:+.4f}] "
                     f"over the {report.examples} examples; {verdict}")
    if not report.confidences:
        lines.append("confidences: not stored for one of the variants (measured by an older workbench)")
    return lines


def _matrix_lines(report: DisagreementReport, which: str) -> list[str]:
    matrix = report.confusion_a if which == "A" else report.confusion_b
    head = "| gold \\ predicted | " + " | ".join(report.labels) + " |"
    lines = [f"Confusion matrix of {which} ({report.a_label if which == 'A' else report.b_label})", "", head,
             "|---|" + "---:|" * len(report.labels)]
    lines += ["| " + " | ".join([name, *map(str, row)]) + " |" for name, row in zip(report.labels, matrix, strict=True)]
    return lines


EXPORT_FORMATS = ("text", "csv", "markdown", "json")


def export_disagreements(report: DisagreementReport, fmt: str) -> str:
    """text (what the CLI prints), csv (one row per example, with the ids of A and B), markdown (summary,
    confusion matrices and the examples) or json (everything)."""
    if fmt == "csv":
        return export_table(csv_table(report), "csv")
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2) + "\n"
    if fmt == "markdown":
        # A blank line between blocks: a renderer reads the "|" lines right after a table as more of its rows.
        blocks = ["\n".join(f"- {line}" for line in summary(report))]
        if report.labels:
            blocks += ["\n".join(_matrix_lines(report, "A")), "\n".join(_matrix_lines(report, "B"))]
        blocks += ["Examples where A and B disagree", export_table(table(report), "markdown").rstrip("\n")]
        return "\n\n".join(blocks) + "\n"
    if fmt == "text":
        lines = summary(report)
        for which, matrix in (("A", report.confusion_a), ("B", report.confusion_b)):
            if report.labels:
                width = max(len(x) for x in [*report.labels, "gold \\ predicted"])
                lines += ["", f"confusion matrix of {which} (rows gold, columns predicted)",
                          " " * width + "  " + "  ".join(f"{x:>10}" for x in report.labels)]
                lines += [f"{name:<{width}}  " + "  ".join(f"{v:>10}" for v in row)
                          for name, row in zip(report.labels, matrix, strict=True)]
        lines += ["", "index  outcome     gold        A (conf)            B (conf)            text"]
        for r in report.rows:
            ca = "" if r.a_confidence is None else f" ({r.a_confidence:.2f})"
            cb = "" if r.b_confidence is None else f" ({r.b_confidence:.2f})"
            text = r.text if len(r.text) <= 70 else r.text[:69] + "…"
            lines.append(f"{r.index:<6} {r.outcome:<11} {r.gold[:11]:<11} {(r.a[:12] + ca):<19} {(r.b[:12] + cb):<19} {text}")
        return "\n".join(lines) + "\n"
    raise WorkbenchError(f"Unknown format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}")


def main(argv: list[str] | None = None) -> int:
    """Print the report as JSON (for the window); errors as {"error": ...} with exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m core.analysis.disagreements")
    parser.add_argument("--db", required=True)
    parser.add_argument("a", type=int)
    parser.add_argument("b", type=int)
    args = parser.parse_args(argv)
    from core.store import open_store

    try:
        with open_store(args.db, create=False) as store:
            report = compare_variants(store, args.a, args.b)
    except WorkbenchError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(json.dumps(report.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
