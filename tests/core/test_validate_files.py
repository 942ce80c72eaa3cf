"""validate performs every check that needs no training (issue 16): the model folder's files, a
hub id that cannot be fetched, lengths against the model's positions, stored variants, and the
vocabularies of models that distillation combines. Each of these used to say "valid" and fail
only at run time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tests.core.fakes  # noqa: F401  (registers the test-only steps)
from core.recipe import Recipe, validate_recipe
from tests.helpers import SPELLING_VOCAB, tiny_bert_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "tiny": tiny_bert_folder(root / "tiny"),
        "small": tiny_bert_folder(root / "small", layers=1),  # same vocabulary, fewer layers
        "spelling": tiny_bert_folder(root / "spelling", vocab=SPELLING_VOCAB),  # another vocabulary
    }


def _problems(model: Path | str, chain: list[dict] | None = None, **extra: object) -> list:
    return validate_recipe(Recipe.from_dict({"model": str(model), "task": "sst2", "chain": chain or [], **extra}))


def _copy(models: dict[str, Path], tmp_path: Path, name: str = "tiny") -> Path:
    return Path(shutil.copytree(models[name], tmp_path / name))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("truncated weights", "model.safetensors is damaged or not a safetensors file"),
        ("config not JSON", "config.json is not valid JSON"),
        ("no tokenizer", "has no tokenizer"),
        ("tokenizer not JSON", "tokenizer.json is damaged or not a tokenizer file"),
    ],
)
def test_a_broken_model_folder_is_a_problem_of_the_model(models: dict[str, Path], tmp_path: Path, damage: str,
                                                         needle: str) -> None:
    folder = _copy(models, tmp_path)
    if damage == "truncated weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1000])
    elif damage == "config not JSON":
        (folder / "config.json").write_text("{'model_type': 'bert'}", encoding="utf-8")
    elif damage == "no tokenizer":
        for name in ("tokenizer.json", "vocab.txt"):
            (folder / name).unlink()
    else:
        (folder / "tokenizer.json").write_text("not json", encoding="utf-8")
    problems = _problems(folder)
    assert [p.field for p in problems] == ["model"]
    assert needle in problems[0].message and str(folder) in problems[0].message
    assert "model folder" in problems[0].fix


def test_a_hub_id_while_offline_is_a_problem_naming_the_id() -> None:
    problems = _problems("google-bert/bert-base-uncased")
    assert [p.field for p in problems] == ["model"]
    assert "'google-bert/bert-base-uncased' is not downloaded" in problems[0].message
    assert "packaged default" in problems[0].fix


def test_lengths_beyond_the_models_positions_are_problems(models: dict[str, Path]) -> None:
    problems = _problems(models["tiny"], [{"step": "finetune", "config": {"max_length": [64, 256]}}],
                         measure={"latency_seq_len": 129, "max_length": 128})
    assert [(p.index, p.field) for p in problems] == [(None, "measure.latency_seq_len"), (0, "max_length")]
    assert "takes at most 128" in problems[0].message and "to 128 or less" in problems[0].fix
    assert "is 256 tokens" in problems[1].message
    assert _problems(models["tiny"], measure={"latency_seq_len": 128, "max_length": 128}) == []


def test_teacher_with_another_vocabulary_is_refused_naming_both_sizes(models: dict[str, Path]) -> None:
    chain = [{"step": "test.distil"}]
    problems = _problems(models["tiny"], chain, teacher=str(models["spelling"]))
    assert [(p.index, p.field) for p in problems] == [(0, "teacher")]
    message = problems[0].message
    assert f"the teacher '{models['spelling']}' has a vocabulary of {len(SPELLING_VOCAB)} tokens" in message
    assert "the student of 46 tokens" in message
    assert _problems(models["tiny"], chain, teacher=str(models["small"])) == []


def test_distill_student_or_teacher_model_with_another_vocabulary_is_refused(models: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    student = {"student": "model", "student_model": str(models["spelling"]), "intermediate_epochs": 0}
    problems = _problems(models["tiny"], [{"step": "distill", "config": student}])
    assert [(p.index, p.field) for p in problems] == [(0, "student_model")]
    assert "teacher (the model entering this step) has a vocabulary of 46 tokens" in problems[0].message
    assert f"of {len(SPELLING_VOCAB)} tokens" in problems[0].message
    # The teacher named in the step decides: the spelling teacher with the spelling student is fine.
    both = {**student, "teacher_model": str(models["spelling"])}
    assert _problems(models["tiny"], [{"step": "distill", "config": both}]) == []
    same = {**student, "student_model": str(models["small"])}
    assert _problems(models["tiny"], [{"step": "distill", "config": same}]) == []
    # A damaged or unreachable named model is a problem of its field.
    broken = _copy(models, tmp_path, "small")
    (broken / "config.json").unlink()
    problems = _problems(models["tiny"], [{"step": "distill", "config": {**student, "student_model": str(broken)}}])
    assert [(p.index, p.field) for p in problems] == [(0, "student_model")] and "no config.json" in problems[0].message
    problems = _problems(models["tiny"], [{"step": "distill", "config": {"teacher_model": "org/teacher"}}])
    assert [(p.index, p.field) for p in problems] == [(0, "teacher_model")] and "'org/teacher'" in problems[0].message


def test_vocabulary_after_a_vocabulary_step_is_not_guessed(models: dict[str, Path]) -> None:
    """vocab.reduce's output depends on the training text: a later comparison would be a guess."""
    student = {"student": "model", "student_model": str(models["spelling"]), "intermediate_epochs": 0}
    problems = _problems(models["tiny"], [{"step": "vocab.reduce"}, {"step": "distill", "config": student}])
    assert problems == []


