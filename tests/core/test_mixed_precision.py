"""Mixed precision from a sensitivity map (core.analysis.mixed): the exhaustive search equals a brute
force written independently, the greedy one stays within budget, the plan becomes a step config that
reruns exactly, and `workbench-cli mixed-precision` writes a recipe whose artifact reloads identically
and lands near the predicted size."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from core.analysis.mixed import FLOAT, add_to_chain, options, plan
from core.cli import main
from core.errors import ConfigError
from core.recipe import Recipe, load_recipe
from core.steps.nbit import LinearNbitConfig
from core.steps.quantize_int8 import DynamicInt8Config
from core.store.analysis import SensitivityCell, SensitivityMap

BITS = (4, 6, 8)


def fake_map(parts: list[str], drops: dict[tuple[str, int], float], params: dict[str, int], *, grouping: str = "layer",
             transforms: tuple[str, ...] = tuple(f"nbit:{b}" for b in BITS), base_bytes: int | None = None) -> SensitivityMap:
    """A map as core.analysis.sensitivity stores it, with chosen drops (points) and part sizes."""
    sizes = {p: {"params": params[p], "float_bytes": 4 * params[p], "tensors": 2, "linear_params": params[p] - 10,
                 "linear_rows": 10, "linear_biases": 1, "embedding_params": params[p] - 10 if p == "embeddings" else 0,
                 "embedding_rows": 10 if p == "embeddings" else 0} for p in parts}
    cells = []
    for pos, p in enumerate(parts):
        for t in transforms:
            key = (p, 8 if t == "int8" else int(t.split(":")[1]))
            cells.append(SensitivityCell(t, p, pos, None, -drops[key] / 100, None, None, 100, 0))
    body = {"parts": parts, "sizes": sizes, "points": 100.0,
            "artifact_bytes": base_bytes or sum(4 * v for v in params.values()) + 5000}
    return SensitivityMap(id=7, variant_id=3, metric="accuracy", base_metric=0.9, examples=100, seed=0,
                          grouping=grouping, transforms=list(transforms), status="finished", body=body, seconds=1.0,
                          created_at="", cells=cells)


def random_map(seed: int, n_layers: int = 4) -> SensitivityMap:
    rng = random.Random(seed)
    parts = ["embeddings", *(f"layer {i}" for i in range(n_layers)), "head"]
    params = {p: rng.randint(1000, 50_000) for p in parts}
    drops = {}
    for p in parts:
        worst = rng.uniform(0, 10)
        drops[(p, 4)], drops[(p, 6)], drops[(p, 8)] = worst, worst * rng.uniform(0, 0.5), rng.uniform(-0.5, 0.3)
    return fake_map(parts, drops, params)


def brute_force(m: SensitivityMap, *, target_bytes: int | None = None, max_drop: float | None = None) -> tuple[float, float]:
    """Every assignment, written out with itertools: the best (drop, bytes) for the budget."""
    opts = options(m, "nbit")
    fixed = m.body["artifact_bytes"] - sum(choices[0].bytes for choices in opts.values())
    best: tuple[float, float] | None = None
    for combo in itertools.product(*opts.values()):
        size = fixed + sum(c.bytes for c in combo)
        drop = sum(c.drop for c in combo)
        if target_bytes is not None and size <= target_bytes:
            key = (drop, size)
        elif max_drop is not None and drop <= max_drop + 1e-9:
            key = (size, drop)
        else:
            continue
        best = key if best is None or key < best else best
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(12))
def test_exhaustive_search_finds_what_brute_force_finds(seed: int) -> None:
    m = random_map(seed)
    all_float = m.body["artifact_bytes"]
    for fraction in (0.3, 0.5, 0.8):
        p = plan(m, target_bytes=int(all_float * fraction))
        assert p.method == "exhaustive" and p.assignments == 4 ** 6
        assert (p.predicted_drop, p.predicted_bytes) == pytest.approx(brute_force(m, target_bytes=int(all_float * fraction)))
        assert p.predicted_bytes <= all_float * fraction
    for budget in (0.0, 1.0, 5.0):
        p = plan(m, max_drop=budget)
        assert (p.predicted_bytes, p.predicted_drop) == pytest.approx(brute_force(m, max_drop=budget))
        assert p.predicted_drop <= budget + 1e-9


@pytest.mark.parametrize("seed", range(8))
def test_greedy_search_stays_within_budget_and_near_the_optimum(seed: int) -> None:
    m = random_map(seed, n_layers=5)
    for budget in (0.5, 2.0, 6.0):
        exact = plan(m, max_drop=budget)
        greedy = plan(m, max_drop=budget, exhaustive_limit=0)
        assert greedy.method == "greedy" and greedy.predicted_drop <= budget + 1e-9
        assert greedy.predicted_bytes >= exact.predicted_bytes  # never better than the optimum...
        assert greedy.predicted_bytes <= exact.predicted_bytes * 1.6  # ...and not far off on these maps
    target = int(m.body["artifact_bytes"] * 0.45)
    greedy = plan(m, target_bytes=target, exhaustive_limit=0)
    assert greedy.predicted_bytes <= target and greedy.predicted_drop >= plan(m, target_bytes=target).predicted_drop - 1e-9


def test_greedy_is_optimal_when_every_layer_is_alike() -> None:
    parts = ["embeddings", "layer 0", "layer 1", "layer 2", "head"]
    drops = {(p, b): {4: 3.0, 6: 1.0, 8: 0.0}[b] for p in parts for b in BITS}
    m = fake_map(parts, drops, dict.fromkeys(parts, 10_000))
    for budget in (0.0, 1.0, 2.5, 4.0):
        assert plan(m, max_drop=budget, exhaustive_limit=0).predicted_bytes == plan(m, max_drop=budget).predicted_bytes


def test_measured_gains_count_as_no_drop_and_the_plan_says_so() -> None:
    parts = ["embeddings", "layer 0", "head"]
    drops = {(p, b): -1.0 for p in parts for b in BITS}  # every transform "improved" the metric: noise
    p = plan(fake_map(parts, drops, dict.fromkeys(parts, 1000)), max_drop=0.0)
    assert p.predicted_drop == 0.0 and all(c.name == "nbit:4" for c in p.choices)
    assert all(c.measured == pytest.approx(1.0) and c.drop == 0.0 for c in p.choices)
    assert any("search: exhaustive over 64 assignment(s)" in line for line in p.lines())


def test_budgets_that_cannot_be_met_or_maps_that_cannot_be_used_are_refused_clearly() -> None:
    m = random_map(0)
    with pytest.raises(ConfigError, match=r"no assignment .* reaches 0\.00 MB: the smallest is"):
        plan(m, target_bytes=1)
    with pytest.raises(ConfigError, match="exactly one budget"):
        plan(m)
    with pytest.raises(ConfigError, match="exactly one budget"):
        plan(m, target_bytes=10, max_drop=1.0)
    with pytest.raises(ConfigError, match="by role; mixed precision needs a map by layer"):
        plan(fake_map(["embeddings", "query", "head"], {(p, b): 0.0 for p in ("embeddings", "query", "head")
                                                          for b in BITS}, dict.fromkeys(("embeddings", "query", "head"), 10),
                      grouping="role"), max_drop=1.0)
    with pytest.raises(ConfigError, match="measured no nbit transform"):
        plan(fake_map(["embeddings", "head"], {(p, 8): 0.0 for p in ("embeddings", "head")},
                      dict.fromkeys(("embeddings", "head"), 10), transforms=("int8",)), max_drop=1.0)


def test_the_plan_becomes_a_config_the_steps_accept() -> None:
    parts = ["embeddings", "layer 0", "layer 1", "head"]
    drops = {("embeddings", 4): 0.1, ("embeddings", 6): 0.0, ("embeddings", 8): 0.0,
             ("layer 0", 4): 9.0, ("layer 0", 6): 9.0, ("layer 0", 8): 9.0,
             ("layer 1", 4): 0.4, ("layer 1", 6): 0.2, ("layer 1", 8): 0.0,
             ("head", 4): 0.0, ("head", 6): 0.0, ("head", 8): 0.0}
    p = plan(fake_map(parts, drops, {"embeddings": 50_000, "layer 0": 10_000, "layer 1": 10_000, "head": 10_000}),
             max_drop=0.3)
    assert [c.name for c in p.choices] == ["nbit:4", FLOAT, "nbit:6", "nbit:4"]
    config = LinearNbitConfig(**p.step_config())
    assert (config.bits, list(config.layer_bits), config.embedding_bits, config.head_bits) == (4, [0, 6], 4, 4)
    int8_drops = {(q, 8): 5.0 if q == "layer 1" else 0.1 for q in parts}
    q = plan(fake_map(parts, int8_drops, dict.fromkeys(parts, 10_000), transforms=("int8",)), scheme="int8", max_drop=1.0)
    config8 = DynamicInt8Config(**q.step_config())
    assert list(config8.keep_float_layers) == [1] and config8.embeddings_int8 and config8.quantize_head
    recipe = Recipe(model="m", task="sst2")
    once = add_to_chain(recipe, p)
    twice = add_to_chain(once, p)  # the same step last: reconfigured, not appended again
    assert len(once.chain) == len(twice.chain) == 1 and once.chain[0].config == twice.chain[0].config


# --- end to end --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A tiny model run through the runner, a test.scale step after its baseline, and a map of it."""
    from core.analysis.sensitivity import Settings, parse_transforms, run_sensitivity
    from core.run.runner import run_recipe
    from core.store import open_store, run_variants
    from tests.core.fakes import tiny_recipe
    from tests.helpers import tiny_bert_folder

    folder = tmp_path_factory.mktemp("mixed")
    recipe = tiny_recipe(tiny_bert_folder(folder / "model", layers=2, hidden=64),
                         [{"step": "test.scale", "config": {"factor": 1.0}}])
    assert run_recipe(recipe, db_url_or_path=folder / "w.sqlite", artifacts_dir=folder / "a").type == "run_finished"
    store = open_store(folder / "w.sqlite")
    variant = run_variants(store, 1)[-1].id
    map_id = run_sensitivity(store, variant, parse_transforms(["nbit:2", "nbit:4", "nbit:8"]),
                             Settings(examples=16, threads=1))
    store.close()
    return folder / "w.sqlite", variant, map_id


