"""Custom tasks read the user's files in every format, map labels deterministically, and name bad columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import DataError
from core.tasks import get_task
from core.tasks.custom import custom_task, label_vocabulary

ROWS = [
    {"s1": f"sentence {i}", "s2": f"other {i}", "y": ["pos", "neg", "neutral"][i % 3], "score": i / 10}
    for i in range(20)
]


def _write(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_format_loads_the_same_task(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"data{suffix}", ROWS)
    task = custom_task(path, text="s1", text_pair="s2", label="y", name=f"t{suffix[1:]}")
    assert task.id == f"custom:t{suffix[1:]}" and task.pair and task.num_labels == 3
    assert task.label_names == ("neg", "neutral", "pos")  # sorted, deterministic
    train, dev = task.load("train"), task.load("dev")
    assert train.num_rows == 16 and dev.num_rows == 4
    assert set(train["text"]).isdisjoint(dev["text"])
    first = next(r for r in list(train) + list(dev) if r["text"] == "sentence 0")
    assert first["label"] == task.label_names.index("pos") and first["text_pair"] == "other 0"
    assert get_task(task.id) is task


def test_split_is_seeded_and_reproducible(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    a = custom_task(path, text="s1", label="y", seed=1, register=False)
    b = custom_task(path, text="s1", label="y", seed=1, register=False)
    c = custom_task(path, text="s1", label="y", seed=2, register=False)
    assert list(a.load("dev")["text"]) == list(b.load("dev")["text"])
    assert list(a.load("dev")["text"]) != list(c.load("dev")["text"])


def test_a_stratified_split_keeps_each_labels_share_in_dev(tmp_path: Path) -> None:
    # 90 rows of one label, 10 of another: a plain 20 % split of seed 1 puts half the rare rows in dev
    rows = [{"s1": f"sentence {i}", "y": "rare" if i % 10 == 0 else "common"} for i in range(100)]
    path = _write(tmp_path / "skewed.csv", rows)
    plain = custom_task(path, text="s1", label="y", seed=1, register=False)
    rare = plain.label_names.index("rare")
    assert list(plain.load("dev")["label"]).count(rare) == 5  # what stratifying fixes
    for seed in (0, 1, 2, 3):
        task = custom_task(path, text="s1", label="y", seed=seed, stratify=True, register=False)
        dev, train = list(task.load("dev")["label"]), list(task.load("train")["label"])
        assert len(dev) == 20 and dev.count(rare) == 2 and train.count(rare) == 8
        assert set(task.load("dev")["text"]).isdisjoint(task.load("train")["text"])
    again = custom_task(path, text="s1", label="y", seed=3, stratify=True, register=False)
    assert list(again.load("dev")["text"]) == list(task.load("dev")["text"])  # seeded
    assert "each label in that share" in task.note


@pytest.mark.parametrize(("common", "rare", "fraction"), [(60, 2, 0.2), (80, 3, 0.05), (50, 2, 0.8), (16, 2, 0.2)])
def test_a_rare_label_lands_on_both_sides_of_a_stratified_split(tmp_path: Path, common: int, rare: int,
                                                                 fraction: float) -> None:
    """Rounding each label's share, as scikit-learn's stratified split does, gave a 2-row label no dev row
    (60 + 2 rows at 20 %) or no training row (50 + 2 at 80 %), for every seed."""
    rows = [{"s1": f"s {i}", "y": "b" if i < rare else "a"} for i in range(common + rare)]
    path = _write(tmp_path / "few.csv", rows)
    for seed in range(4):
        task = custom_task(path, text="s1", label="y", seed=seed, dev_fraction=fraction, stratify=True, register=False)
        b = task.label_names.index("b")
        assert 1 <= list(task.load("dev")["label"]).count(b) < rare
        assert list(task.load("dev")["label"]).count(b) + list(task.load("train")["label"]).count(b) == rare


def test_a_stratified_split_it_cannot_make_is_refused_naming_the_fix(tmp_path: Path) -> None:
    rows = [{"s1": f"s {i}", "y": "lone" if i == 0 else "many"} for i in range(20)]
    path = _write(tmp_path / "lone.csv", rows)
    with pytest.raises(DataError, match=r"at least 2 rows of each label.*'lone' has one.*turn stratify off.*dialog"):
        custom_task(path, text="s1", label="y", stratify=True, register=False)
    # too few rows for any split: that message first, not the label's
    small = _write(tmp_path / "small.csv", rows[:5])
    with pytest.raises(DataError, match=r"has 5 rows.*at least \d+ rows in this file"):
        custom_task(small, text="s1", label="y", stratify=True, register=False)
    with pytest.raises(DataError, match="needs classification labels"):
        custom_task(_write(tmp_path / "d.csv", ROWS), text="s1", label="score", kind="regression", stratify=True)
    with pytest.raises(DataError, match="a dev file is given"):
        custom_task(path, text="s1", label="y", dev_path=path, stratify=True)


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    with pytest.raises(DataError, match=r"no column 'sentence'.*columns found: s1, s2, y, score"):
        custom_task(path, text="sentence", label="y")
    with pytest.raises(DataError, match=r"no column 'label' for the label.*s1, s2, y, score"):
        custom_task(path, text="s1", label="label")
    with pytest.raises(DataError, match=r"no column 'b'.*second text"):
        custom_task(path, text="s1", text_pair="b", label="y")


def test_bad_values_and_files_are_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", ROWS)
    with pytest.raises(DataError, match="row 1 of column 'y' is not a number"):
        custom_task(path, text="s1", label="y", kind="regression")
    with pytest.raises(DataError, match="does not exist"):
        custom_task(tmp_path / "nope.csv", text="s1", label="y")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        custom_task(tmp_path / "d.xlsx", text="s1", label="y")
    one = _write(tmp_path / "one.csv", [{"s1": "a", "y": "pos"}, {"s1": "b", "y": "pos"}])
    with pytest.raises(DataError, match="single label"):
        custom_task(one, text="s1", label="y")


def test_two_files_and_regression(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.jsonl", ROWS[:15])
    dev = _write(tmp_path / "dev.jsonl", ROWS[15:])
    task = custom_task(train, dev_path=dev, text="s1", text_pair="s2", label="score", kind="regression")
    assert task.head == "regression" and task.primary_metric == "pearson"
    assert task.load("dev").num_rows == 5 and task.load("dev")["label"][0] == pytest.approx(1.5)
    assert "dev.jsonl" in task.note


def test_binary_pair_task_is_scored_mrpc_style(tmp_path: Path) -> None:
    rows = [{"a": f"x{i}", "b": f"y{i}", "same": i % 2} for i in range(20)]
    task = custom_task(_write(tmp_path / "p.csv", rows), text="a", text_pair="b", label="same")
    assert task.label_names == ("0", "1")
    scores = task.score([1, 1, 0, 0], [1, 0, 1, 0])
    assert scores["accuracy"] == 0.5 and scores["f1"] == 0.5 and "matthews_correlation" in scores


def test_label_vocabulary_orders_numbers_numerically() -> None:
    assert label_vocabulary(["10", "2", "1"]) == ["1", "2", "10"]
    assert label_vocabulary(["b", "a", "B"]) == ["B", "a", "b"]
    assert label_vocabulary([1, 1.0, "1", 0]) == ["0", "1"]


# --- a recipe's data: the file and its column mapping travel with the recipe ------------------------

def _reviews(folder: Path, n: int = 40) -> Path:
    words = ["the movie was very good !", "the film is bad .", "a good film", "not a good movie"]
    return _write(folder / "reviews.csv", [{"review": words[i % 4], "stars": "pos" if i % 4 in (0, 2) else "neg"}
                                           for i in range(n)])


def test_recipe_data_round_trips_and_reads_relative_paths_from_the_recipe_folder(tmp_path: Path) -> None:
    from core.recipe import DataSpec, dumps_recipe, load_recipe, loads_recipe, recipe_task

    _reviews(tmp_path)
    text = ("model: all-MiniLM-L6-v2\n"
            "data: {path: reviews.csv, text: review, label: stars, dev_fraction: 0.25}\n"
            "chain: []\n")
    recipe = loads_recipe(text)
    assert recipe.task == "custom:reviews"  # derived from the file name
    assert recipe.data == DataSpec(path="reviews.csv", text="review", label="stars", dev_fraction=0.25)
    assert loads_recipe(dumps_recipe(recipe)) == recipe
    assert "stratify" not in dumps_recipe(recipe)  # written only when on: older files and their keys unchanged
    stratified = loads_recipe(text.replace("dev_fraction: 0.25", "dev_fraction: 0.25, stratify: true"))
    assert stratified.data.stratify and loads_recipe(dumps_recipe(stratified)) == stratified
    assert loads_recipe(text.replace("dev_fraction: 0.25", "dev_fraction: 0.25, stratify: null")) == recipe
    (tmp_path / "r.yaml").write_text(text)
    loaded = load_recipe(tmp_path / "r.yaml")
    assert loaded.data is not None and Path(loaded.data.path) == tmp_path / "reviews.csv"
    task = recipe_task(loaded)
    assert task.id == "custom:reviews" and task.label_names == ("neg", "pos")
    assert len(task.load("dev")) == 10 and len(task.load("train")) == 30
    assert get_task("custom:reviews") is task  # registered for the rest of the process


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"path": "r.csv", "text": "review"}, "data.label", "missing"),
    ({"path": "r.csv", "text": "review", "label": "stars", "colour": "red"}, "data.colour", "unknown data key"),
    ({"path": "r.csv", "text": "review", "label": "stars", "kind": "ranking"}, "data.kind", "classification"),
    ({"path": "r.csv", "text": "review", "label": "stars", "dev_fraction": 1.5}, "data.dev_fraction", "between 0 and 1"),
    ({"path": "r.csv", "text": "review", "label": "stars", "stratify": "yes"}, "data.stratify", "true or false"),
    ({"path": "r.csv", "text": "review", "label": "stars", "stratify": True, "dev_path": "d.csv"}, "data.stratify",
     "remove one of them"),
    ({"path": "r.csv", "text": "review", "label": "stars", "stratify": True, "kind": "regression"}, "data.stratify",
     "classification labels"),
    ("r.csv", "data", "mapping"),
])
def test_a_malformed_data_mapping_is_refused_naming_the_field(data: object, field: str, words: str) -> None:
    from core.recipe import Recipe, RecipeError

    with pytest.raises(RecipeError, match=words) as info:
        Recipe.from_dict({"model": "all-MiniLM-L6-v2", "data": data})
    assert info.value.field == field


def test_data_and_task_must_agree() -> None:
    from core.recipe import Recipe, RecipeError

    with pytest.raises(RecipeError, match="custom:reviews") as info:
        Recipe.from_dict({"model": "m", "task": "sst2", "data": {"path": "reviews.csv", "text": "t", "label": "l"}})
    assert info.value.field == "task"


def test_a_wrong_column_in_the_data_is_a_validation_problem_listing_the_columns(tmp_path: Path) -> None:
    from core.recipe import Recipe, validate_recipe

    path = _reviews(tmp_path)
    recipe = Recipe.from_dict({"model": "all-MiniLM-L6-v2", "data": {"path": str(path), "text": "text", "label": "stars"}})
    (problem,) = [p for p in validate_recipe(recipe, check_files=False) if p.field == "data"]
    assert "no column 'text'" in problem.message and "review, stars" in problem.message


def test_an_edited_data_file_is_read_again(tmp_path: Path) -> None:
    import os

    from core.recipe import DataSpec
    from core.tasks.custom import task_from_spec

    path = _reviews(tmp_path, n=40)
    spec = DataSpec(path=str(path), text="review", label="stars", name="edited")
    first = task_from_spec(spec)
    assert task_from_spec(spec) is first  # unchanged file and mapping: not read again
    _reviews(tmp_path, n=80)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = task_from_spec(spec)
    assert second is not first and len(second.load("train")) + len(second.load("dev")) == 80


def test_a_recipe_with_a_data_file_runs_in_the_worker(tmp_path: Path) -> None:
    from core.protocol import RunRequest
    from core.run.process import run_worker
    from core.store import list_runs, open_store, run_variants
    from tests.helpers import tiny_bert_folder

    model = tiny_bert_folder(tmp_path / "tiny")
    path = _reviews(tmp_path)
    recipe = {"model": str(model), "data": {"path": str(path), "text": "review", "label": "stars"},
              "measure": {"eval_batch_size": 8, "max_length": 16, "latency_batch_size": 2, "latency_seq_len": 8,
                          "latency_warmup": 0, "latency_repeats": 2, "threads": 1},
              "chain": [{"step": "prune.global_magnitude", "config": {"amount": 0.5}}]}
    request = RunRequest(recipe=recipe, db=str(tmp_path / "w.sqlite"), artifacts=str(tmp_path / "a"))
    outcome = run_worker(request, on_event=lambda _e: None)
    assert outcome.ok, outcome.message()
    store = open_store(tmp_path / "w.sqlite")
    (run,) = list_runs(store)
    assert run.task == "custom:reviews"
    variants = run_variants(store, run.id)
    assert [v.step_id for v in variants] == ["baseline", "prune.global_magnitude"]
    assert all(0.0 <= v.metrics["accuracy"] <= 1.0 and "f1" in v.metrics for v in variants)


# --- files too small, folders, broken lines, other encodings ------------------------------------------

def _labelled(n: int) -> list[dict]:
    return [{"s1": f"sentence {i}", "y": ["pos", "neg"][i % 2]} for i in range(n)]


def test_a_file_too_small_to_train_and_evaluate_is_refused_with_the_minimum_row_counts(tmp_path: Path) -> None:
    from core.tasks.custom import MIN_DEV_ROWS, MIN_TRAIN_ROWS, rows_needed

    with pytest.raises(DataError) as info:
        custom_task(_write(tmp_path / "two.csv", _labelled(2)), text="s1", label="y")
    message = str(info.value)
    assert "two.csv has 2 rows" in message and "1 to train on and 1 to evaluate on" in message
    assert f"at least {MIN_TRAIN_ROWS} training and {MIN_DEV_ROWS} evaluation rows" in message and f"at least {rows_needed(0.2)} rows" in message
    # the smallest file that is accepted, and one row fewer
    need = rows_needed(0.2)
    task = custom_task(_write(tmp_path / "enough.csv", _labelled(need)), text="s1", label="y", register=False)
    assert len(task.load("train")) >= MIN_TRAIN_ROWS and len(task.load("dev")) >= MIN_DEV_ROWS
    with pytest.raises(DataError, match=f"has {need - 1} rows"):
        custom_task(_write(tmp_path / "short.csv", _labelled(need - 1)), text="s1", label="y", register=False)
    # with a dev file, each file is counted on its own
    big, small = _write(tmp_path / "big.csv", _labelled(20)), _write(tmp_path / "small.csv", _labelled(2))
    with pytest.raises(DataError, match=f"small.csv has 2 rows; at least {MIN_DEV_ROWS} are needed for evaluation"):
        custom_task(big, dev_path=small, text="s1", label="y", register=False)
    with pytest.raises(DataError, match=f"small.csv has 2 rows; at least {MIN_TRAIN_ROWS} are needed for training"):
        custom_task(small, dev_path=big, text="s1", label="y", register=False)


def test_a_folder_given_as_the_data_file_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reviews.csv"  # a folder, even with a data file's name
    folder.mkdir()
    with pytest.raises(DataError, match="reviews.csv is a folder, not a data file") as info:
        custom_task(folder, text="s1", label="y")
    assert "does not exist" not in str(info.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_broken_json_line_is_reported_by_its_line_number(tmp_path: Path, suffix: str) -> None:
    lines = [json.dumps(r) for r in _labelled(20)]
    lines[6] = '{"s1": "sentence 6", "y": "pos"'  # the closing brace is missing on line 7
    path = tmp_path / f"data{suffix}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 7 is not valid JSON") as info:
        custom_task(path, text="s1", label="y", register=False)
    assert "position" not in str(info.value) and "offset" not in str(info.value)


def test_a_broken_json_array_is_reported_by_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    text = json.dumps(_labelled(20), indent=1).replace('"sentence 5",', '"sentence 5"', 1)
    path.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"sentence 5"' in t) + 1
    with pytest.raises(DataError, match=f"not valid JSON at line {line}"):
        custom_task(path, text="s1", label="y", register=False)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_a_latin1_file_gets_a_hint_to_save_it_as_utf8(tmp_path: Path, suffix: str) -> None:
    rows = _labelled(20)
    rows[3]["s1"] = "un film très réussi"
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        text = json.dumps(rows, ensure_ascii=False)
    elif suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = _write(path, rows).read_text(encoding="utf-8")
    path.write_bytes(text.encode("latin-1"))  # as a spreadsheet or an old editor saves it
    with pytest.raises(DataError) as info:
        custom_task(path, text="s1", label="y", register=False)
    message = str(info.value)
    assert str(path) in message and "not UTF-8" in message and "0xE8" in message and "Save it as UTF-8" in message
    assert "codec can't decode" not in message


# --- empty cells: refused with the file, the column and the rows, never a class or a sentence of nothing ---

def _stars(n: int = 48, blank: object = "") -> list[dict]:
    """A newcomer's reviews: the label 'stars' is good/bad, left empty in every 7th row (7, 14, ... counted from 1)."""
    return [{"review": f"review {i}", "stars": blank if i % 7 == 0 else ("good" if i % 2 else "bad"),
             "score": blank if i % 7 == 0 else i / 10} for i in range(1, n + 1)]


