"""Sweep size and disk (issue 16): validation counts the variants without building them, estimates
their artifacts' bytes against the free space, and the CLI refuses a large run unless --yes."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import pytest

import tests.core.fakes  # noqa: F401  (registers the test-only steps)
from core.cli import main
from core.recipe import Recipe, count_variants, run_estimate, save_recipe, validate_recipe, variant_tree
from core.recipe import estimate as estimate_module
from core.run import process
from core.run.session import Outcome
from tests.core.fakes import tiny_recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _recipe(tiny: Path, chain: list[dict[str, Any]]) -> Recipe:
    return Recipe.from_dict(tiny_recipe(tiny, chain))


def test_variants_are_counted_as_the_tree_has_them(tiny: Path) -> None:
    chain = [{"step": "test.scale", "config": {"factor": [0.5, 1.0, 2.0]}}, {"step": "test.train"},
             {"step": "test.slow", "config": {"seconds": [0.0, 0.1]}, "enabled": False},
             {"step": "test.renamed", "config": {"amount": [0.1, 0.2]}}]
    recipe = _recipe(tiny, chain)
    assert count_variants(recipe) == variant_tree(recipe).count() == 1 + 3 + 3 + 6


def test_a_sweep_beyond_the_limit_is_refused_before_anything_is_built(tiny: Path) -> None:
    axis = [round(0.001 * i, 3) for i in range(1, 1001)]
    recipe = _recipe(tiny, [{"step": "test.scale", "config": {"factor": axis}},
                            {"step": "test.renamed", "config": {"amount": axis[:950]}}])
    start = time.monotonic()
    problems = validate_recipe(recipe)
    assert time.monotonic() - start < 5  # building 951,001 configs would take minutes and gigabytes
    assert [p.field for p in problems] == ["chain"]
    assert "expands to 951,001 variants" in problems[0].message and "at most 100,000" in problems[0].message
    assert "sweep fewer values" in problems[0].fix


def test_the_disk_estimate_follows_the_step_kinds_and_matches_a_real_run(tiny: Path, tmp_path: Path) -> None:
    from core.artifacts import folder_bytes
    from core.run.runner import run_recipe

    chain = [{"step": "test.scale", "config": {"factor": [0.5, 2.0]}},
             {"step": "quantize.linear_nbit", "config": {"bits": 8}}]
    recipe = _recipe(tiny, chain)
    estimate = run_estimate(recipe, tmp_path / "artifacts")
    assert estimate.variants == 5 and not estimate.needs_confirmation
    result = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "artifacts")
    assert type(result).__name__ == "RunFinished"
    actual = folder_bytes(tmp_path / "artifacts")
    assert estimate.bytes is not None and 0.7 * actual < estimate.bytes < 1.5 * actual, (estimate.bytes, actual)
    # 8 bits of 32: the two n-bit variants are estimated at about a quarter of their parents.
    same_size = _recipe(tiny, [chain[0], {"step": "test.train"}])
    assert run_estimate(same_size, tmp_path).bytes > estimate.bytes  # type: ignore[operator]


def test_files_exported_to_other_backends_are_counted_and_match_a_real_run(tiny: Path, tmp_path: Path) -> None:
    from core.artifacts import folder_bytes
    from core.run.runner import run_recipe

    chain = [{"step": "test.scale", "config": {"factor": [0.5, 2.0]}}]
    plain = _recipe(tiny, chain)
    recipe = tiny_recipe(tiny, chain)
    recipe["measure"] = {**recipe["measure"], "backends": ["torch", "onnxruntime", "openvino"]}
    exported = Recipe.from_dict(recipe)
    estimate, without = run_estimate(exported, tmp_path).bytes, run_estimate(plain, tmp_path).bytes
    assert estimate is not None and without is not None and estimate > 2 * without  # two float copies per variant
    result = run_recipe(exported, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "artifacts")
    assert type(result).__name__ == "RunFinished"
    exports = list((tmp_path / "artifacts").rglob("exports"))
    assert exports and sum(folder_bytes(folder) for folder in exports) > without  # the kept files are real
    actual = folder_bytes(tmp_path / "artifacts")
    assert 0.7 * actual < estimate < 1.5 * actual, (estimate, actual)


def _write(tiny: Path, tmp_path: Path, values: int) -> Path:
    path = tmp_path / "sweep.yaml"
    factors = [round(0.01 * i, 2) for i in range(1, values + 1)]
    save_recipe(_recipe(tiny, [{"step": "test.scale", "config": {"factor": factors}}]), path)
    return path


def test_validate_and_run_refuse_many_variants_unless_yes(tiny: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(process, "run_worker", lambda request, **k: started.append(request) or Outcome("finished", 1))
    db = tmp_path / "w.sqlite"
    path = _write(tiny, tmp_path, 200)  # 201 variants with the baseline
    assert main(["validate", str(path), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "201 variants is more than 200" in err and "--yes" in err
    assert "201 variant(s), about" in err and "free" in err
    assert main(["run", str(path), "--db", str(db)]) == 2
    assert "201 variants is more than 200" in capsys.readouterr().err
    assert started == [] and not db.exists()
    assert main(["validate", str(path), "--db", str(db), "--yes"]) == 0
    assert "valid; 201 variant(s), about" in capsys.readouterr().out
    assert main(["run", str(path), "--db", str(db), "--yes"]) == 0
    assert len(started) == 1
    assert main(["validate", str(_write(tiny, tmp_path, 199)), "--db", str(db)]) == 0  # 200: no question asked


def test_runs_that_would_fill_the_drive_are_refused_unless_yes(tiny: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(estimate_module.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 10**9, 10**9))
    path = _write(tiny, tmp_path, 3)
    artifacts = tmp_path / "elsewhere" / "artifacts"  # not there yet: its drive is asked
    assert main(["validate", str(path), "--artifacts", str(artifacts)]) == 2
    err = capsys.readouterr().err
    assert "would leave less than 2.0 GB of the 1.0 GB free on the drive of" in err and str(artifacts) in err
    assert "another --artifacts folder" in err
    assert main(["validate", str(path), "--artifacts", str(artifacts), "-y"]) == 0
    assert not artifacts.exists()


def test_each_seed_makes_the_whole_tree_again(tiny: Path, tmp_path: Path) -> None:
    chain = [{"step": "test.scale", "config": {"factor": [0.5, 2.0]}}]
    one = run_estimate(_recipe(tiny, chain), tmp_path)
    three = run_estimate(Recipe.from_dict({**tiny_recipe(tiny, chain), "seeds": [1, 2, 3]}), tmp_path)
    assert (one.variants, three.variants) == (3, 9)
    assert three.bytes == 3 * one.bytes  # type: ignore[operator]


def test_a_run_s_duration_comes_from_what_the_same_work_took_before(tiny: Path, tmp_path: Path) -> None:
    """Each variant at the median of its past times with the same model, task, data and measurement
    settings; a step config never timed so is named, not guessed; other measurement settings count nothing."""
    from core.recipe.estimate import run_duration
    from core.run.runner import run_recipe
    from core.store import open_store, past_step_seconds, run_variants

    chain = [{"step": "test.slow", "config": {"seconds": [0.3, 0.6], "chatter": False}}]
    db = tmp_path / "w.sqlite"
    store = open_store(db)
    recipe = _recipe(tiny, chain)
    assert run_duration(recipe, past_step_seconds(store, recipe.to_dict())).timed == 0
    for _ in range(2):  # the second run reuses every variant from the cache: its times are not the work's
        run_recipe(tiny_recipe(tiny, chain), db_url_or_path=db, artifacts_dir=tmp_path / "artifacts", emit=lambda e: None)
    computed = [v for v in run_variants(store, 1) if not v.cached]
    assert len(computed) == 3
    estimate = run_duration(recipe, past_step_seconds(store, recipe.to_dict()))
    assert (estimate.timed, estimate.variants, estimate.untimed) == (3, 3, ())
    assert estimate.seconds == pytest.approx(sum(v.seconds for v in computed))  # one past time each
    assert estimate.seconds > 0.9  # the two sleeps alone
    # A third sweep value was never timed: named, and the other two still counted.
    wider = _recipe(tiny, [{"step": "test.slow", "config": {"seconds": [0.3, 0.6, 0.9], "chatter": False}}])
    partial = run_duration(wider, past_step_seconds(store, wider.to_dict()))
    assert (partial.timed, partial.variants, partial.untimed) == (3, 4, ("Sleep (test)",))
    assert partial.summary().startswith("over ") and "Sleep (test) not timed here with these settings yet" in partial.summary()
    assert estimate.summary().startswith("about ") and "less where variants are reused" in estimate.summary()
    # Measured differently: nothing before is comparable.
    other = tiny_recipe(tiny, chain)
    other["measure"] = {**other["measure"], "latency_repeats": 7}
    assert run_duration(Recipe.from_dict(other), past_step_seconds(store, Recipe.from_dict(other).to_dict())).timed == 0
