"""Task metrics, computed by scikit-learn / scipy wherever they implement the definition.

Every function takes ``(predictions, references)`` and returns a ``dict[str, float]``, so a
task's ``scorer`` is just one of these. No torch here: the GUI may import this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

Scorer = Callable[[Any, Any], dict[str, float]]


def _check(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if len(references) == 0:
        raise ValueError("cannot score an empty set of examples")


def accuracy(predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score

    _check(predictions, references)
    return {"accuracy": float(accuracy_score(references, predictions))}


def matthews(predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
    """CoLA's metric. sklearn defines it as 0 when either side is constant."""
    from sklearn.metrics import matthews_corrcoef

    _check(predictions, references)
    return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}


def accuracy_f1(predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
    """MRPC/QQP style: accuracy and F1 of the positive class (label id 1)."""
    from sklearn.metrics import f1_score

    out = accuracy(predictions, references)
    out["f1"] = float(f1_score(references, predictions, pos_label=1, average="binary", zero_division=0))
    return out


def accuracy_macro_f1(predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
    """Multi-class classification: accuracy and macro-averaged F1."""
    from sklearn.metrics import f1_score

    out = accuracy(predictions, references)
    out["f1"] = float(f1_score(references, predictions, average="macro", zero_division=0))
    return out


def pearson_spearman(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """STS-B: Pearson and Spearman correlation and their mean (NaN if a side is constant)."""
    from scipy.stats import pearsonr, spearmanr

    _check(predictions, references)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input -> NaN with a warning; NaN is the honest value
        pearson = float(pearsonr(predictions, references)[0]) if len(references) > 1 else float("nan")
        spearman = float(spearmanr(predictions, references)[0]) if len(references) > 1 else float("nan")
    return {"pearson": pearson, "spearman": spearman, "pearson_spearman_mean": (pearson + spearman) / 2}


def correct(predictions: Sequence[int], references: Sequence[int]) -> dict[str, list[float]]:
    """Per-example 1/0 for a right/wrong class: accuracy is their mean."""
    _check(predictions, references)
    return {"accuracy": [float(p == r) for p, r in zip(predictions, references, strict=True)]}


SCORERS: dict[str, Scorer] = {
    "accuracy": accuracy,
    "matthews": matthews,
    "accuracy_f1": accuracy_f1,
    "accuracy_macro_f1": accuracy_macro_f1,
    "pearson_spearman": pearson_spearman,
}
