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

from core.analysis.mixed import FLOAT, add_to_chain, options, plan, tighten, uniform
from core.cli import main
from core.errors import ConfigError
from core.recipe import Recipe, load_recipe
from core.steps.nbit import LinearNbitConfig
from core.steps.quantize_int8 import DynamicInt8Config
from core.store.analysis import SensitivityCell, SensitivityMap

BITS = (4, 6, 8)


def fake_map(parts: list[str], drops: dict[tuple[str, int], float], params: dict[str, int], *, grouping: str = "layer",
             transforms: tuple[str, ...] = tuple(f"nbit:{b}" for b in BITS), base_bytes: int | None = None,
             half_widths: dict[tuple[str, int], float | None] | None = None) -> SensitivityMap:
    """A map as core.analysis.sensitivity stores it, with chosen drops (points), the half widths of
    their intervals (points; 0 unless given, None for no interval) and part sizes."""
    sizes = {p: {"params": params[p], "float_bytes": 4 * params[p], "tensors": 2, "linear_params": params[p] - 10,
                 "linear_rows": 10, "linear_biases": 1, "embedding_params": params[p] - 10 if p == "embeddings" else 0,
                 "embedding_rows": 10 if p == "embeddings" else 0} for p in parts}
    cells = []
    for pos, p in enumerate(parts):
        for t in transforms:
            key = (p, 8 if t == "int8" else int(t.split(":")[1]))
            half = (half_widths or {}).get(key, 0.0)
            low, high = (None, None) if half is None else ((-drops[key] - half) / 100, (-drops[key] + half) / 100)
            cells.append(SensitivityCell(t, p, pos, None, -drops[key] / 100, low, high, 100, 0))
    body = {"parts": parts, "sizes": sizes, "points": 100.0,
            "artifact_bytes": base_bytes or sum(4 * v for v in params.values()) + 5000}
    return SensitivityMap(id=7, variant_id=3, metric="accuracy", base_metric=0.9, examples=100, seed=0,
                          grouping=grouping, transforms=list(transforms), status="finished", body=body, seconds=1.0,
                          created_at="", cells=cells)


def random_map(seed: int, n_layers: int = 4) -> SensitivityMap:
    rng = random.Random(seed)
    parts = ["embeddings", *(f"layer {i}" for i in range(n_layers)), "head"]
    params = {p: rng.randint(1000, 50_000) for p in parts}
    drops, halves = {}, {}
    for p in parts:
        worst = rng.uniform(0, 10)
        drops[(p, 4)], drops[(p, 6)], drops[(p, 8)] = worst, worst * rng.uniform(0, 0.5), rng.uniform(-0.5, 0.3)
        for b in BITS:
            halves[(p, b)] = rng.uniform(0, 3)
    return fake_map(parts, drops, params, half_widths=halves)


def brute_force(m: SensitivityMap, *, target_bytes: int | None = None, max_drop: float | None = None,
                estimate: str = "interval", min_bits: int = 0, max_bits: int = 99) -> tuple[float, float]:
    """Every assignment, written out with itertools: the best (drop, bytes) for the budget."""
    opts = options(m, "nbit", estimate)
    fixed = m.body["artifact_bytes"] - sum(choices[0].bytes for choices in opts.values())
    width = {FLOAT: 32, "nbit:4": 4, "nbit:6": 6, "nbit:8": 8}
    kept = [[c for c in cs if min_bits <= width[c.name] <= max_bits] for cs in opts.values()]
    best: tuple[float, float] | None = None
    for combo in itertools.product(*kept):
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
        q = plan(m, max_drop=budget, estimate="point")
        assert (q.predicted_bytes, q.predicted_drop) == pytest.approx(brute_force(m, max_drop=budget, estimate="point"))
    # Bounded widths: the same optimum among the allowed choices only.
    for lo, hi in ((6, 99), (0, 8), (6, 8)):
        p = plan(m, max_drop=20.0, min_bits=lo if lo else None, max_bits=hi if hi < 99 else None)
        assert all(lo <= (32 if c.name == FLOAT else c.bits) <= hi for c in p.choices)
        assert (p.predicted_bytes, p.predicted_drop) == pytest.approx(brute_force(m, max_drop=20.0, min_bits=lo, max_bits=hi))


