"""The disagreement explorer (core.analysis.disagreements): the examples where two stored variants'
predictions differ, their texts and gold labels from the dev split, confusion matrices counted by hand,
refusals for variants that cannot be compared, and `workbench-cli disagreements` in every format."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.analysis.disagreements import (
    Disagreement,
    DisagreementReport,
    compare_variants,
    export_disagreements,
)
from core.cli import main
from core.errors import WorkbenchError
from core.store import open_store
from core.store.record import MetricValue, RunIdentity, add_variant, create_run, finish_run
from core.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


def _run(store, tmp: Path, task: str, variants: list[dict], data_hash: str = "d" * 64) -> list[int]:  # type: ignore[no-untyped-def]
    recipe = {"format": 1, "model": "all-MiniLM-L6-v2", "task": task, "seed": 0, "chain": []}
    ident = RunIdentity(model_ref="packaged:all-MiniLM-L6-v2", model_kind="packaged", model_hash="m" * 64, task=task,
                        data_hash=data_hash, recipe_json=json.dumps(recipe), recipe_name="t", seed=0,
                        primary_metric=get_task(task).primary_metric)
    ctx = create_run(store, ident, tmp / "artifacts")
    ids, parent = [], None
    for i, predictions in enumerate(variants):
        vid = add_variant(store, run_id=ctx.run_id, parent_id=parent, step_index=i, step_id="baseline" if i == 0 else "s",
                          label=f"v{i}", config={}, cache_key=f"{task}{data_hash}{i}",
                          metrics=[MetricValue(get_task(task).primary_metric, 0.5, "", "dev")],
                          artifact_path=tmp / f"a{i}", artifact_bytes=1, seconds=1.0, predictions=predictions)
        ids.append(vid)
        parent = vid
    finish_run(store, ctx.run_id, "finished")
    return ids


INDICES = [0, 3, 5, 8, 13, 21]


@pytest.fixture
def sst2_db(tmp_path: Path) -> tuple[Path, list[int]]:
    store = open_store(tmp_path / "w.sqlite")
    gold = [get_task("sst2").load("dev")[i]["label"] for i in INDICES]
    a = list(gold)  # A right everywhere
    b = [1 - g for g in gold[:3]] + gold[3:]  # B wrong on the first three
    b[5] = 1 - b[5]  # ...and on the last
    ids = _run(store, tmp_path, "sst2", [
        {"indices": INDICES, "predictions": a, "confidences": [0.9, 0.8, 0.7, 0.6, 0.95, 0.55]},
        {"indices": INDICES, "predictions": b, "confidences": [0.6, 0.7, 0.8, 0.9, 0.65, 0.99]},
        {"indices": INDICES, "predictions": b},  # stored before confidences existed
        {"indices": INDICES[:-1], "predictions": b[:-1]},  # another sample
    ])
    store.close()
    return tmp_path / "w.sqlite", ids


def test_rows_are_the_examples_that_differ_with_text_gold_and_confidences(sst2_db: tuple[Path, list[int]]) -> None:
    db, (a, b, *_rest) = sst2_db
    dev = get_task("sst2").load("dev")
    report = compare_variants(open_store(db), a, b)
    assert [r.index for r in report.rows] == [0, 3, 5, 21]
    assert all(r.outcome == "A right" for r in report.rows)
    first = report.rows[0]
    assert first.text == dev[0]["text"] and first.gold == ("positive" if dev[0]["label"] == 1 else "negative")
    assert (first.a_confidence, first.b_confidence) == (0.9, 0.6) and first.a == first.gold != first.b
    assert report.examples == 6 and report.labels == ["negative", "positive"]
    # The confusion matrices, counted by hand: rows gold, columns predicted.
    gold = [dev[i]["label"] for i in INDICES]
    b_preds = [1 - g for g in gold[:3]] + gold[3:5] + [1 - gold[5]]
    hand = [[sum(1 for g, p in zip(gold, b_preds, strict=True) if g == row and p == col) for col in (0, 1)]
            for row in (0, 1)]
    assert report.confusion_b == hand
    assert sum(report.confusion_a[i][i] for i in (0, 1)) == 6  # A is right on every example
    assert len(report.filtered("a-right")) == 4 and report.filtered("b-right") == []
    # B - A on these six examples, paired: scikit-learn's accuracies, and an interval that excludes 0
    # (a resample reaches 0 only by drawing the two agreeing examples six times: p = (2/6)^6 < 2.5 %).
    from sklearn.metrics import accuracy_score

    value, low, high = report.difference
    assert value == pytest.approx(accuracy_score(gold, b_preds) - accuracy_score(gold, gold))
    assert low <= value <= high < 0.0
    assert (f"B - A: accuracy {value:+.4f}, paired 95 % interval [{low:+.4f}, {high:+.4f}] over the 6 examples; "
            "a real difference") in export_disagreements(report, "text")


def test_older_predictions_without_confidences_still_compare(sst2_db: tuple[Path, list[int]]) -> None:
    db, (a, _b, old, _other) = sst2_db
    report = compare_variants(open_store(db), a, old)
    assert len(report.rows) == 4 and report.rows[0].b_confidence is None and not report.confidences
    assert "not stored" in export_disagreements(report, "text")


def test_variants_that_cannot_be_compared_are_refused_naming_why(sst2_db: tuple[Path, list[int]], tmp_path: Path) -> None:
    db, (a, _b, _old, other) = sst2_db
    store = open_store(db)
    with pytest.raises(WorkbenchError, match="different dev examples"):
        compare_variants(store, a, other)
    with pytest.raises(WorkbenchError, match="two different variants"):
        compare_variants(store, a, a)
    (rte,) = _run(store, tmp_path, "rte", [{"indices": [0], "predictions": [0]}])
    with pytest.raises(WorkbenchError, match="same task"):
        compare_variants(store, a, rte)
    (again,) = _run(store, tmp_path, "sst2", [{"indices": INDICES, "predictions": [0] * 6}], data_hash="e" * 64)
    with pytest.raises(WorkbenchError, match="different versions of the sst2 data"):
        compare_variants(store, a, again)
    (bare,) = _run(store, tmp_path, "sst2", [None])
    with pytest.raises(WorkbenchError, match="no stored per-example predictions"):
        compare_variants(store, a, bare)


def hand_report(labels: tuple[str, ...] = ("negative", "positive")) -> DisagreementReport:
    """A report as compare_variants makes one, by hand (no database, no dev split): long labels with flags,
    and B - A within noise, as the newcomer saw it."""
    n, regression = len(labels), not labels
    first, last = ("0.500", "2.000") if regression else (labels[0], labels[-1])
    rows = [Disagreement(index=i, text=f"sentence {i}, long enough to wrap in a narrow column " * 2, gold=first,
                         a=first, b=last, a_confidence=0.9, b_confidence=0.6 if i else None,
                         a_correct=None if regression else True, b_correct=None if regression else False)
            for i in range(4)]
    return DisagreementReport(
        a=3, b=7, a_label="variant 3: fine-tune(epochs=3) → prune(amount=0.5, scope=global) (timed elsewhere)",
        b_label="variant 7: fine-tune(epochs=3) → prune(amount=0.5) → int8 (over budget, few examples)",
        task="stsb" if regression else "sst2", head="regression" if regression else "classification",
        metric="pearson" if regression else "accuracy", a_metric=0.9, b_metric=0.88, examples=872, labels=list(labels),
        confusion_a=[[400 if i == j else 14 for j in range(n)] for i in range(n)],
        confusion_b=[[390 if i == j else 19 for j in range(n)] for i in range(n)],
        rows=rows, tolerance=0.25 if regression else None, difference=[-0.0046, -0.0161, 0.0069])


def _markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text as a renderer splits them (a table runs until a line not starting
    with "|"), each a list of rows of cells; asserts a blank line before and after each."""
    lines = text.split("\n")
    tables: list[list[list[str]]] = []
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        if i == 0 or not lines[i - 1].startswith("|"):
            assert i == 0 or lines[i - 1] == "", f"no blank line before the table at line {i + 1}: {lines[i - 1]!r}"
            tables.append([])
        if i + 1 < len(lines) and not lines[i + 1].startswith("|"):
            assert lines[i + 1] == "", f"no blank line after the table at line {i + 1}: {lines[i + 1]!r}"
        tables[-1].append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])])  # an escaped "\|" stays in its cell
    return tables


