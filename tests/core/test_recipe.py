"""Recipes: exact round trip in YAML and JSON, migration through the registry, validation that lists
every problem with its step, field and fix, and sweeps expanding into a shared-prefix tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tests.core.fakes  # noqa: F401  (registers the test-only steps)
from core.recipe import (
    Chain,
    ChainEntry,
    MeasureSettings,
    Recipe,
    RecipeError,
    check_recipe,
    dumps_recipe,
    expand,
    load_recipe,
    loads_recipe,
    save_recipe,
    validate_recipe,
    variant_tree,
)
from core.tasks.base import Task, register_task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _recipe(model: Path, chain: list[dict], **extra: object) -> Recipe:
    return Recipe.from_dict({"model": str(model), "task": "sst2", "chain": chain, **extra})


def _full_recipe(model: Path) -> Recipe:
    return Recipe(
        model=str(model),
        task="sst2",
        chain=Chain(
            (
                ChainEntry("test.train"),
                ChainEntry("test.scale", {"factor": [0.5, 1.5]}),
                ChainEntry("test.slow", {"seconds": 0.0, "chatter": False}, enabled=False),
                ChainEntry("test.renamed", {"amount": 0.25}, version=2),
            )
        ),
        seed=7,
        measure=MeasureSettings(eval_limit=None, threads=2, latency_repeats=5),
        teacher="parent",
        name="round trip",
        description="every field set",
    )


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_recipe_round_trips_exactly(tiny: Path, fmt: str) -> None:
    recipe = _full_recipe(tiny)
    text = dumps_recipe(recipe, fmt)
    again = loads_recipe(text, fmt)
    assert again == recipe
    assert dumps_recipe(again, fmt) == text  # the text is a fixed point
    other = "json" if fmt == "yaml" else "yaml"
    assert loads_recipe(dumps_recipe(again, other), other) == recipe


def test_recipe_files_choose_format_by_suffix(tiny: Path, tmp_path: Path) -> None:
    recipe = _full_recipe(tiny)
    save_recipe(recipe, tmp_path / "r.json")
    save_recipe(recipe, tmp_path / "r.yaml")
    json.loads((tmp_path / "r.json").read_text())  # really JSON
    assert load_recipe(tmp_path / "r.json") == load_recipe(tmp_path / "r.yaml") == recipe


def test_renamed_step_and_old_config_are_migrated_through_the_registry(tiny: Path) -> None:
    recipe = _recipe(tiny, [{"step": "test.old_name", "version": 1, "config": {"percent": 30}}])
    entry = recipe.chain[0]
    assert entry.step == "test.renamed"
    assert entry.version == 2
    assert entry.config == {"amount": 0.3}
    assert validate_recipe(recipe) == []


def test_import_paths_are_not_step_ids(tiny: Path) -> None:
    recipe = _recipe(tiny, [{"step": "tests.core.fakes.ScaleWeights"}])
    problems = validate_recipe(recipe)
    assert [p.field for p in problems] == ["step"]
    assert "unknown step" in problems[0].message


def test_valid_recipe_has_no_problems(tiny: Path) -> None:
    assert validate_recipe(_full_recipe(tiny)) == []


def test_every_problem_is_listed_with_step_field_and_fix(tiny: Path) -> None:
    recipe = _recipe(
        tiny,
        [
            {"step": "test.scale", "config": {"factor": "lots"}},  # wrong type
            {"step": "no.such.step"},  # unknown step
            {"step": "test.scale", "config": {"factr": 2.0}},  # unknown field
            {"step": "test.scale", "config": {"factor": 99.0}},  # out of range
        ],
    )
    problems = validate_recipe(recipe)
    assert [(p.index, p.field) for p in problems] == [(0, "factor"), (1, "step"), (2, "factr"), (3, "factor")]
    assert all(p.fix for p in problems)
    assert "must be a number" in problems[0].message and "'lots'" in problems[0].message
    assert "test.scale" in problems[1].fix  # the fix lists the known ids
    assert "factor" in problems[2].fix
    assert "<= 10.0" in problems[3].message
    assert str(problems[0]).startswith("step 1 (test.scale), field 'factor':")
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe)
    assert len(info.value.problems) == 4
    assert info.value.args[0].startswith("step 1 (test.scale)") and "3 more" in info.value.args[0]


def test_training_after_a_step_that_removes_trainable_names_both_steps(tiny: Path) -> None:
    problems = validate_recipe(_recipe(tiny, [{"step": "test.freeze"}, {"step": "test.train"}]))
    assert len(problems) == 1
    p = problems[0]
    assert (p.index, p.step) == (1, "test.train")
    assert "step 1 (test.freeze)" in p.message and "trainable" in p.message
    assert "move 'test.train' before step 1 (test.freeze)" in p.fix
    # Disabled steps do not count for the order.
    ok = _recipe(tiny, [{"step": "test.freeze", "enabled": False}, {"step": "test.train"}])
    assert validate_recipe(ok) == []


def test_distillation_needs_a_teacher(tiny: Path) -> None:
    problems = validate_recipe(_recipe(tiny, [{"step": "test.distil"}]))
    assert [(p.index, p.step, p.field) for p in problems] == [(0, "test.distil", "teacher")]
    assert "finetune" in problems[0].fix
    assert validate_recipe(_recipe(tiny, [{"step": "test.train"}, {"step": "test.distil"}])) == []
    assert validate_recipe(_recipe(tiny, [{"step": "test.distil"}], teacher="parent")) == []


def test_qa_step_on_a_classification_task(tiny: Path) -> None:
    problems = validate_recipe(_recipe(tiny, [{"step": "test.scale"}, {"step": "test.qa_only"}]))
    assert len(problems) == 1
    assert (problems[0].index, problems[0].step) == (1, "test.qa_only")
    assert "classification" in problems[0].message


def test_unknown_task_missing_model_and_missing_data(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = validate_recipe(Recipe.from_dict({"model": str(tmp_path / "nope"), "task": "no-task", "chain": []}))
    assert {p.field for p in problems} == {"model", "task"}

    import core.tasks.base as tasks_base

    monkeypatch.setattr(tasks_base, "datasets_dir", lambda: tmp_path)
    problems = validate_recipe(_recipe(tiny, []))
    assert [p.field for p in problems] == ["task"] and "missing" in problems[0].message


def test_training_step_on_a_task_without_training_data(tiny: Path) -> None:
    from core.tasks.base import get_task, is_task_registered

    if not is_task_registered("test-devonly"):
        sst2 = get_task("sst2")
        register_task(Task(id="test-devonly", title="dev only", family="custom", head="classification",
                           num_labels=2, metrics=("accuracy",), primary_metric="accuracy", loader=sst2.loader,
                           scorer=sst2.scorer, splits=("dev",)))
    recipe = Recipe.from_dict({"model": str(tiny), "task": "test-devonly", "chain": [{"step": "test.train"}]})
    problems = validate_recipe(recipe)
    assert len(problems) == 1 and "'train' split" in problems[0].message


def test_sweeps_expand_into_a_tree_sharing_prefixes(tiny: Path) -> None:
    recipe = _recipe(
        tiny,
        [
            {"step": "test.train"},
            {"step": "test.scale", "config": {"factor": [0.5, 1.0]}},
            {"step": "test.renamed", "config": {"amount": [0.1, 0.2, 0.3]}},
        ],
    )
    assert validate_recipe(recipe) == []
    tree = variant_tree(recipe)
    assert len(tree.children) == 1  # the shared prefix runs once
    train = tree.children[0]
    assert [c.step.label for c in train.children] == ["test.scale(factor=0.5)", "test.scale(factor=1.0)"]
    assert all(len(c.children) == 3 for c in train.children)
    assert tree.count() == 1 + 1 + 2 + 6
    variants = expand(recipe)
    assert len(variants) == 6
    grid = {(v[1].config.factor, v[2].config.amount) for v in variants}
    assert grid == {(f, a) for f in (0.5, 1.0) for a in (0.1, 0.2, 0.3)}


def test_each_sweep_value_is_validated_and_only_numbers_sweep(tiny: Path) -> None:
    problems = validate_recipe(_recipe(tiny, [{"step": "test.renamed", "config": {"amount": [0.1, 0.5, 2.0]}}]))
    assert [p.field for p in problems] == ["amount", "amount"]  # 0.5 (cross-field check) and 2.0 (range)
    problems = validate_recipe(_recipe(tiny, [{"step": "test.slow", "config": {"chatter": [True, False]}}]))
    assert len(problems) == 1 and "cannot be swept" in problems[0].message
    problems = validate_recipe(_recipe(tiny, [{"step": "test.scale", "config": {"factor": []}}]))
    assert len(problems) == 1 and "empty" in problems[0].message


def test_every_bad_field_of_a_step_is_named_at_once(tiny: Path) -> None:
    """The window marks each field: not only the first one the config's constructor stops at."""
    problems = validate_recipe(_recipe(tiny, [{"step": "test.slow", "config": {"seconds": -1.0, "chatter": "yes"}}]))
    assert sorted(p.field for p in problems) == ["chatter", "seconds"]
    assert all(p.index == 0 and p.fix for p in problems)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: x\ntask: sst2\nchain:\n  - step: [unclosed\n", encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(path) in str(info.value) and "YAML syntax error" in str(info.value)
    assert ":5:" in str(info.value) or ":4:" in str(info.value)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"model": "m", "task": "sst2", "chain": {"step": "x"}}, "chain must be a list"),
        ({"model": "m", "task": "sst2", "stepz": []}, "unknown recipe key(s) stepz"),
        ({"model": "m", "task": "sst2", "seed": "one"}, "seed must be a whole number"),
        ({"task": "sst2"}, "'model' is missing"),
        ({"model": "m", "task": "sst2", "chain": [{"config": {}}]}, "step 1 has no step id"),
        ({"model": "m", "task": "sst2", "measure": {"eval_limit": -1}}, "measure.eval_limit must be >= 1"),
        ({"model": "m", "task": "sst2", "measure": {"retime_on_driver": "yes"}},
         "measure.retime_on_driver must be true or false"),
        ({"model": "m", "task": "sst2", "format": 99}, "newer than this workbench reads"),
    ],
)
def test_malformed_recipes_fail_with_a_clear_message(data: dict, needle: str) -> None:
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(data)
    assert needle in str(info.value)


