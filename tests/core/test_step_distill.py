"""Distillation: students are built as asked, both stages pull them towards the teacher, bad configs fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.errors import ConfigError, ModelLoadError
from core.pooling import FIRST_TOKEN, MEAN, POOLING_FIELD, _mean_into_first_token, pooling_of, set_pooling
from core.state import INITIAL_TRAITS
from core.steps.base import get_step
from core.steps.distill import attention_mse, masked_mse, parse_layers, uniform_mapping
from core.steps.training import train
from tests.core.steps_support import make_ctx, outputs, sample_batch, tiny_state, tiny_task

STEP = get_step("distill")
FAST = dict(batch_size=8, max_length=32, train_size=16, intermediate_lr=3e-3, lr=3e-3)


def _cfg(**kw: object):
    return STEP.config_cls(**{**FAST, **kw})


def test_uniform_mapping_is_tinybert_s() -> None:
    assert uniform_mapping(3, 6) == [2, 4, 6]
    assert uniform_mapping(4, 12) == [3, 6, 9, 12]
    assert uniform_mapping(2, 2) == [1, 2]
    assert parse_layers(" 2, 4,6") == [2, 4, 6]


def test_layer_subset_student_copies_the_chosen_layers(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, layers=4)
    cfg = _cfg(keep_layers="2,4")
    student, mapping, _ = STEP(cfg)._student(teacher, cfg, make_ctx(tmp_path, tiny_task()))
    assert student.model.config.num_hidden_layers == 2 and mapping == [2, 4]
    t_sd, s_sd = teacher.model.state_dict(), student.model.state_dict()
    for s_idx, t_idx in ((0, 1), (1, 3)):
        for k, v in s_sd.items():
            if k.startswith(f"bert.encoder.layer.{s_idx}."):
                assert torch.equal(v, t_sd[k.replace(f"layer.{s_idx}.", f"layer.{t_idx}.")])
    for k in ("bert.embeddings.word_embeddings.weight", "classifier.weight", "bert.pooler.dense.weight"):
        assert torch.equal(s_sd[k], t_sd[k])
    assert len(teacher.model.bert.encoder.layer) == 4  # the teacher is not modified


def test_stage1_pulls_hidden_states_and_attentions_towards_the_teacher(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, layers=4, seed=1)
    cfg = _cfg(student="fresh", student_layers=2, hidden_size=16, num_heads=2, ffn_size=32,
               intermediate_epochs=10, prediction_epochs=0)
    out = STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task()))
    stage1 = out.info["distill"]["stage1"]
    assert stage1["projection"] is True
    assert stage1["final_loss"] < 0.6 * stage1["first_loss"]
    assert out.model.config.hidden_size == 16 and out.model.config.num_hidden_layers == 2
    assert out.transforms == [] and out.traits == INITIAL_TRAITS
    # the attention implementation is restored on both models after stage 1
    assert out.model.config._attn_implementation == teacher.model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("head", ["classification", "regression", "qa"])
def test_stage2_pulls_predictions_towards_the_teacher(tmp_path: Path, head: str) -> None:
    teacher = tiny_state(tmp_path, head, layers=2, seed=1)
    train(teacher, make_ctx(tmp_path, tiny_task(head)), epochs=10, lr=3e-3, batch_size=8, max_length=32,
          warmup_ratio=0.0, train_size=16)  # a teacher with something to teach
    batch = sample_batch(teacher.tokenizer, head)
    cfg = _cfg(student="fresh", student_layers=1, hidden_size=16, intermediate_epochs=0, prediction_epochs=10,
               temperature=2.0)
    ctx = make_ctx(tmp_path, tiny_task(head))
    init, _, _ = STEP(cfg)._student(teacher, cfg, ctx)  # the same seeded initialisation apply() starts from
    gap0 = (outputs(init.model, batch) - outputs(teacher.model, batch)).abs().mean()
    out = STEP(cfg).apply(teacher, ctx)
    gap = (outputs(out.model, batch) - outputs(teacher.model, batch)).abs().mean()
    assert gap < 0.9 * gap0
    assert out.info["distill"]["stage2"]["steps"] == 20
    assert "stage1" not in out.info["distill"]


def test_the_step_budget_caps_each_stage(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, layers=2)
    # 16 rows at batch 8 = 2 steps per epoch: 5 epochs would be 10 steps in each stage
    cfg = _cfg(student="fresh", student_layers=1, hidden_size=16, intermediate_epochs=5, prediction_epochs=5,
               max_steps=3)
    info = STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task())).info["distill"]
    assert info["stage1"]["steps"] == 3 and info["stage2"]["steps"] == 3
    uncapped = STEP(_cfg(student="fresh", student_layers=1, hidden_size=16, intermediate_epochs=1,
                         prediction_epochs=1, max_steps=50)).apply(teacher, make_ctx(tmp_path, tiny_task()))
    assert uncapped.info["distill"]["stage1"]["steps"] == 2  # the epochs cap a larger budget


def test_distillation_is_deterministic_given_the_seed(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, layers=2)
    cfg = _cfg(student="fresh", student_layers=1, hidden_size=16, intermediate_epochs=1, prediction_epochs=1)
    a = STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task(), seed=5)).model.state_dict()
    b = STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task(), seed=5)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _record_pooling(folder: Path, pooling: str) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, POOLING_FIELD: pooling}))


def _mean_hooked(model: torch.nn.Module) -> bool:
    return _mean_into_first_token in model.base_model._forward_hooks.values()


@pytest.mark.parametrize("teacher_pooling", [MEAN, FIRST_TOKEN])
def test_another_model_as_student(tmp_path: Path, teacher_pooling: str) -> None:
    teacher = tiny_state(tmp_path, layers=2, hidden=32)
    set_pooling(teacher.model, teacher_pooling)
    other = tiny_state(tmp_path, layers=1, hidden=16, seed=3, name="other")
    folder = tmp_path / "other_1_16_3"  # a headless encoder, like the packaged model
    _record_pooling(folder, FIRST_TOKEN if teacher_pooling == MEAN else MEAN)  # the student's own says otherwise
    out = STEP(_cfg(student="model", student_model=str(folder), intermediate_epochs=1, prediction_epochs=1)).apply(
        teacher, make_ctx(tmp_path, tiny_task()))
    assert out.model.config.hidden_size == 16
    # the student's new head learned from the teacher's logits, reading the sentence the same way
    assert pooling_of(out.model.config) == teacher_pooling == out.info["distill"]["pooling"]
    assert _mean_hooked(out.model) == (teacher_pooling == MEAN)
    assert out.tokenizer.get_vocab() == other.tokenizer.get_vocab()
    with pytest.raises(ModelLoadError, match="hub"):
        STEP(_cfg(student="model", student_model="someone/not-here")).apply(teacher, make_ctx(tmp_path, tiny_task()))


def test_a_student_model_with_a_trained_head_keeps_its_pooling(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, layers=2, hidden=32)
    set_pooling(teacher.model, MEAN)
    trained = tiny_state(tmp_path, layers=1, hidden=16, seed=3, name="other")  # its classification head saved below
    folder = tmp_path / "other_1_16_3"
    trained.model.save_pretrained(folder)
    _record_pooling(folder, FIRST_TOKEN)
    logs: list[str] = []
    cfg = _cfg(student="model", student_model=str(folder), intermediate_epochs=1, prediction_epochs=0)
    out = STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task(), log=logs.append))
    assert pooling_of(out.model.config) == FIRST_TOKEN and not _mean_hooked(out.model)
    assert any("keeps its pooling (first_token)" in line for line in logs)
    assert out.info["head_trained"]  # it came trained from the checkpoint; stage 1 left it alone


def test_a_qa_student_does_not_take_a_pooling(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, "qa", layers=2, hidden=32)
    setattr(teacher.model.config, POOLING_FIELD, MEAN)  # recorded, e.g. by a classification step before
    tiny_state(tmp_path, layers=1, hidden=16, seed=3, name="other")
    cfg = _cfg(student="model", student_model=str(tmp_path / "other_1_16_3"), intermediate_epochs=1,
               prediction_epochs=1)
    out = STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task("qa")))
    assert not _mean_hooked(out.model)  # the mean would overwrite [CLS], SQuAD 2.0's no-answer position
    assert "pooling" not in out.info["distill"]


@pytest.mark.parametrize(("student", "teacher_trained", "prediction_epochs", "expected"), [
    ("fresh", True, 0, False),           # a new head that stage 2 never trained
    ("fresh", True, 1, True),
    ("teacher_layers", True, 0, True),   # the teacher's head, copied
    ("teacher_layers", False, 0, False),
])
def test_the_student_s_head_is_called_trained_only_when_it_is(tmp_path: Path, student: str, teacher_trained: bool,
                                                             prediction_epochs: int, expected: bool) -> None:
    teacher = tiny_state(tmp_path, layers=2, hidden=32)
    teacher.info["head_trained"] = teacher_trained
    cfg = _cfg(student=student, student_layers=1, hidden_size=16, intermediate_epochs=1,
               prediction_epochs=prediction_epochs)
    assert STEP(cfg).apply(teacher, make_ctx(tmp_path, tiny_task())).info["head_trained"] is expected


def test_wider_students_and_bad_configs_are_refused_naming_the_field(tmp_path: Path) -> None:
    teacher = tiny_state(tmp_path, layers=2, hidden=32)
    ctx = make_ctx(tmp_path, tiny_task())
    for kw, field in (
        (dict(student="fresh", student_layers=1, hidden_size=64, num_heads=2), "hidden_size"),
        (dict(student="fresh", student_layers=1, hidden_size=16, ffn_size=128), "ffn_size"),
        (dict(student="fresh", student_layers=3), "student_layers"),
        (dict(keep_layers="1,3"), "keep_layers"),
        (dict(student_layers=3), "student_layers"),
    ):
        with pytest.raises(ConfigError, match=field) as e:
            STEP(_cfg(**kw)).apply(teacher, ctx)
        assert e.value.field == field
    # hidden size not divisible by the teacher's 4 heads (known only once the teacher is seen)
    teacher4 = tiny_state(tmp_path, layers=2, hidden=32, heads=4, name="h4")
    with pytest.raises(ConfigError, match="hidden_size") as e:
        STEP(_cfg(student="fresh", student_layers=1, hidden_size=30)).apply(teacher4, ctx)
    assert e.value.field == "hidden_size"
    for kw, field in (
        (dict(temperature=0.0), "temperature"),
        (dict(hidden_size=30, num_heads=4), "hidden_size"),
        (dict(keep_layers="4,2"), "keep_layers"),
        (dict(keep_layers="two"), "keep_layers"),
        (dict(student="model"), "student_model"),
        (dict(alpha=1.5), "alpha"),
        (dict(intermediate_epochs=0, prediction_epochs=0), "prediction_epochs"),
    ):
        with pytest.raises(ConfigError, match=field) as e:
            _cfg(**kw)
        assert e.value.field == field


def test_masked_losses_ignore_padding() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float32)
    ref = torch.cat([(s[0, :3] - t[0, :3]).pow(2).reshape(-1), (s[1] - t[1]).pow(2).reshape(-1)]).mean()
    assert masked_mse(s, t, mask).item() == pytest.approx(ref.item())
    a, b = torch.rand(2, 2, 5, 5, generator=g), torch.rand(2, 2, 5, 5, generator=g)
    ref_att = torch.cat([(a[0, :, :3, :3] - b[0, :, :3, :3]).pow(2).reshape(-1), (a[1] - b[1]).pow(2).reshape(-1)]).mean()
    assert attention_mse(a, b, mask).item() == pytest.approx(ref_att.item())


def test_the_work_estimate_counts_both_stages_steps(tmp_path: Path) -> None:
    """``training_work`` (the runner's progress plan) counts the optimizer steps both stages run."""
    teacher = tiny_state(tmp_path, layers=4, seed=1)
    step = STEP(_cfg(intermediate_epochs=2, prediction_epochs=3, max_steps=5))
    info = step.apply(teacher, make_ctx(tmp_path, tiny_task())).info["distill"]
    steps = info["stage1"]["steps"] + info["stage2"]["steps"]
    assert steps == 4 + 5  # 16 rows in batches of 8: 2 epochs = 4 steps; 3 epochs = 6, capped at 5
    assert step.training_work(16) == 2.5 * steps * 8
    assert STEP(_cfg(intermediate_epochs=0, prediction_epochs=1, train_size=None)).training_work(80) == 2.5 * 10 * 8