@pytest.mark.parametrize("seed", range(8))
def test_greedy_search_stays_within_budget_and_near_the_optimum(seed: int) -> None:
    m = random_map(seed, n_layers=5)
    for budget in (0.5, 2.0, 6.0):
        exact = plan(m, max_drop=budget)
        greedy = plan(m, max_drop=budget, exhaustive_limit=0)
        assert greedy.method == "greedy" and greedy.predicted_drop <= budget + 1e-9
        assert greedy.predicted_bytes >= exact.predicted_bytes  # never better than the optimum...
        assert greedy.predicted_bytes <= exact.predicted_bytes * 1.6  # ...and not far off on these maps
    for budget in (2.0, 6.0):  # bounded widths: greedy starts from the widest allowed choice, not float
        bounded = plan(m, max_drop=budget + 3 * 6, max_bits=8, exhaustive_limit=0)
        exact = plan(m, max_drop=budget + 3 * 6, max_bits=8)
        assert FLOAT not in [c.name for c in bounded.choices] and bounded.predicted_drop <= budget + 18 + 1e-9
        assert exact.predicted_bytes <= bounded.predicted_bytes <= exact.predicted_bytes * 1.6
    target = int(m.body["artifact_bytes"] * 0.45)
    greedy = plan(m, target_bytes=target, exhaustive_limit=0)
    assert greedy.predicted_bytes <= target and greedy.predicted_drop >= plan(m, target_bytes=target).predicted_drop - 1e-9


def test_greedy_is_optimal_when_every_layer_is_alike() -> None:
    parts = ["embeddings", "layer 0", "layer 1", "layer 2", "head"]
    drops = {(p, b): {4: 3.0, 6: 1.0, 8: 0.0}[b] for p in parts for b in BITS}
    m = fake_map(parts, drops, dict.fromkeys(parts, 10_000))
    for budget in (0.0, 1.0, 2.5, 4.0):
        assert plan(m, max_drop=budget, exhaustive_limit=0).predicted_bytes == plan(m, max_drop=budget).predicted_bytes


def test_measured_gains_count_as_no_drop_with_the_point_estimate_and_the_plan_says_so() -> None:
    parts = ["embeddings", "layer 0", "head"]
    drops = {(p, b): -1.0 for p in parts for b in BITS}  # every transform "improved" the metric: noise
    p = plan(fake_map(parts, drops, dict.fromkeys(parts, 1000)), max_drop=0.0, estimate="point")
    assert p.predicted_drop == 0.0 and all(c.name == "nbit:4" for c in p.choices)
    assert all(c.measured == pytest.approx(1.0) and c.drop == 0.0 for c in p.choices)
    assert any("search: exhaustive over 64 assignment(s)" in line for line in p.lines())
    assert "each the measured change, gains read as 0" in p.lines()[1]


