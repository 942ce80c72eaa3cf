"""The data preview: the first rows, split sizes and label balance read without ``datasets``, the
same rows the loader gives, and the dev-noise rule checked against scipy."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.recipe import DataSpec
from core.tasks.preview import NOISE_LIMIT, dev_noise, preview

ROOT = Path(__file__).resolve().parents[2]


def test_the_accuracy_rule_matches_the_normal_interval_and_its_threshold() -> None:
    from scipy.stats import norm

    for n in (50, 277, 500, 872):
        assert dev_noise(n, "classification").half_width == pytest.approx(norm.ppf(0.975) * math.sqrt(0.25 / n))
    assert dev_noise(384, "classification").too_small and not dev_noise(385, "classification").too_small
    assert "±5.0 points" in dev_noise(385, "classification").rule
    assert dev_noise(0, "qa").too_small


def test_the_correlation_rule_matches_scipys_fisher_interval() -> None:
    import numpy as np
    from scipy.stats import pearsonr

    n = 200
    rng = np.random.default_rng(0)
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    x, z = x - x.mean(), z - z.mean()
    z -= x * (x @ z) / (x @ x)  # orthogonal to x: y below has a correlation of exactly 0.8
    y = 0.8 * x / np.linalg.norm(x) + 0.6 * z / np.linalg.norm(z)
    result = pearsonr(x, y)
    assert result.statistic == pytest.approx(0.8)
    low, high = result.confidence_interval(0.95)
    assert dev_noise(n, "regression").half_width == pytest.approx(max(high - 0.8, 0.8 - low))
    assert dev_noise(3, "regression").too_small


def _tsv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_sst2_preview_reads_the_bundled_files() -> None:
    from core.tasks import datasets_dir

    p = preview("sst2", rows=5, eval_limit=500)
    train = _tsv_rows(datasets_dir() / "sst2" / "train.tsv")
    dev = _tsv_rows(datasets_dir() / "sst2" / "dev.tsv")
    assert p.sizes == {"train": len(train) - 1, "dev": len(dev) - 1} == {"train": 67_349, "dev": 872}
    assert p.columns == ("text", "label") and len(p.rows) == 5
    assert p.rows[0] == {"text": train[1][0], "label": ("negative", "positive")[int(train[1][1])]}
    expected_pos = sum(r[1] == "1" for r in dev[1:])
    assert p.labels["dev"] == {"positive": expected_pos, "negative": 872 - expected_pos}
    assert sum(p.labels["train"].values()) == 67_349
    assert p.evaluated == 500 and p.warning == ""  # ±4.4 points
    small = preview("sst2", rows=1, eval_limit=100)
    assert small.evaluated == 100 and small.noise is not None and small.noise.too_small
    assert "100 dev examples" in small.warning and "±9.8 points" in small.warning
    # one threshold, the measured one: not "about 5 points" beside "±9.8 points"
    assert "closer than about 9.8 points cannot be told apart" in small.warning


def test_previewed_rows_are_the_rows_the_loader_gives() -> None:
    from core.tasks import get_task

    for task_id in ("rte", "stsb", "qnli", "squad_v2"):
        task = get_task(task_id)
        p = preview(task_id, rows=3, split="dev")
        loaded = task.load("dev")
        assert p.sizes["dev"] == loaded.num_rows
        first = loaded[0]
        if task.head == "qa":
            assert p.rows[0]["question"] == first["question"] and p.columns[:2] == ("title", "context")
            assert p.rows[0]["answers"] == (first["answers"]["text"][0] if first["answers"]["text"] else "(no answer)")
        else:
            assert p.rows[0]["text"] == first["text"] and p.rows[0]["text_pair"] == first["text_pair"]
    assert preview("rte").warning and "277 dev examples" in preview("rte").warning  # RTE's dev set is small
    assert preview("stsb").labels == {}  # regression: no label balance


def test_a_custom_file_is_previewed_with_the_runners_split(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\n" + "".join(f"text {i},{'good' if i % 3 else 'bad'}\n" for i in range(50)))
    spec = DataSpec(path=str(path), text="review", label="stars")
    p = preview(spec, rows=4)
    assert p.task_id == "custom:reviews" and p.sizes == {"train": 40, "dev": 10}
    assert sum(p.labels["train"].values()) == 40 and set(p.labels["train"]) == {"bad", "good"}
    from core.tasks.custom import task_from_spec

    loaded = task_from_spec(spec).load("train")
    assert [r["text"] for r in p.rows] == loaded["text"][:4]
    assert p.noise is not None and p.noise.half_width > NOISE_LIMIT and "10 dev examples" in p.warning


def test_the_preview_never_imports_datasets_or_torch(tmp_path: Path) -> None:
    code = ("import sys; from core.tasks.preview import preview; preview('sst2'); preview('squad_v2');"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('datasets', 'torch', 'transformers')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