@pytest.mark.parametrize(("suffix", "blank"), [(".csv", ""), (".csv", "   "), (".tsv", ""), (".jsonl", ""),
                                               (".jsonl", None), (".json", None), (".parquet", None)])
def test_a_label_column_with_empty_cells_is_refused_naming_the_column_and_rows(
        tmp_path: Path, suffix: str, blank: object) -> None:
    path = _write(tmp_path / f"reviews{suffix}", _stars(blank=blank))
    with pytest.raises(DataError) as info:
        custom_task(path, text="review", label="stars", register=False)
    message = str(info.value)
    assert str(path) in message and "column 'stars' (the label)" in message
    assert "row 7 has no value" in message and "rows 14, 21, 28, 35 and 1 more (6 of 48 rows" in message
    assert "Fill in a label or remove those rows" in message


def test_two_empty_labels_read_as_english(tmp_path: Path) -> None:
    rows = _labelled(20)
    rows[3]["y"] = rows[9]["y"] = ""
    with pytest.raises(DataError, match=r"row 4 has no value in column 'y' \(the label\), nor does row 10 \(2 of 20"):
        custom_task(_write(tmp_path / "d.csv", rows), text="s1", label="y", register=False)


def test_a_single_empty_label_is_named_by_its_row(tmp_path: Path) -> None:
    rows = _labelled(20)
    rows[9]["y"] = ""
    with pytest.raises(DataError, match=r"row 10 has no value in column 'y' \(the label; .*remove that row$"):
        custom_task(_write(tmp_path / "d.csv", rows), text="s1", label="y", register=False)