def test_the_interval_estimate_reads_each_choice_at_the_pessimistic_end_of_its_interval() -> None:
    """A measured gain on few examples (wide interval) is not free: the default estimate charges
    the low end of the paired interval, so a precisely measured small loss beats it."""
    parts = ["embeddings", "layer 0", "head"]
    drops = {(p, b): 0.0 for p in parts for b in BITS}
    drops[("layer 0", 4)] = -1.0  # a measured gain of 1 point...
    halves = {(p, b): 0.0 for p in parts for b in BITS}
    halves[("layer 0", 4)] = 6.0  # ...+-6 points: as pessimistic as a 5-point loss
    drops[("layer 0", 6)], halves[("layer 0", 6)] = 0.5, 0.25  # a loss of 0.5 [0.25, 0.75]
    m = fake_map(parts, drops, dict.fromkeys(parts, 1000), half_widths=halves)
    by_name = {c.name: c for c in options(m, "nbit")["layer 0"]}
    assert by_name["nbit:4"].drop == pytest.approx(5.0) and by_name["nbit:4"].measured == pytest.approx(1.0)
    assert by_name["nbit:6"].drop == pytest.approx(0.75)
    assert (by_name["nbit:4"].ci_low, by_name["nbit:4"].ci_high) == pytest.approx((-5.0, 7.0))
    pessimistic = plan(m, max_drop=1.0)
    assert [c.name for c in pessimistic.choices] == ["nbit:4", "nbit:6", "nbit:4"]
    assert pessimistic.predicted_drop == pytest.approx(0.75) and pessimistic.estimate == "interval"
    assert "each the pessimistic end of its paired 95 % interval" in pessimistic.lines()[1]
    assert any("measured -0.50 [-0.75, -0.25]" in line for line in pessimistic.lines())
    optimistic = plan(m, max_drop=1.0, estimate="point")  # the old reading takes the "gain"
    assert [c.name for c in optimistic.choices] == ["nbit:4", "nbit:4", "nbit:4"] and optimistic.predicted_drop == 0.0
    # With a budget of 0 both of layer 0's low widths are refused, its exact zero at 8 bits kept.
    assert [c.name for c in plan(m, max_drop=0.0).choices] == ["nbit:4", "nbit:8", "nbit:4"]
    with pytest.raises(ConfigError, match="measure it on more examples or plan with the point estimate"):
        plan(fake_map(parts, drops, dict.fromkeys(parts, 1000), half_widths={("head", 8): None}), max_drop=1.0)
    with pytest.raises(ConfigError, match="estimate must be one of interval, point"):
        plan(m, max_drop=1.0, estimate="mean")


def test_bounded_widths_uniform_rivals_and_tightening() -> None:
    parts = ["embeddings", "layer 0", "layer 1", "head"]
    drops = {(p, b): {4: 2.0, 6: 0.2, 8: 0.0}[b] for p in parts for b in BITS}
    halves = {(p, b): {4: 3.0, 6: 0.5, 8: 0.3}[b] for p in parts for b in BITS}
    halves[("layer 1", 6)] = 1.5  # the most uncertain 6-bit cell
    drops[("embeddings", 6)], halves[("embeddings", 6)] = 0.0, 0.3  # as safe as 8 bits for the biggest part
    m = fake_map(parts, drops, {"embeddings": 40_000, "layer 0": 10_000, "layer 1": 10_000, "head": 1000},
                 half_widths=halves)
    eight = uniform(m, 8)
    assert [c.name for c in eight.choices] == ["nbit:8"] * 4 and eight.predicted_drop == pytest.approx(4 * 0.3)
    assert eight.predicted_bytes == m.body["artifact_bytes"] - sum(4 * v for v in (40_000, 10_000, 10_000, 1000)) + sum(
        c.bytes for c in eight.choices)
    # Smaller than uniform 8-bit at no more predicted drop: nothing in float, nothing at 4 bits here.
    smaller = plan(m, max_drop=eight.predicted_drop, max_bits=8)
    assert FLOAT not in [c.name for c in smaller.choices]
    assert smaller.predicted_bytes < eight.predicted_bytes and smaller.predicted_drop <= eight.predicted_drop + 1e-9
    assert [c.name for c in smaller.choices] == ["nbit:6", "nbit:8", "nbit:8", "nbit:8"]
    assert "at most 8 bits (no float)" in smaller.lines()[2]
    no_four = plan(m, max_drop=100.0, min_bits=6)
    assert all(c.name != "nbit:4" for c in no_four.choices) and "at least 6 bits" in no_four.lines()[2]
    # Tightening: the chosen part with the widest interval goes one width up, then the plan is made again.
    six = plan(m, target_bytes=uniform(m, 6).predicted_bytes, min_bits=6)
    assert [c.name for c in six.choices] == ["nbit:6"] * 4
    assert tighten(six) == ("layer 1", 8)
    raised = plan(m, target_bytes=six.predicted_bytes + 3000, min_bits=6, floors={"layer 1": 8})
    assert raised.choices[2].name == "nbit:8" and "layer 1 at least 8 bits" in raised.lines()[2]
    assert tighten(plan(m, max_drop=100.0, min_bits=8, max_bits=8)) is None  # nowhere to go
    assert tighten(plan(m, max_drop=0.0)) is None  # everything float already
    with pytest.raises(ConfigError, match="no measured choice for embeddings between 5 and 4 bits|above the most bits"):
        plan(m, max_drop=1.0, min_bits=5, max_bits=4)
    with pytest.raises(ConfigError, match="no part named layer 9"):
        plan(m, max_drop=1.0, floors={"layer 9": 8})
    with pytest.raises(ConfigError, match=r"the least predicted drop with these widths is 1\.20"):
        plan(m, max_drop=0.5, max_bits=8)
    with pytest.raises(ConfigError, match="has no nbit:5 cell for embeddings"):
        uniform(m, 5)


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
    with pytest.raises(ConfigError, match="the int8 scheme has one width, 8 bits, not 4"):
        uniform(m, 4, scheme="int8")  # was planned against int8 while saying "uniform 4-bit"
    with pytest.raises(ConfigError, match="between any and 3 bits"):
        plan(m, max_drop=1.0, max_bits=3)  # the map measured 4, 6 and 8 bits
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


