"""The sketching theory benchmarks/sketch_error.py reports against: its expectation formula agrees with
simulation of the step's own Rademacher sketch, the JL/AMM bound holds, the operator norm of S^T S - I
sits at the Marchenko-Pastur edge, and a trained W' never does worse than W S^T."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.sketch_error import (
    amm_bound_sq,
    expected_sq_error,
    layer_errors,
    marchenko_pastur_edge,
    sketch_matrix,
    sts_minus_identity_norm,
)


def _layer(seed: int = 0, out: int = 24, n: int = 64, tokens: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(out, n)) * np.linspace(0.2, 2.0, n)  # uneven columns, like trained weights
    x = rng.normal(size=(n, 4)) @ rng.normal(size=(4, tokens)) + 0.3 * rng.normal(size=(n, tokens))  # low-rank inputs
    return w, x


def test_the_expectation_formula_matches_simulation() -> None:
    w, x = _layer()
    m, n = 16, w.shape[1]
    errors = [np.linalg.norm(w @ (s := sketch_matrix(m, n, seed)).T @ (s @ x) - w @ x) ** 2 for seed in range(600)]
    mean, se = float(np.mean(errors)), float(np.std(errors, ddof=1) / np.sqrt(len(errors)))
    expected = expected_sq_error(w, x, m)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    assert expected <= amm_bound_sq(w, x, m)


def test_the_formula_on_a_case_worked_by_hand() -> None:
    w, _ = _layer()
    x = np.zeros((w.shape[1], 1))
    x[0, 0] = 1.0  # W (S^T S - I) e_1 = sum_{i != 1} W_:i a_i1, each a_i1 of variance 1/m
    assert expected_sq_error(w, x, 8) == pytest.approx(((w * w).sum() - (w[:, 0] ** 2).sum()) / 8)


@pytest.mark.parametrize(("n", "m"), [(384, 256), (1536, 512)])
def test_operator_norm_sits_at_the_marchenko_pastur_edge(n: int, m: int) -> None:
    s = sketch_matrix(m, n, 3)
    measured = float(np.linalg.norm(s.T @ s - np.eye(n), 2))
    assert measured == pytest.approx(marchenko_pastur_edge(n, m), rel=0.08)
    assert sts_minus_identity_norm(s) == pytest.approx(measured, rel=1e-9)  # the script's shortcut


def test_a_trained_sketch_weight_is_never_worse_than_w_s_transpose() -> None:
    w, x = _layer(1)
    report = layer_errors(w, x, 16, seeds=5)
    assert report["best_trained_rel"] <= report["rel_frobenius_mean"]
    assert report["rel_frobenius_rms"] <= report["rel_frobenius_bound"]
    assert report["rel_frobenius_rms"] == pytest.approx(report["rel_frobenius_expected"], rel=0.5)


def test_the_report_section_reads_its_findings_from_the_measurements() -> None:
    from benchmarks.report import section_markdown

    w, x = _layer(2)
    layers = {f"block.{i}.ffn_out": {"role": "ffn_out", **layer_errors(w, x, 16, seeds=3)} for i in range(2)}
    drift = {"paper: attention m=256 + FFN output m=512": {"rel_error": 1.9, "cosine_mean": 0.0123, "cosine_min": -0.1},
             "paper sizes, init least squares on other sentences' activations": {"rel_error": 0.5, "cosine_mean": 0.8771,
                                                                                 "cosine_min": 0.3}}
    data = {"settings": {"model": "m", "sentences": 4, "seeds": 3}, "layers": layers, "drift": drift,
            "wall_s": 1.0, "cpu_s": 1.0}
    text = section_markdown("sketch-error", data)
    spread = min(v["spread"] for v in layers.values())
    assert f"at least {spread:.1f} here" in text and "cosine 0.012" in text and "cosine 0.877" in text
    assert "below the JL/AMM bound" in text and "| ffn_out | 64 | 16 |" in text