@pytest.mark.parametrize(("suffix", "blank"), [(".csv", ""), (".csv", "nan"), (".csv", " "), (".jsonl", None),
                                               (".parquet", float("nan"))])
def test_a_regression_target_that_is_empty_or_nan_is_refused(tmp_path: Path, suffix: str, blank: object) -> None:
    path = _write(tmp_path / f"scores{suffix}", _stars(blank=blank))
    with pytest.raises(DataError) as info:
        custom_task(path, text="review", label="score", kind="regression", register=False)
    message = str(info.value)
    assert str(path) in message and "column 'score' (the score)" in message
    assert "row 7 has no value" in message and "rows 14, 21, 28, 35 and 1 more" in message
    assert "Fill in a number" in message and "is not a number" not in message


@pytest.mark.parametrize("infinite", ["inf", "-Infinity"])
def test_an_infinite_regression_target_is_refused(tmp_path: Path, infinite: str) -> None:
    path = _write(tmp_path / "scores.csv", _stars(blank=infinite))
    with pytest.raises(DataError, match=r"row 7 of column 'score' is not a finite number: '.*'\. Correct it"):
        custom_task(path, text="review", label="score", kind="regression", register=False)


@pytest.mark.parametrize("blank", ["", "  ", None])
def test_an_empty_text_cell_is_refused_like_an_empty_label(tmp_path: Path, blank: object) -> None:
    rows = [dict(r, stars="good" if i % 2 else "bad") for i, r in enumerate(_stars())]
    rows[2]["review"] = blank
    path = _write(tmp_path / "reviews.jsonl", rows)
    with pytest.raises(DataError, match=r"row 3 has no value in column 'review' \(the text.*Fill in the text"):
        custom_task(path, text="review", label="stars", register=False)
    pair = [dict(r, other="x" if i != 4 else "") for i, r in enumerate(rows)]
    pair[2]["review"] = "filled"
    with pytest.raises(DataError, match=r"row 5 has no value in column 'other' \(the second text"):
        custom_task(_write(tmp_path / "pair.csv", pair), text="review", text_pair="other", label="stars",
                    register=False)