def test_cli_plans_against_a_uniform_rival_with_bounded_widths_and_the_estimate_asked_for(
        mapped: tuple[Path, int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.store import open_store, sensitivity_map

    db, _variant, map_id = mapped
    with open_store(db) as store:
        m = sensitivity_map(store, map_id)
    for estimate in ("interval", "point"):
        out = tmp_path / f"{estimate}.yaml"
        assert main(["mixed-precision", "--sensitivity", str(map_id), "--drop-of-uniform", "8", "--max-bits", "8",
                     "--estimate", estimate, "-o", str(out), "--db", str(db)]) == 0
        printed = capsys.readouterr().out
        rival = uniform(m, 8, estimate=estimate)
        assert f"uniform 8-bit as the map predicts it: {rival.predicted_bytes / 1e6:.2f} MB" in printed
        words = "pessimistic end of its paired 95 % interval" if estimate == "interval" else "the measured change"
        assert words in printed and "at most 8 bits (no float)" in printed
        config = load_recipe(out).chain[-1].config
        assert 0 not in config["layer_bits"] and config["embedding_bits"] and config["head_bits"]  # nothing in float
        expected = plan(m, max_drop=rival.predicted_drop, max_bits=8, estimate=estimate)
        assert config == expected.step_config(config) and expected.predicted_bytes <= rival.predicted_bytes
    # any drop allowed: the smallest plan is 2 bits wherever the map measured them, unless bounded
    for bound, narrowest in (([], 2), (["--min-bits", "4"], 4)):
        assert main(["mixed-precision", "--sensitivity", str(map_id), "--max-drop", "100", *bound,
                     "-o", str(tmp_path / "b.yaml"), "--db", str(db)]) == 0
        config = load_recipe(tmp_path / "b.yaml").chain[-1].config
        widths = [b for b in [*config["layer_bits"], config["embedding_bits"]] if b]
        assert min(widths) == narrowest, widths
    assert main(["mixed-precision", "--sensitivity", str(map_id), "--size-of-uniform", "6", "-o",
                 str(tmp_path / "c.yaml"), "--db", str(db)]) == 2
    assert "has no nbit:6 cell" in capsys.readouterr().err
    for bad, words in ((["--max-drop", "nan"], "'nan' is not a finite number"),
                       (["--target-mb", "inf"], "'inf' is not a finite number"),
                       (["--max-drop", "1", "--min-bits", "0"], "0 is not above 0"),
                       (["--size-of-uniform", "-8"], "-8 is not above 0")):
        with pytest.raises(SystemExit) as refused:
            main(["mixed-precision", "--sensitivity", str(map_id), *bad, "-o", str(tmp_path / "n.yaml"), "--db", str(db)])
        assert refused.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "n.yaml").exists()