def test_cli_writes_a_recipe_that_reruns_the_chain_and_reloads_to_identical_outputs(
        mapped: tuple[Path, int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from core.artifacts import folder_bytes, load_artifact
    from core.run.runner import run_recipe
    from core.steps import load_state
    from core.store import open_store, result_rows, sensitivity_map
    from tests.core.steps_support import outputs, sample_batch

    db, _variant, map_id = mapped
    m = sensitivity_map(open_store(db), map_id)
    target = int(m.body["artifact_bytes"] * 0.6)
    out = tmp_path / "mixed.yaml"
    assert main(["mixed-precision", "--sensitivity", str(map_id), "--target-mb", str(target / 1e6), "-o", str(out),
                 "--db", str(db)]) == 0
    printed = capsys.readouterr().out
    assert "quantize.linear_nbit: least predicted drop within" in printed and "search: exhaustive" in printed
    recipe = load_recipe(out)
    assert [e.step for e in recipe.chain] == ["test.scale", "quantize.linear_nbit"]
    assert recipe.chain[0].config == {"factor": 1.0}
    config = recipe.chain[1].config
    assert len(config["layer_bits"]) == 2 and config["embedding_bits"] is not None
    expected = plan(m, target_bytes=target)
    assert config == expected.step_config(config)
    # Rerun: the recipe makes the planned artifact, which reloads to the same outputs.
    assert run_recipe(recipe.to_dict(), db_url_or_path=tmp_path / "w.sqlite",
                      artifacts_dir=tmp_path / "a").type == "run_finished"
    row = result_rows(open_store(tmp_path / "w.sqlite"))[-1]
    folder = Path(row.artifact_path)
    loaded, rerun = load_artifact(folder), load_state(folder)
    batch = sample_batch(loaded.tokenizer)
    assert torch.equal(outputs(loaded.model, batch), outputs(rerun.model, batch))
    assert row.flags == [] or all(f["code"] != "not_smaller" for f in row.flags)
    # The predicted size is the real one, within the per-tensor overhead estimate.
    assert folder_bytes(folder) == pytest.approx(expected.predicted_bytes, rel=0.03)
    assert folder_bytes(folder) <= target * 1.03


def test_cli_appends_to_a_given_recipe_and_refuses_a_missing_map(mapped: tuple[Path, int, int], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from core.recipe import save_recipe

    db, _variant, map_id = mapped
    base = Recipe.from_dict({"model": "all-MiniLM-L6-v2", "task": "sst2",
                             "chain": [{"step": "finetune", "config": {"epochs": 1.0}}]})
    save_recipe(base, tmp_path / "in.yaml")
    assert main(["mixed-precision", "--sensitivity", str(map_id), "--max-drop", "100", "--recipe",
                 str(tmp_path / "in.yaml"), "-o", str(tmp_path / "out.yaml"), "--db", str(db)]) == 0
    written: Any = load_recipe(tmp_path / "out.yaml")
    assert [e.step for e in written.chain] == ["finetune", "quantize.linear_nbit"]
    assert set(written.chain[1].config["layer_bits"]) <= {0, 2, 4, 8}
    capsys.readouterr()
    assert main(["mixed-precision", "--sensitivity", "999", "--max-drop", "1", "-o", str(tmp_path / "x.yaml"),
                 "--db", str(db)]) == 2
    assert "No sensitivity map 999" in capsys.readouterr().err