def test_empty_cells_in_the_dev_file_name_that_file(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _labelled(20))
    dev_rows = _labelled(8)
    dev_rows[1]["y"] = ""
    dev = _write(tmp_path / "dev.csv", dev_rows)
    with pytest.raises(DataError, match=r"dev\.csv: row 2 has no value in column 'y'"):
        custom_task(train, dev_path=dev, text="s1", label="y", register=False)


def test_the_same_file_filled_in_still_loads(tmp_path: Path) -> None:
    rows = [dict(r, stars="good" if i % 2 else "bad") for i, r in enumerate(_stars())]
    task = custom_task(_write(tmp_path / "reviews.csv", rows), text="review", label="stars", register=False)
    assert task.label_names == ("bad", "good") and len(task.load("train")) + len(task.load("dev")) == 48
    scores = custom_task(_write(tmp_path / "s.csv", _stars(blank=0.0)), text="review", label="score",
                         kind="regression", register=False)
    assert scores.head == "regression" and len(scores.load("train")) + len(scores.load("dev")) == 48


def test_empty_labels_are_a_data_problem_so_the_chain_is_not_ready(tmp_path: Path) -> None:
    from core.recipe import DataSpec, Recipe, validate_recipe
    from core.tasks.preview import preview

    path = _write(tmp_path / "reviews.csv", _stars())
    recipe = Recipe.from_dict({"model": "all-MiniLM-L6-v2", "data": {"path": str(path), "text": "review", "label": "stars"}})
    (problem,) = [p for p in validate_recipe(recipe, check_files=False) if p.field == "data"]
    assert "column 'stars'" in problem.message and "row 7 has no value" in problem.message
    with pytest.raises(DataError, match="row 7 has no value"):  # the Data tab reads it the same way
        preview(DataSpec(path=str(path), text="review", label="stars"))