@pytest.mark.parametrize("labels", [("negative", "positive"), ("entailment", "neutral", "contradiction"), ()])
def test_markdown_tables_are_apart_so_renderers_do_not_merge_them(labels: tuple[str, ...]) -> None:
    """B's confusion matrix ran straight into the examples table: a renderer drew one broken table."""
    tables = _markdown_tables(export_disagreements(hand_report(labels), "markdown"))
    assert len(tables) == (3 if labels else 1)  # the matrices of A and B, then the examples
    for table in tables:
        assert len({len(row) for row in table}) == 1, table  # every row as wide as its header
    *matrices, examples = tables
    for matrix in matrices:
        assert matrix[0] == ["gold \\ predicted", *labels] and len(matrix) == 2 + len(labels)
    assert examples[0][:2] == ["index", "outcome"] and len(examples) == 2 + 4


def test_the_csv_names_variants_a_and_b_on_every_row() -> None:
    report = hand_report()
    reader = csv.DictReader(io.StringIO(export_disagreements(report, "csv")))
    rows = list(reader)
    # The earlier columns keep their places; the ids come last.
    assert reader.fieldnames == ["index", "outcome", "gold", "a", "a_confidence", "b", "b_confidence", "text",
                                 "variant_a", "variant_b"]
    assert len(rows) == 4 and all((r["variant_a"], r["variant_b"]) == ("3", "7") for r in rows)
    assert rows[0]["b_confidence"] == "" and rows[1]["text"] == report.rows[1].text