def test_chain_edits_return_new_chains() -> None:
    a, b, c = ChainEntry("test.train"), ChainEntry("test.scale"), ChainEntry("test.freeze")
    chain = Chain((a, b))
    assert chain.append(c).entries == (a, b, c)
    assert chain.insert(0, c).entries == (c, a, b)
    assert chain.move(0, 1).entries == (b, a)
    assert chain.remove(0).entries == (b,)
    assert chain.replace(1, c).entries == (a, c)
    assert chain.entries == (a, b)


def test_recipe_validation_and_client_modules_stay_torch_free(tiny: Path) -> None:
    """The GUI validates on every edit and talks to the worker: none of that may load torch."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "import core.recipe, core.store, core.run.process, core.protocol, core.cli, core.paths\n"
        "from core.recipe import Recipe, validate_recipe\n"
        f"r = Recipe.from_dict({{'model': {str(tiny)!r}, 'task': 'sst2', 'chain': [{{'step': 'nope'}}]}})\n"
        "assert len(validate_recipe(r)) == 1\n"
        "print(','.join(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_entry_without_version_is_read_as_the_current_version(tiny: Path) -> None:
    recipe = _recipe(tiny, [{"step": "test.renamed", "config": {"amount": 0.3}}])
    assert recipe.chain[0].version == 2 and recipe.chain[0].config == {"amount": 0.3}  # not migrated


# --- hostile recipe files (issue 16) ----------------------------------------------------------


def _alias_bomb(levels: int) -> str:
    """A 'billion laughs' recipe: each level lists the previous one nine times."""
    lines = ["model: all-MiniLM-L6-v2", "task: sst2", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    lines += ["chain:", "  - step: test.scale", f"    config: {{factor: *a{levels - 1}}}"]
    return "\n".join(lines) + "\n"


def test_yaml_aliases_are_refused_before_anything_expands() -> None:
    import time

    text = _alias_bomb(5)  # 9^5 = 59,049 values from a 400-byte file (9 levels: 387 million)
    assert len(text) < 600
    start = time.monotonic()
    with pytest.raises(RecipeError) as info:
        loads_recipe(text)
    assert time.monotonic() - start < 2
    message = str(info.value)
    assert "YAML alias '*a0'" in message and ":4:" in message and "write the repeated values out" in message
    assert len(message) < 400
    with pytest.raises(RecipeError, match="alias"):
        loads_recipe(_alias_bomb(9))  # 387,420,489 values: refused as quickly
    with pytest.raises(RecipeError, match="alias"):  # merge keys are aliases too
        loads_recipe("base: &b {model: m}\n<<: *b\ntask: sst2\n")


@pytest.mark.parametrize(
    ("text", "fmt", "needle"),
    [
        ("[" * 100_000, "json", "nested too deeply"),
        ("chain: " + "[" * 20_000, "yaml", "nested too deeply"),
        ("model: m\ntask: sst2\nseed: " + "9" * 5000 + "\n", "yaml", "more than 4,300 digits"),
        ('{"model": "m", "task": "sst2", "seed": ' + "9" * 5000 + "}", "json", "more than 4,300 digits"),
        ("model: m\ntask: sst2\nseed: 18446744073709551616\n", "yaml", "seed must fit in 64 bits"),
        ("1: x\nmodel: m\ntask: sst2\n", "yaml", "unknown recipe key(s) 1"),
        ("model: m\ntask: sst2\nmeasure: {7: 1, latency_repeats: 5}\n", "yaml", "unknown measurement setting(s) 7"),
        ("model: m\ntask: sst2\nchain: [{step: test.scale, 3: x}]\n", "yaml", "unknown key(s) 3"),
        ("model: m\ntask: sst2\nmeasure: {latency_repeats: 100000000}\n", "yaml", "latency_repeats must be <= 10,000"),
        ("model: m\ntask: sst2\nmeasure: {eval_batch_size: .nan}\n", "yaml", "eval_batch_size must be a whole number"),
    ],
)
def test_hostile_recipe_text_fails_with_a_clear_message(text: str, fmt: str, needle: str) -> None:
    with pytest.raises(RecipeError) as info:
        loads_recipe(text, fmt)
    assert needle in str(info.value) and len(str(info.value)) < 700


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1.0e+400"])
def test_nan_and_inf_in_a_step_field_are_problems_of_that_field(tiny: Path, value: str) -> None:
    text = f"model: {tiny}\ntask: sst2\nchain:\n  - step: finetune\n    config: {{lr: {value}}}\n"
    problems = validate_recipe(loads_recipe(text))
    assert [(p.index, p.field) for p in problems] == [(0, "lr")]
    assert "finite number" in problems[0].message and "set lr to a value > 0" in problems[0].fix


def test_nan_from_json_and_in_data_settings_are_refused(tiny: Path) -> None:
    chain = '[{"step": "prune.global_magnitude", "config": {"amount": NaN}}]'
    recipe = loads_recipe(f'{{"model": "{tiny}", "task": "sst2", "chain": {chain}}}', "json")
    assert [p.field for p in validate_recipe(recipe)] == ["amount"]
    for fraction in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(RecipeError, match="dev_fraction must be a number between 0 and 1"):
            data = f'{{"path": "d.csv", "text": "t", "label": "l", "dev_fraction": {fraction}}}'
            loads_recipe(f'{{"model": "m", "data": {data}}}', "json")


def test_problems_quote_huge_values_briefly(tiny: Path) -> None:
    big = "x" * 2_000_000
    recipe = _recipe(tiny, [{"step": "test.scale", "config": {"factor": big}}, {"step": big},
                            {"step": "distill", "config": {"keep_layers": big}}])
    problems = validate_recipe(recipe)
    assert len(problems) == 3
    for p in problems:
        assert len(str(p)) < 1500, str(p)[:200]
    assert "2,000,000 characters" in problems[0].message
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict({"model": "m", "task": "sst2", big: 1})
    assert len(str(info.value)) < 700


def test_too_many_sweep_values_are_summarised(tiny: Path) -> None:
    values = [11.0 + i for i in range(51)]  # every one above the maximum of 10
    problems = validate_recipe(_recipe(tiny, [{"step": "test.scale", "config": {"factor": values}}]))
    assert len(problems) == 11 and "41 more sweep values are refused" in problems[-1].message


def test_recipe_files_that_are_not_recipes(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("model: m\ntask: sst2\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RecipeError, match="line 3 is not UTF-8.*save the recipe as UTF-8"):
        load_recipe(latin1)
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(50 * 2**20)  # sparse: 50 MB that are never read
    with pytest.raises(RecipeError, match="a recipe is at most"):
        load_recipe(big)


def test_type_problems_are_worded_for_a_user_not_in_python_s_type_names(tiny: Path) -> None:
    """The chain's footer said "must be float, got 'nan'" while the field said "not a finite number", and
    "must be a list, got 'foo, layer.99'" with the fix "(default ())"."""
    recipe = _recipe(tiny, [{"step": "test.scale", "config": {"factor": "nan"}},
                            {"step": "quantize.dynamic_int8", "config": {"keep_float_layers": "foo, layer.99"}}])
    nan, listed = validate_recipe(recipe)
    assert "Factor (factor) must be a finite number, got the text 'nan'" in nan.message
    assert "Layers kept in float (keep_float_layers) must be a list of whole numbers, got 'foo, layer.99'" in listed.message
    assert listed.fix.endswith("(default none)") and "()" not in listed.fix
