"""GLUE tasks load the bundled files with the official row counts; metrics agree with sklearn/scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from core.tasks import get_task, metrics
from core.tasks.features import collate, train_features
from tests.helpers import tiny_tokenizer


@pytest.mark.parametrize(
    ("task_id", "split", "rows"),
    [
        ("sst2", "dev", 872),
        ("cola", "train", 8_551),
        ("cola", "dev", 1_043),
        ("rte", "train", 2_490),
        ("rte", "dev", 277),
        ("stsb", "train", 5_749),
        ("stsb", "dev", 1_500),
        ("qnli", "dev_full", 5_463),
    ],
)
def test_bundled_split_has_official_row_count(task_id: str, split: str, rows: int) -> None:
    assert get_task(task_id).load(split).num_rows == rows


def test_columns_and_label_types() -> None:
    cola = get_task("cola").load("dev")
    assert cola[0]["text"] == "The sailors rode the breeze clear of the rocks." and cola[0]["label"] == 1
    rte = get_task("rte").load("dev")
    assert set(rte["label"]) == {0, 1}
    assert rte[0]["label"] == 1  # not_entailment (GLUE order: entailment=0)
    assert rte[0]["text_pair"] == "Christopher Reeve had an accident."
    stsb = get_task("stsb").load("dev")
    assert stsb[0]["label"] == pytest.approx(5.0) and stsb[1]["label"] == pytest.approx(4.75)
    assert get_task("stsb").head == "regression"


def test_rte_row_with_stray_quote_is_read_whole() -> None:
    # QUOTE_NONE: a '"' inside RTE train row 2164 must not swallow the following rows.
    rte = get_task("rte").load("train")
    assert all(label in (0, 1) for label in rte["label"])
    row = rte[2164]
    assert row["text"].startswith('"That film') and row["text_pair"] == 'The film "WarGames" was shot in 1983.'
    assert row["label"] == 1


def test_qnli_train_dev_partition_the_official_dev_by_question() -> None:
    qnli = get_task("qnli")
    full, train, dev = qnli.load("dev_full"), qnli.load("train"), qnli.load("dev")
    assert train.num_rows + dev.num_rows == full.num_rows
    assert set(train["text"]).isdisjoint(dev["text"])
    assert "split" in qnli.note and "dev file" in qnli.note
    assert list(qnli.load("train")["text"]) == list(train["text"])  # deterministic


RNG = np.random.default_rng(0)
Y_TRUE = RNG.integers(0, 2, 200).tolist()
Y_PRED = [y if RNG.random() < 0.7 else 1 - y for y in Y_TRUE]
S_TRUE = RNG.uniform(0, 5, 150).tolist()
S_PRED = (np.array(S_TRUE) + RNG.normal(0, 1.5, 150)).tolist()


def test_classification_metrics_match_sklearn() -> None:
    assert metrics.accuracy(Y_PRED, Y_TRUE)["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert metrics.matthews(Y_PRED, Y_TRUE)["matthews_correlation"] == pytest.approx(
        matthews_corrcoef(Y_TRUE, Y_PRED)
    )
    both = metrics.accuracy_f1(Y_PRED, Y_TRUE)
    assert both["f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED))
    # a hand-checked case: tp=1, fp=1, fn=1 -> F1 = 0.5; 2 of 4 right
    assert metrics.accuracy_f1([1, 1, 0, 0], [1, 0, 1, 0]) == {"accuracy": 0.5, "f1": 0.5}


def test_correlation_metrics_match_scipy() -> None:
    out = metrics.pearson_spearman(S_PRED, S_TRUE)
    assert out["pearson"] == pytest.approx(pearsonr(S_PRED, S_TRUE)[0])
    assert out["spearman"] == pytest.approx(spearmanr(S_PRED, S_TRUE)[0])
    assert out["pearson_spearman_mean"] == pytest.approx((out["pearson"] + out["spearman"]) / 2)
    assert 0.3 < out["pearson"] < 0.95  # the fixture is correlated, not degenerate


def test_task_scorers_are_the_declared_metrics() -> None:
    for task_id in ("sst2", "cola", "rte", "stsb", "qnli"):
        task = get_task(task_id)
        preds = S_PRED[:20] if task.head == "regression" else Y_PRED[:20]
        refs = S_TRUE[:20] if task.head == "regression" else Y_TRUE[:20]
        scores = task.score(preds, refs)
        assert set(task.metrics) <= set(scores) and task.primary_metric in scores


def test_constant_predictions_give_nan_correlation_not_crash() -> None:
    out = metrics.pearson_spearman([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])
    assert np.isnan(out["pearson"])


def test_train_features_columns_are_forward_kwargs(tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path / "tok")
    task = get_task("rte")
    feats = train_features(task, tok, task.load("dev").select(range(5)), max_length=32)
    assert set(feats.column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert max(len(x) for x in feats["input_ids"]) <= 32
    stsb = get_task("stsb")
    feats = train_features(stsb, tok, stsb.load("dev").select(range(3)))
    assert isinstance(feats[0]["labels"], float)


def test_collate_pads_to_longest_in_batch(tmp_path: Path) -> None:
    import torch

    tok = tiny_tokenizer(tmp_path / "tok")
    rows = [
        {"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": 1},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": 0},
    ]
    batch = collate(tok)(rows)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, tok.pad_token_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].dtype == torch.long


def test_task_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        "from core.tasks import all_tasks\n"
        "import core.measure\n"
        "ids = [t.id for t in all_tasks()]\n"
        "assert 'squad_v2' in ids and 'stsb' in ids, ids\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_head_carries_over_between_tasks_only_with_the_same_labels() -> None:
    """core.tasks.head_carry_over_problem, the rule load_start, recipe validation and first_on_task share."""
    from types import SimpleNamespace

    from core.tasks import get_task, head_carry_over_problem

    rte, stsb = get_task("rte"), get_task("stsb")
    assert head_carry_over_problem("qnli", 2, rte) is None  # entailment / not_entailment on both sides
    assert "task sst2's labels (negative, positive) are not task rte's" in head_carry_over_problem("sst2", 2, rte)
    assert head_carry_over_problem("rte", 3, rte) == "a head for task rte has 3 labels; task rte has 2"
    assert head_carry_over_problem("sst2", 1, stsb) is None  # regression: no labels (the head check applies)

    def custom(labels: tuple[str, ...]) -> SimpleNamespace:
        return SimpleNamespace(id="custom:reviews", head="classification", num_labels=len(labels),
                               label_names=labels, family="custom")

    # a user's file spells its own labels: a bundled head carries over on its count alone, both ways
    assert head_carry_over_problem("sst2", 2, custom(("0", "1"))) is None
    assert "has 2 labels; task custom:reviews has 3" in head_carry_over_problem("sst2", 2, custom(("a", "b", "c")))
    # the same custom id from another file with another label count is not the same task
    assert "has 2 labels" in head_carry_over_problem("custom:reviews", 2, custom(("a", "b", "c")))