def test_regression_uses_a_tolerance_and_qa_an_answered_matrix(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    stsb = get_task("stsb").load("dev")
    gold = [float(stsb[i]["label"]) for i in range(4)]
    a, b = _run(store, tmp_path, "stsb", [{"indices": [0, 1, 2, 3], "predictions": gold, "confidences": gold},
                                          {"indices": [0, 1, 2, 3], "predictions": [gold[0] + 0.01, gold[1] + 2.0,
                                                                                    gold[2], gold[3] - 1.0]}])
    report = compare_variants(store, a, b)
    assert [r.index for r in report.rows] == [1, 3] and report.tolerance == pytest.approx(0.05 * (max(gold) - min(gold)))
    assert report.labels == [] and report.rows[0].outcome == ""
    squad = get_task("squad_v2").load("dev")
    golds = [squad[i]["answers"]["text"] for i in range(4)]
    first = next(t for t in golds[0] if t) if any(golds[0]) else ""
    qa_a = [{"text": first, "null_odds": -1.0}, {"text": "", "null_odds": 1.0}, {"text": "", "null_odds": 2.0},
            {"text": "x", "null_odds": -2.0}]
    qa_b = [{"text": "", "null_odds": 3.0}, *qa_a[1:]]
    qa1, qa2 = _run(store, tmp_path, "squad_v2", [{"indices": [0, 1, 2, 3], "predictions": qa_a},
                                                  {"indices": [0, 1, 2, 3], "predictions": qa_b}])
    report = compare_variants(store, qa1, qa2)
    assert [r.index for r in report.rows] == [0] and report.labels == ["has answer", "no answer"]
    has = [1 if any(g) else 0 for g in golds]
    answered_a = [1, 0, 0, 1]
    assert report.confusion_a == [[sum(1 for h, x in zip(has, answered_a, strict=True) if h == hr and x == xr)
                                   for xr in (1, 0)] for hr in (1, 0)]
    from core.tasks.squad import score

    answers = [squad[i]["answers"] for i in range(4)]
    assert report.difference[0] == pytest.approx(score(qa_b, answers)["f1"] - score(qa_a, answers)["f1"])


@pytest.mark.parametrize("fmt", ["text", "csv", "markdown", "json"])
def test_cli_prints_and_exports_the_same_report(sst2_db: tuple[Path, list[int]], tmp_path: Path, fmt: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db, (a, b, *_rest) = sst2_db
    assert main(["disagreements", str(a), str(b), "--db", str(db), "--format", fmt]) == 0
    printed = capsys.readouterr().out
    assert main(["disagreements", str(a), str(b), "--db", str(db), "--format", fmt, "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out").read_text() == printed
    report = compare_variants(open_store(db), a, b)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(printed)))
        assert [int(r["index"]) for r in rows] == [0, 3, 5, 21] and rows[0]["outcome"] == "A right"
        assert {(r["variant_a"], r["variant_b"]) for r in rows} == {(str(a), str(b))}
    elif fmt == "json":
        assert DisagreementReport.from_dict(json.loads(printed)).to_dict() == report.to_dict()
    elif fmt == "markdown":
        assert "| gold \\ predicted | negative | positive |" in printed and printed.count("| A right |") == 4
        assert len(_markdown_tables(printed)) == 3
    else:
        assert "4 of 6 sst2 dev examples get different predictions (66.7 %)" in printed
        assert "confusion matrix of B" in printed


def test_the_module_prints_json_for_the_window(sst2_db: tuple[Path, list[int]]) -> None:
    db, (a, b, _old, other) = sst2_db
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "core.analysis.disagreements", "--db", str(db), str(a), str(b)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["rows"]) == 4
    bad = subprocess.run([sys.executable, "-m", "core.analysis.disagreements", "--db", str(db), str(a), str(other)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert bad.returncode == 2 and "different dev examples" in json.loads(bad.stdout)["error"]
