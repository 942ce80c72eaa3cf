"""The shipped recipes (one per published system) load, round-trip, validate against the real step
and task registries (a renamed step fails them), and run end to end on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.recipe import dumps_recipe, expand, load_recipe, validate_recipe

RECIPES = Path(__file__).resolve().parents[2] / "resources" / "recipes"
SHIPPED = ["tinybert_further_compressed.yaml", "compressed_squad2.yaml"]


def test_one_recipe_per_published_system_is_shipped() -> None:
    assert sorted(p.name for p in RECIPES.glob("*.yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_validates(name: str) -> None:
    path = RECIPES / name
    recipe = load_recipe(path)
    assert dumps_recipe(recipe) == path.read_text(encoding="utf-8")  # files are in canonical form
    problems = validate_recipe(recipe, check_files=False)  # the packaged model may be absent in CI
    assert problems == [], "\n".join(map(str, problems))
    assert len(expand(recipe)) == 2  # each ships a two-value sweep on its compression step


def _shrunk(recipe_dict: dict) -> dict:
    """The same chain on a sliver of data, so the real steps run end to end in seconds."""
    import dataclasses

    from core.steps.base import get_step

    small = {"train_size": 16, "corpus_limit": 32, "batch_size": 8, "max_length": 64}
    chain = []
    for entry in recipe_dict["chain"]:
        names = {f.name for f in dataclasses.fields(get_step(entry["step"]).config_cls)}
        config = {**entry["config"], **{k: v for k, v in small.items() if k in names}}
        chain.append({**entry, "config": config})
    measure = {**recipe_dict["measure"], "eval_limit": 8, "eval_batch_size": 8, "max_length": 64,
               "latency_batch_size": 2, "latency_seq_len": 16, "latency_warmup": 0, "latency_repeats": 2,
               "threads": 1}
    return {**recipe_dict, "chain": chain, "measure": measure}


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_runs_end_to_end_and_exports(name: str, tmp_path: Path) -> None:
    from core import protocol as p
    from core.recipe import Recipe
    from core.run.runner import run_recipe
    from core.store import EXPORT_FORMATS, export_table, open_store, results_table, run_variants

    recipe = load_recipe(RECIPES / name)
    # The shipped chain on a tiny BERT: the runner, every step, codec and measurement for real, in seconds.
    # (The full recipes on the packaged MiniLM are run by hand/CI with workbench-cli; see the report.)
    from tests.helpers import tiny_bert_folder

    model = tiny_bert_folder(tmp_path / "tiny", layers=4, hidden=32)
    small = Recipe.from_dict({**_shrunk(recipe.to_dict()), "model": str(model)})
    outcome = run_recipe(small, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "artifacts")
    assert isinstance(outcome, p.RunFinished), outcome
    store = open_store(tmp_path / "w.sqlite")
    variants = run_variants(store, outcome.run_id)
    from core.recipe import variant_tree

    assert len(variants) == variant_tree(small).count()  # every node of the sweep tree, prefix once
    assert all(v.metrics.get("artifact_bytes") for v in variants)
    table = results_table(store, run_ids=[outcome.run_id])
    for fmt in EXPORT_FORMATS:
        assert len(export_table(table, fmt).strip().splitlines()) > len(variants) or fmt == "json"
