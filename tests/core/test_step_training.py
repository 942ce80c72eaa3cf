"""The shared training loop: deterministic, learns, distils, reports progress and can be cancelled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import StepCancelled
from core.steps.base import get_step
from core.steps.training import soft_cross_entropy, train
from tests.core.steps_support import make_ctx, outputs, sample_batch, tiny_state, tiny_task

KW = dict(epochs=2, lr=1e-3, batch_size=4, max_length=32, warmup_ratio=0.1, train_size=16)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_identical_weights_and_other_seed_does_not(tmp_path: Path) -> None:
    task = tiny_task()
    runs = []
    for seed in (3, 3, 4):
        state = tiny_state(tmp_path)
        train(state, make_ctx(tmp_path, task, seed=seed), **KW)
        runs.append(_weights(state.model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_training_changes_weights_and_reports_stats_and_progress(tmp_path: Path) -> None:
    state = tiny_state(tmp_path)
    before = _weights(state.model)
    seen: list[float] = []
    stats = train(state, make_ctx(tmp_path, tiny_task(), progress=lambda f, m="": seen.append(f)), **KW)
    # 16 examples / batch 4 = 4 batches per epoch, 2 epochs
    assert stats["steps"] == 8 and stats["batches_per_epoch"] == 4
    assert stats["examples_seen"] == 32
    assert seen == pytest.approx([i / 8 for i in range(1, 9)])
    assert stats["seconds"] > 0
    assert any(not torch.equal(before[k], v) for k, v in state.model.state_dict().items())
    assert not state.model.training


def test_finetune_learns_the_tiny_sentiment_task(tmp_path: Path) -> None:
    state = tiny_state(tmp_path)
    step = get_step("finetune")(get_step("finetune").config_cls(lr=3e-3, epochs=20, batch_size=8, train_size=None))
    out = step.apply(state, make_ctx(tmp_path, tiny_task(n=32)))
    batch = sample_batch(out.tokenizer)
    preds = outputs(out.model, batch).argmax(-1).tolist()
    assert preds[:2] == [1, 0]
    assert out.info["finetune"]["steps"] == 80
    # the input state is untouched (steps copy before training)
    assert not torch.equal(outputs(state.model, batch), outputs(out.model, batch))


@pytest.mark.parametrize("head", ["regression", "qa"])
def test_regression_and_qa_heads_train(tmp_path: Path, head: str) -> None:
    state = tiny_state(tmp_path, head)
    stats = train(state, make_ctx(tmp_path, tiny_task(head)), **{**KW, "epochs": 6, "lr": 3e-3})
    first = train(tiny_state(tmp_path, head), make_ctx(tmp_path, tiny_task(head)), **{**KW, "epochs": 0.25})
    assert stats["mean_loss_last_epoch"] < first["final_loss"]


def test_cancel_stops_training(tmp_path: Path) -> None:
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(StepCancelled):
        train(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(), cancelled=cancelled), **KW)
    assert calls["n"] == 4


def test_soft_cross_entropy_matches_the_published_formula() -> None:
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    T = 2.0
    p = torch.softmax(t / T, -1)
    ref = -(p * torch.log_softmax(s / T, -1)).sum(-1).mean() * T**2
    # equivalently KL(p || q) + H(p), all times T^2
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), p, reduction="batchmean")
    entropy = -(p * p.log()).sum(-1).mean()
    assert soft_cross_entropy(s, t, T).item() == pytest.approx(ref.item())
    assert soft_cross_entropy(s, t, T).item() == pytest.approx(((kl + entropy) * T**2).item(), rel=1e-5)


@pytest.mark.parametrize("head", ["classification", "regression", "qa"])
def test_pure_distillation_pulls_student_towards_teacher(tmp_path: Path, head: str) -> None:
    teacher = tiny_state(tmp_path, head, seed=1, name="teacher")
    student = tiny_state(tmp_path, head, seed=2, name="student")
    batch = sample_batch(student.tokenizer, head)
    gap_before = (outputs(student.model, batch) - outputs(teacher.model, batch)).abs().mean()
    train(student, make_ctx(tmp_path, tiny_task(head)), teacher=teacher, distill_alpha=1.0, temperature=2.0,
          **{**KW, "epochs": 6, "lr": 3e-3})
    gap_after = (outputs(student.model, batch) - outputs(teacher.model, batch)).abs().mean()
    assert gap_after < gap_before
