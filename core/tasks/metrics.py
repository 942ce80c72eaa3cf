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


# --------------------------------------------------------------------------------------------
# Resampled: the same metrics on every row of an index matrix (resamples x examples) at once, for
# bootstrap intervals. Each returns metric -> array of one value per resample; definitions match
# the scorers above (the tests compare them on random data).

Resampler = Callable[[Sequence[Any], Sequence[Any], Any], dict[str, Any]]


def _counts(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    p, r = np.asarray(predictions)[idx], np.asarray(references)[idx]
    classes = np.union1d(np.unique(predictions), np.unique(references))
    return p, r, classes


def _mcc(p: Any, r: Any, classes: Any) -> Any:
    """sklearn's multiclass MCC (Gorodkin's R_K) on each resample; 0 where it is undefined."""
    import numpy as np

    n = p.shape[1]
    correct = (p == r).sum(axis=1).astype(float)
    pk = np.stack([(p == k).sum(axis=1) for k in classes], axis=1).astype(float)
    tk = np.stack([(r == k).sum(axis=1) for k in classes], axis=1).astype(float)
    cov_ytyp = correct * n - (tk * pk).sum(axis=1)
    cov_ypyp = n * n - (pk * pk).sum(axis=1)
    cov_ytyt = n * n - (tk * tk).sum(axis=1)
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, cov_ytyp / np.where(denom > 0, denom, 1), 0.0)


def _f1(p: Any, r: Any, label: Any) -> Any:
    import numpy as np

    tp = ((p == label) & (r == label)).sum(axis=1)
    fp = ((p == label) & (r != label)).sum(axis=1)
    fn = ((p != label) & (r == label)).sum(axis=1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)


def resample_accuracy(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> dict[str, Any]:
    p, r, _ = _counts(predictions, references, idx)
    return {"accuracy": (p == r).mean(axis=1)}


def resample_matthews(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> dict[str, Any]:
    return {"matthews_correlation": _mcc(*_counts(predictions, references, idx))}


def resample_binary(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> dict[str, Any]:
    """accuracy_f1 + matthews (F1 of label 1, as accuracy_f1 scores it)."""
    p, r, classes = _counts(predictions, references, idx)
    return {"accuracy": (p == r).mean(axis=1), "f1": _f1(p, r, 1), "matthews_correlation": _mcc(p, r, classes)}


def resample_multiclass(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> dict[str, Any]:
    """accuracy_macro_f1 + matthews (macro F1 over the labels present in each resample, as sklearn)."""
    import numpy as np

    p, r, classes = _counts(predictions, references, idx)
    per_class = np.stack([_f1(p, r, k) for k in classes], axis=1)
    present = np.stack([((p == k) | (r == k)).any(axis=1) for k in classes], axis=1)
    macro = (per_class * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return {"accuracy": (p == r).mean(axis=1), "f1": macro, "matthews_correlation": _mcc(p, r, classes)}


def resample_pearson(predictions: Sequence[Any], references: Sequence[Any], idx: Any) -> dict[str, Any]:
    """Pearson's r on each resample (NaN where a side is constant, as pearsonr); Spearman is re-ranked
    per resample by the scorer itself."""
    import numpy as np

    x = np.asarray(predictions, dtype=float)[idx]
    y = np.asarray(references, dtype=float)[idx]
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"pearson": np.where(denom > 0, (x * y).sum(axis=1) / denom, np.nan)}


SCORERS: dict[str, Scorer] = {
    "accuracy": accuracy,
    "matthews": matthews,
    "accuracy_f1": accuracy_f1,
    "accuracy_macro_f1": accuracy_macro_f1,
    "pearson_spearman": pearson_spearman,
}