def test_a_stored_variant_as_the_model_is_checked(models: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(models, tmp_path)
    manifest = {"format": 1, "task": "squad", "head": "qa", "transforms": [], "aliases": {}, "traits": []}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    problems = _problems(folder)
    assert [p.field for p in problems] == ["model"] and "with a qa head; task sst2 needs a classification" in (
        problems[0].message)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "head": "banana"}), encoding="utf-8")
    problems = _problems(folder)
    assert [p.field for p in problems] == ["model"] and "field 'head'" in problems[0].message


def test_validation_reads_each_model_file_once_per_version(models: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The window validates on every edit: unchanged folders are not read again."""
    import core.models as core_models

    _problems(models["tiny"], teacher=str(models["small"]))
    calls: list[Path] = []
    real = core_models._inspect
    monkeypatch.setattr(core_models, "_inspect", lambda folder: calls.append(folder) or real(folder))
    for _ in range(3):
        assert _problems(models["tiny"], [{"step": "test.distil"}], teacher=str(models["small"])) == []
    assert calls == []


def test_a_layer_the_model_does_not_have_is_a_problem_before_the_run(models: dict[str, Path]) -> None:
    """Layers kept in float naming layer 99 of a 2-layer model passed validation and failed only when the run
    reached int8, after the fine-tune had run. A distillation before it may change the depth: only running
    tells then."""
    int8 = {"step": "quantize.dynamic_int8", "config": {"keep_float_layers": [1, 99]}}
    problems = _problems(models["tiny"], [{"step": "finetune"}, int8])
    assert [(p.index, p.field) for p in problems] == [(1, "keep_float_layers")]
    assert "names layer(s) 99, but the model's layers are 0-1" in problems[0].message
    assert problems[0].fix == "name layers 0-1, or none"
    assert _problems(models["tiny"], [{"step": "finetune"}, {**int8, "config": {"keep_float_layers": [0, 1]}}]) == []
    assert "0-0" in _problems(models["small"], [int8])[0].message
    distilled = _problems(models["tiny"], [{"step": "finetune"}, {"step": "distill"}, int8])
    assert "keep_float_layers" not in [p.field for p in distilled]


def test_a_stored_variant_of_another_task_is_checked_for_its_labels(models: dict[str, Path], tmp_path: Path) -> None:
    """Validation applies load_start's rule without torch: QNLI's head carries over to RTE (the same labels);
    an SST-2 head does not, nor a three-label one; the window shows this before a run starts."""
    folder = _copy(models, tmp_path)
    manifest = {"format": 1, "task": "qnli", "head": "classification", "transforms": [], "aliases": {}, "traits": []}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert _problems(folder, task="rte") == []
    (folder / "manifest.json").write_text(json.dumps({**manifest, "task": "sst2"}), encoding="utf-8")
    problems = _problems(folder, task="rte")
    assert [p.field for p in problems] == ["model"]
    assert "made for task sst2: task sst2's labels (negative, positive) are not task rte's" in problems[0].message
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    problems = _problems(folder, task="rte")
    assert [p.field for p in problems] == ["model"] and "has 3 labels; task rte has 2" in problems[0].message
