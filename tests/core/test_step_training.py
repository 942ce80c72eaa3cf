"""The shared training loop: deterministic, learns, distils, reports progress and can be cancelled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import ConfigError, StepCancelled
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
    assert stats["seconds"] > 0 and stats["cpu_seconds"] > 0
    assert any(not torch.equal(before[k], v) for k, v in state.model.state_dict().items())
    assert not state.model.training


def test_finetune_learns_the_tiny_sentiment_task(tmp_path: Path) -> None:
    state = tiny_state(tmp_path)
    step = get_step("finetune")(get_step("finetune").config_cls(lr=3e-3, epochs=20, batch_size=8, train_size=None,
                                                                  early_stopping=False))
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


def test_the_step_budget_caps_the_epochs(tmp_path: Path) -> None:
    stats = train(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task()), **{**KW, "epochs": 10}, max_steps=5)
    assert stats["steps"] == 5 and stats["max_steps"] == 5


def test_early_stopping_holds_out_rows_keeps_the_best_weights_and_says_whether_it_learned(tmp_path: Path) -> None:
    from core.steps.training import EarlyStopping

    state = tiny_state(tmp_path)
    scores: list[tuple[str, int, float]] = []
    ctx = make_ctx(tmp_path, tiny_task(n=40))
    ctx.curve = lambda phase, series, step, value: scores.append((series, step, value))  # type: ignore[method-assign]
    stats = train(state, ctx, **{**KW, "epochs": 30, "lr": 3e-3, "train_size": None},
                  early_stopping=EarlyStopping(holdout=0.25, evals=30, patience=2))
    assert stats["holdout_examples"] == 10 and stats["train_examples"] == 30
    held = [(s, v) for series, s, v in scores if series == "held_out"]
    assert [list(x) for x in held] == stats["held_out_scores"]
    assert stats["best_held_out"] == max(v for _, v in held)
    assert stats["stopped_early"] == (stats["steps"] < 30 * 8)
    assert held[-1][0] == stats["steps"]  # the final weights are scored too
    # The kept weights are the ones the stats name: the held-out score of the model as returned.
    from core.measure.evaluation import predict

    task = ctx.task
    holdout = task.load("train").select(sorted(__import__("torch").randperm(40, generator=__import__("torch")
                                                       .Generator().manual_seed(ctx.seed)).tolist()[:10]))
    predictions, references = predict(state.model, state.tokenizer, task, holdout, max_length=stats["max_length"])
    assert task.score(predictions, references)["accuracy"] == pytest.approx(stats["kept_held_out"])
    assert stats["kept"] in ("best", "final")
    assert stats["learned"]["learned"] in (True, False) and "held-out accuracy" in stats["learned"]["summary"]


def _scripted_stopper(tmp_path: Path, right: list[int], patience: int = 2) -> tuple[object, torch.nn.Linear]:
    """A stopper scoring a fixed 200-row held-out slice: the i-th scoring gets ``right[i]`` rows right, and
    the module's weight is set to i before it, so the kept weights say which scoring they came from."""
    from core.steps.training import EarlyStopping, HeldOutScore, _Stopper, _worse_beyond_noise

    ctx = make_ctx(tmp_path, tiny_task())
    module = torch.nn.Linear(1, 1)
    references = [i % 2 for i in range(200)]
    calls = iter(range(len(right)))

    def evaluate() -> HeldOutScore:
        i = next(calls)
        with torch.no_grad():
            module.weight.fill_(float(i))
        wrong = {(37 * i + k) % 200 for k in range(200 - right[i])}  # other rows each time, as chance would
        predictions = [1 - r if k in wrong else r for k, r in enumerate(references)]
        return HeldOutScore(right[i] / 200, predictions, references)

    stopper = _Stopper(evaluate, EarlyStopping(evals=len(right), patience=patience), len(right), [module], ctx,
                       "Training", _worse_beyond_noise(ctx))
    return stopper, module


def test_the_learned_summary_reuses_the_kept_weights_held_out_score(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.measure.evaluation as evaluation
    from core.steps.training import EarlyStopping

    calls: list[int] = []
    real_predict = evaluation.predict

    def counting_predict(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_predict(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluation, "predict", counting_predict)
    stats = train(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(n=40)), **{**KW, "epochs": 4, "lr": 3e-3,
                  "train_size": None}, early_stopping=EarlyStopping(holdout=0.25, evals=4, patience=2))
    assert len(calls) == len(stats["held_out_scores"])  # no extra pass over the held-out rows for the summary
    assert stats["learned"]["value"] == pytest.approx(stats["kept_held_out"])
    assert stats["learned"]["examples"] == stats["holdout_examples"]


def test_early_stopping_without_a_noise_rule_is_refused(tmp_path: Path) -> None:
    from core.steps.training import EarlyStopping, HeldOutScore, run_loop

    ctx = make_ctx(tmp_path, tiny_task())
    with pytest.raises(ValueError, match="worse"):
        run_loop(ctx, parameters=[], modules=[], loader=[], loss_fn=lambda b: b, epochs=1, lr=1e-3, warmup_ratio=0.0,
                 evaluate=lambda: HeldOutScore(0.0, [], []), early_stopping=EarlyStopping())


def test_early_stopping_ignores_drops_within_noise_and_keeps_the_final_weights(tmp_path: Path) -> None:
    """An early lucky score (RTE: 0.56 at step 27) neither stops the run nor is rolled back to: the later
    scores are lower, but within the paired interval of 200 rows."""
    stopper, module = _scripted_stopper(tmp_path, [120, 114, 112, 113, 115])
    assert not any(stopper.after(step) for step in range(1, 6))
    out = stopper.finish(5)
    assert out["kept"] == "final" and out["kept_step"] == 5 and not out["stopped_early"]
    assert out["best_step"] == 1 and float(module.weight) == 4.0


def test_early_stopping_stops_and_rolls_back_on_a_drop_beyond_noise(tmp_path: Path) -> None:
    stopper, module = _scripted_stopper(tmp_path, [150, 180, 120, 150, 110, 100])
    # 0.75 and 0.6 lie below the best 0.9 beyond noise: the second such score stops the run (patience 2)
    assert [stopper.after(step) for step in range(1, 5)] == [False, False, False, True]
    out = stopper.finish(4)
    assert out["stopped_early"] and out["kept"] == "best" and out["kept_step"] == 2
    assert out["kept_held_out"] == pytest.approx(0.9) and float(module.weight) == 1.0


def test_length_grouped_batches_cover_every_row_once_per_epoch_with_little_padding() -> None:
    import random as rnd

    from core.steps.training import _LengthGrouped

    lengths = [rnd.Random(i).randint(5, 120) for i in range(1000)]
    sampler = _LengthGrouped(lengths, batch_size=32, seed=0)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(1000))
        padded = sum(max(lengths[i] for i in b) * len(b) for b in epoch)
        assert padded / sum(lengths) < 1.1  # random batches would pad to about 1.6x
    assert first != second  # reshuffled every epoch


def test_the_sequence_length_comes_from_the_data(tmp_path: Path) -> None:
    import datasets
    import numpy as np

    from core.steps.training import data_max_length

    state = tiny_state(tmp_path)
    words = ["good", "bad", "movie", "film", "the", "very"]
    texts = [" ".join(words[i % 6] for i in range(n)) for n in range(1, 101)]  # 3 to 102 tokens
    data = datasets.Dataset.from_dict({"text": texts, "label": [0] * len(texts)})
    lengths = [len(x) for x in state.tokenizer(texts)["input_ids"]]
    expected = int(np.ceil(np.percentile(lengths, 99) / 8) * 8)
    assert data_max_length(tiny_task(), state.tokenizer, data) == expected == 104
    assert data_max_length(tiny_task(), state.tokenizer, data, cap=64) == 64
    assert data_max_length(tiny_task("qa"), state.tokenizer, data) == 384  # QA windows keep the SQuAD length


def test_layer_wise_lr_decay_moves_the_lower_parts_less(tmp_path: Path) -> None:
    """With a tiny decay factor the embeddings barely move while the head trains as before; at 1 they move."""
    config_cls = get_step("finetune").config_cls
    moved = {}
    for decay in (1.0, 0.01):
        state = tiny_state(tmp_path)
        before = _weights(state.model)
        step = get_step("finetune")(config_cls(lr=3e-3, epochs=2, batch_size=8, train_size=None,
                                               early_stopping=False, layer_lr_decay=decay))
        after = step.apply(state, make_ctx(tmp_path, tiny_task(n=32))).model.state_dict()
        change = {k: float((after[k] - before[k]).abs().max()) for k in before if before[k].is_floating_point()}
        embedding = next(k for k in change if "word_embeddings" in k)
        head = next(k for k in change if k.startswith("classifier") and k.endswith("weight"))
        moved[decay] = change[embedding], change[head]
    assert moved[0.01][0] < moved[1.0][0] / 100  # embeddings train at 0.01 ** (layers + 1) of the rate
    assert moved[0.01][1] == pytest.approx(moved[1.0][1], rel=0.5)  # the head at the full rate either way
    with pytest.raises(ConfigError, match="layer_lr_decay"):
        config_cls(layer_lr_decay=float("nan"))


def test_head_first_trains_only_the_new_head_then_everything(tmp_path: Path) -> None:
    """LP-FT: the head-only phase leaves every encoder tensor as it was and moves the head; the encoder
    is trainable again afterwards, and the full fine-tune then moves it."""
    from core.layers import HEAD, tensor_parts
    from core.steps.training import batches, train_data, train_head_first

    state = tiny_state(tmp_path)
    ctx = make_ctx(tmp_path, tiny_task(n=32))
    before = _weights(state.model)
    data = train_data(state, ctx, train_size=None, max_length=32)
    loader = batches(state, ctx, data.features, batch_size=8)
    stats = train_head_first(state, ctx, loader, lambda b: state.model(**b).loss, fraction=0.5, lr=1e-3, epochs=2,
                             max_steps=None, weight_decay=0.01, max_grad_norm=1.0)
    assert stats["steps"] == 4  # half of 2 epochs x 4 batches
    parts = tensor_parts(state.model)
    after = state.model.state_dict()
    moved = {k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert moved and all(parts[k] == HEAD for k in moved)
    assert all(p.requires_grad for p in state.model.parameters())

    config_cls = get_step("finetune").config_cls
    progress: list[tuple[float, str]] = []
    ctx.progress = lambda fraction, message="": progress.append((fraction, message))  # type: ignore[method-assign]
    out = get_step("finetune")(config_cls(lr=3e-3, epochs=2, batch_size=8, train_size=None, early_stopping=False,
                                          head_first=0.5)).apply(tiny_state(tmp_path), ctx)
    # one progress bar over both loops: it never goes back, and the head-only steps take its first part
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    head_end = max(f for f, m in progress if m.startswith("Head first"))
    assert 0 < head_end < 0.5 and any(m.startswith("Training") for _, m in progress)
    info = out.info["finetune"]
    assert info["head_first"]["steps"] == 4 and info["steps"] == 8
    changed = out.model.state_dict()
    assert any(parts[k] != HEAD and not torch.equal(before[k], changed[k]) for k in before if before[k].is_floating_point())
    with pytest.raises(ConfigError, match="head_first"):
        config_cls(head_first=float("nan"))


def test_the_finetune_work_estimate_counts_the_steps_and_held_out_scorings_it_runs(tmp_path: Path) -> None:
    """The runner sizes a not-yet-timed step's share of the progress bar from ``training_work``: it must
    count the optimizer steps and held-out scorings the step really runs (a distillation guessed at a
    fifth of the measuring sat at 6-16 % of its bar for an hour)."""
    from core.steps.training import EarlyStopping

    step = get_step("finetune")(get_step("finetune").config_cls(lr=1e-3, epochs=2, batch_size=8, train_size=None))
    out = step.apply(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(n=40)))
    stats = out.info["finetune"]
    assert not stats["stopped_early"]
    scorings = EarlyStopping().evals + 1
    assert stats["holdout_examples"] == 4 and stats["steps"] == 2 * 5  # 36 rows in batches of 8, twice
    assert step.training_work(40) == 3 * stats["steps"] * 8 + stats["holdout_examples"] * scorings
    capped = get_step("finetune")(get_step("finetune").config_cls(batch_size=8, max_steps=3, early_stopping=False))
    assert capped.training_work(40) == 3 * 3 * 8
    assert capped.training_work(10_000) == capped.training_work(40)  # the step budget binds


def _imbalanced_mcc_task(n: int = 60) -> object:
    """tiny_task's sentences with half the negative ones dropped (two in three positive), scored by MCC (as CoLA)."""
    import dataclasses

    from core.tasks import metrics

    base = tiny_task(n=n)

    def loader(split: str) -> object:
        rows = base.loader(split)
        return rows.select([i for i, label in enumerate(rows["label"]) if label == 1 or i % 4 == 1])

    return dataclasses.replace(base, id="tiny_mcc", metrics=("matthews_correlation",),
                               primary_metric="matthews_correlation", loader=loader, scorer=metrics.matthews)


def test_the_tuned_decision_threshold_is_the_best_split_and_the_saved_artifact_carries_it(tmp_path: Path) -> None:
    """Against a brute-force search with scikit-learn's MCC over every cut of the held-out margins: the
    tuned threshold scores the maximum, is moved into the output bias, and survives save and reload."""
    import numpy as np
    from sklearn.metrics import matthews_corrcoef

    from core.artifacts import save_artifact
    from core.measure.evaluation import predict, predict_with_confidences
    from core.steps.base import load_state
    from core.steps.training import tune_decision_threshold

    task = _imbalanced_mcc_task()
    state = tiny_state(tmp_path, seed=3)
    ctx = make_ctx(tmp_path, task)
    rows = task.load("train")
    predictions, references, confidences = predict_with_confidences(state.model, state.tokenizer, task, rows,
                                                                    max_length=32)
    p1 = np.where(np.asarray(predictions) == 1, confidences, 1 - np.asarray(confidences))
    margins = np.log(p1) - np.log1p(-p1)
    brute = max(matthews_corrcoef(references, (margins > t).astype(int)) for t in [*margins - 1e-6, margins.max() + 1])
    bias_before = state.model.get_submodule("classifier").bias.detach().clone()

    info = tune_decision_threshold(state, ctx, rows, 32)
    assert info["held_out_before"] == pytest.approx(matthews_corrcoef(references, predictions))
    assert info["held_out_after"] == pytest.approx(brute, abs=1e-9) and info["held_out_after"] > info["held_out_before"]
    bias_after = state.model.get_submodule("classifier").bias.detach()
    assert bias_after[0] == bias_before[0] and float(bias_before[1] - bias_after[1]) == pytest.approx(info["margin"], abs=1e-6)
    tuned, _ = predict(state.model, state.tokenizer, task, rows, max_length=32)
    assert matthews_corrcoef(references, tuned) == pytest.approx(brute, abs=1e-9)
    save_artifact(state, tmp_path / "artifact")
    reloaded = load_state(tmp_path / "artifact")
    assert predict(reloaded.model, reloaded.tokenizer, task, rows, max_length=32)[0] == tuned


def test_finetune_tunes_the_threshold_for_mcc_on_auto_and_not_for_accuracy(tmp_path: Path) -> None:
    step = get_step("finetune")
    cfg = step.config_cls(lr=1e-3, epochs=1, batch_size=8, train_size=None)
    assert cfg.decision_threshold == "auto"
    mcc = step(cfg).apply(tiny_state(tmp_path), make_ctx(tmp_path, _imbalanced_mcc_task()))
    assert "margin" in mcc.info["finetune"]["decision_threshold"]
    accuracy = step(cfg).apply(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(n=40)))
    assert "decision_threshold" not in accuracy.info["finetune"]
    tuned = step(step.config_cls(lr=1e-3, epochs=1, batch_size=8, train_size=None, decision_threshold="tuned"))
    assert "decision_threshold" in tuned.apply(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(n=40))).info["finetune"]
    with pytest.raises(ConfigError, match="early_stopping"):
        step.config_cls(decision_threshold="tuned", early_stopping=False)
    with pytest.raises(ConfigError, match="two-class"):
        tuned.apply(tiny_state(tmp_path, "regression"), make_ctx(tmp_path, tiny_task("regression")))
    # recipes saved before the field existed keep predicting the larger logit
    assert step.migrate({}, 3)["decision_threshold"] == "argmax"


def test_recipes_saved_before_the_lr_default_changed_keep_their_rate() -> None:
    """Version 5 trains at 5e-5 by default; a recipe saved at versions 2 to 4 (1e-4 then) keeps 1e-4,
    version 1's own 5e-5 stays, and a rate the recipe set is never changed."""
    step = get_step("finetune")
    assert step.config_cls().lr == 5e-5 and step.config_cls.version == 5
    assert step.migrate({}, 4)["lr"] == 1e-4 and step.migrate({}, 2)["lr"] == 1e-4
    assert step.migrate({}, 1)["lr"] == 5e-5
    assert step.migrate({"lr": 3e-5}, 4)["lr"] == 3e-5
    assert "lr" not in step.migrate({}, 5)


def _finetune(**changes: object) -> object:
    cls = get_step("finetune")
    settings = dict(lr=3e-3, epochs=1, batch_size=8, train_size=24, max_length=24, early_stopping=False,
                    first_on_task="none")
    return cls(cls.config_cls(**{**settings, **changes}))


def test_first_on_task_equals_a_finetune_on_that_task_then_one_on_the_runs_task(tmp_path: Path) -> None:
    """Intermediate-task transfer in one step is the two-recipe route it replaces (fine-tune on QNLI,
    then start the RTE fine-tune from that variant), weight for weight, on the bundled data; and its
    first stage reads QNLI's rows, not RTE's."""
    one_step = _finetune(first_on_task="qnli").apply(tiny_state(tmp_path, task="rte"), make_ctx(tmp_path, "rte", seed=5))
    on_qnli = _finetune().apply(tiny_state(tmp_path, task="rte"), make_ctx(tmp_path, "qnli", seed=5))
    two_steps = _finetune().apply(on_qnli, make_ctx(tmp_path, "rte", seed=5))
    assert all(torch.equal(v, two_steps.model.state_dict()[k]) for k, v in one_step.model.state_dict().items())
    rte_only = _finetune().apply(tiny_state(tmp_path, task="rte"), make_ctx(tmp_path, "rte", seed=5))
    assert any(not torch.equal(v, rte_only.model.state_dict()[k]) for k, v in one_step.model.state_dict().items())
    stats = one_step.info["finetune"]
    assert stats["first_on_task"]["task"] == "qnli" and stats["first_on_task"]["steps"] == 3  # 24 rows / 8
    assert one_step.task == "rte" and stats["steps"] == 3


def test_first_on_task_progress_runs_once_over_both_stages(tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    _finetune(first_on_task="qnli").apply(tiny_state(tmp_path, task="rte"),
                                           make_ctx(tmp_path, "rte", progress=lambda f, m="": seen.append((f, m))))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    first = [f for f, m in seen if m.startswith("First on qnli: ")]
    assert first and max(first) < 0.6 < fractions[-1]  # QNLI's 24 rows take half the bar, RTE's the rest


@pytest.mark.parametrize(("task", "first", "says"), [
    ("sst2", "rte", "task rte's labels (entailment, not_entailment) are not task sst2's"),
    ("rte", "rte", "the run's task itself"),
    ("rte", "stsb", "trains a regression head"),
])
def test_first_on_task_refuses_a_task_whose_head_would_answer_another_question(tmp_path: Path, task: str, first: str,
                                                                               says: str) -> None:
    import re

    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        _finetune(first_on_task=first).apply(tiny_state(tmp_path, task=task), make_ctx(tmp_path, task))
    assert caught.value.field == "first_on_task"


def test_first_on_task_counts_in_the_work_estimate() -> None:
    from core.tasks import get_task

    alone, first = _finetune(), _finetune(first_on_task="qnli")
    qnli_rows = len(get_task("qnli").load("train"))
    assert first.training_work(100) == alone.training_work(100) + alone.training_work(qnli_rows)
    auto = _finetune(first_on_task="auto")
    assert auto.training_work(100, "rte") == first.training_work(100)  # auto: QNLI before RTE
    assert auto.training_work(100, "sst2") == alone.training_work(100)  # and nothing before SST-2


def test_first_on_task_auto_puts_qnli_before_rte_only(tmp_path: Path) -> None:
    auto = _finetune(first_on_task="auto")
    on_rte = auto.apply(tiny_state(tmp_path, task="rte"), make_ctx(tmp_path, "rte"))
    assert on_rte.info["finetune"]["first_on_task"]["task"] == "qnli"
    on_sst2 = auto.apply(tiny_state(tmp_path, task="sst2"), make_ctx(tmp_path, "sst2"))
    assert "first_on_task" not in on_sst2.info["finetune"]


def test_a_margin_within_noise_on_a_few_held_out_rows_is_not_called_did_not_learn() -> None:
    """14 of 20 held-out rows right is no proof of learning, nor of not learning: the log said "did not
    learn" beside a variant whose dev score showed it had. The summary says what the rows can tell."""
    from types import SimpleNamespace

    from core.steps.training import HeldOutScore, learned_summary
    from core.tasks import get_task

    references = [0, 1] * 10
    predictions = [r if i < 14 else 1 - r for i, r in enumerate(references)]
    ctx = SimpleNamespace(task=get_task("sst2"), seed=0)
    few = learned_summary(None, ctx, None, 16, scored=HeldOutScore(0.7, predictions, references))
    assert few["learned"] is False and few["margin_low"] <= 0 < few["margin"]
    assert few["summary"].startswith("no sign of learning beyond noise: held-out accuracy 0.7000 on 20 rows")
    assert "did not learn" not in few["summary"] and "the dev set's measurement says" in few["summary"]
    many = learned_summary(None, ctx, None, 16, scored=HeldOutScore(0.7, predictions * 10, references * 10))
    assert many["learned"] is True and many["summary"].startswith("learned: held-out accuracy 0.7000 on 200 rows")


def _history(right: list[int]) -> list[object]:
    """Held-out scorings of a fixed 200-row slice: the i-th gets ``right[i]`` rows right, other rows each time."""
    from core.steps.training import HeldOutScore

    references = [i % 2 for i in range(200)]
    out = []
    for i, r in enumerate(right):
        wrong = {(37 * i + k) % 200 for k in range(200 - r)}
        out.append(HeldOutScore(r / 200, [1 - x if k in wrong else x for k, x in enumerate(references)], references))
    return out


def _ran_to_the_end(history: list[object], every: int = 10) -> dict[str, object]:
    """The loop's stats for scorings at steps 10, 20, ...: run to the end, the final weights kept."""
    steps = [every * (i + 1) for i in range(len(history))]
    return {"held_out_scores": [[s, h.value] for s, h in zip(steps, history, strict=True)],  # type: ignore[attr-defined]
            "stopped_early": False, "kept": "final", "kept_step": steps[-1]}


@pytest.mark.parametrize(("right", "verdict", "words"), [
    ([110, 120, 130, 150, 170, 180], "improving", "still improving when the budget ran out"),  # 0.75 -> 0.90
    ([110, 150, 170, 172, 171, 173], "plateau", "no gain beyond noise over the second half"),
    ([110, 150, 180, 160, 130, 120], "declining", "lost ground over the second half"),  # 0.90 -> 0.60
])
def test_convergence_compares_the_final_weights_with_the_half_way_scoring_paired(
        tmp_path: Path, right: list[int], verdict: str, words: str) -> None:
    from core.measure import verdicts
    from core.steps.training import convergence

    ctx = make_ctx(tmp_path, tiny_task())
    history = _history(right)
    out = convergence(ctx, _ran_to_the_end(history), history)  # scored at steps 10, 20, ..., 60
    assert out is not None and out["verdict"] == verdict and not out["rolled_back"]
    assert (out["from_step"], out["to_step"]) == (30, 60)  # half of 60: the scoring at step 30
    delta = verdicts.versus_parent(ctx.task, history[-1].predictions, history[2].predictions,
                                   history[-1].references, seed=ctx.seed)
    assert (out["change"], out["change_low"], out["change_high"]) == (delta.value, delta.low, delta.high)
    assert out["change"] == pytest.approx((right[-1] - right[2]) / 200)
    assert words in out["summary"] and "step 30 to 60" in out["summary"] and "200 rows" in out["summary"]


def test_a_run_early_stopping_rolled_back_is_past_its_best_not_still_improving(tmp_path: Path) -> None:
    """Scores that jump late and then fall: the final weights are well above the half-way ones, but early
    stopping kept step 50's, so the budget did not run out and more steps would not help."""
    from core.steps.training import DECLINING, convergence

    ctx = make_ctx(tmp_path, tiny_task())
    history = _history([100, 105, 108, 110, 190, 150, 150, 150])
    stats = {**_ran_to_the_end(history), "stopped_early": True, "kept": "best", "kept_step": 50}
    out = convergence(ctx, stats, history)
    assert out is not None and out["verdict"] == DECLINING and out["rolled_back"]
    assert (out["from_step"], out["to_step"]) == (50, 80) and out["from_value"] == pytest.approx(0.95)
    assert "past its best" in out["summary"] and "kept the weights of step 50" in out["summary"]
    half_way = convergence(ctx, _ran_to_the_end(history), history)  # the same scores run to the end: improving
    assert half_way is not None and half_way["verdict"] == "improving"


def test_convergence_needs_two_scorings_that_match_their_history(tmp_path: Path) -> None:
    from core.steps.training import convergence

    ctx = make_ctx(tmp_path, tiny_task())
    one = _history([150])
    assert convergence(ctx, _ran_to_the_end(one), one) is None
    assert convergence(ctx, {"held_out_scores": [[10, 0.75], [20, 0.8]]}, one) is None


def test_training_with_a_held_out_slice_records_whether_it_converged(tmp_path: Path) -> None:
    from core.steps.training import EarlyStopping

    stats = train(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(n=40)), **{**KW, "epochs": 4, "lr": 3e-3,
                  "train_size": None}, early_stopping=EarlyStopping(holdout=0.25, evals=4, patience=2))
    trend = stats["convergence"]
    assert trend["to_step"] == stats["steps"] and trend["to_value"] == stats["held_out_scores"][-1][1]
    assert [trend["from_step"], trend["from_value"]] in stats["held_out_scores"][:-1]
    assert trend["examples"] == stats["holdout_examples"]
    assert "convergence" not in train(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task(n=40)), **KW)


def test_the_rdrop_divergence_is_the_symmetric_kl_of_scipy() -> None:
    """R-Drop's term: half of KL(p1 || p2) + KL(p2 || p1) per row, averaged (scipy's rel_entr as the
    reference); start and end averaged for QA; the squared difference for regression."""
    from types import SimpleNamespace

    import numpy as np
    from scipy.special import rel_entr, softmax

    from core.steps.training import dropout_divergence

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=generator) * 2

    def reference(x: torch.Tensor) -> float:
        p = softmax(x.double().numpy(), axis=-1)
        return float(np.mean(0.5 * (rel_entr(p[:3], p[3:]).sum(-1) + rel_entr(p[3:], p[:3]).sum(-1))))

    got = dropout_divergence("classification", SimpleNamespace(logits=logits), 3)
    assert got.item() == pytest.approx(reference(logits), rel=1e-5)
    assert got.item() > 0.01
    start, end = torch.randn(6, 9, generator=generator), torch.randn(6, 9, generator=generator)
    qa = dropout_divergence("qa", SimpleNamespace(start_logits=start, end_logits=end), 3)
    assert qa.item() == pytest.approx(0.5 * (reference(start) + reference(end)), rel=1e-5)
    values = torch.tensor([[1.0], [2.0], [4.0], [1.5], [2.0], [1.0]])
    assert dropout_divergence("regression", SimpleNamespace(logits=values), 3).item() == pytest.approx((0.25 + 0 + 9) / 3)


def test_the_rdrop_loss_runs_the_batch_twice_with_different_dropout(tmp_path: Path) -> None:
    """One forward pass over the doubled batch: the copies differ through dropout, and the loss is their mean
    cross-entropy plus half the weight times their divergence."""
    import torch.nn.functional as F

    from core.steps.training import _rdrop_loss, dropout_divergence

    state = tiny_state(tmp_path)
    model = state.model.train()
    batch = sample_batch(state.tokenizer)
    rows = batch["input_ids"].shape[0]
    batch["labels"] = torch.arange(rows) % 2
    torch.manual_seed(3)
    loss = _rdrop_loss(model, "classification", batch, 1000.0)  # large, so the divergence term shows
    torch.manual_seed(3)
    doubled = {k: torch.cat([v, v]) for k, v in batch.items() if k != "labels"}
    logits = model(**doubled).logits
    assert not torch.allclose(logits[:rows], logits[rows:])  # dropout differed between the copies
    mean_ce = F.cross_entropy(logits, torch.cat([batch["labels"], batch["labels"]]))
    expected = mean_ce + 500.0 * dropout_divergence("classification", type("Out", (), {"logits": logits}), rows)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _without_dropout(state: object) -> object:
    for module in state.model.modules():  # type: ignore[attr-defined]
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return state


def test_rdrop_without_dropout_trains_as_plain_fine_tuning(tmp_path: Path) -> None:
    """Without dropout the two copies agree, the divergence is 0 and the doubled batch's mean loss is the
    plain one (its labels paired with their rows), so the weights match plain training's."""
    kw = {**KW, "epochs": 3}
    plain = _without_dropout(tiny_state(tmp_path))
    train(plain, make_ctx(tmp_path, tiny_task()), **kw)
    rdrop = _without_dropout(tiny_state(tmp_path))
    train(rdrop, make_ctx(tmp_path, tiny_task()), consistency=1.0, **kw)
    for name, value in plain.model.state_dict().items():
        assert torch.allclose(value, rdrop.model.state_dict()[name], atol=1e-5), name


def test_rdrop_refuses_a_teacher_and_impossible_weights_and_doubles_the_work_estimate(tmp_path: Path) -> None:
    config_cls = get_step("finetune").config_cls
    for bad in (float("nan"), -0.5):
        with pytest.raises(ConfigError, match="consistency"):
            config_cls(consistency=bad)
    with pytest.raises(ConfigError, match="consistency"):
        train(tiny_state(tmp_path), make_ctx(tmp_path, tiny_task()), teacher=tiny_state(tmp_path), consistency=1.0, **KW)
    plain = get_step("finetune")(config_cls(batch_size=8, max_steps=3, early_stopping=False))
    rdrop = get_step("finetune")(config_cls(batch_size=8, max_steps=3, early_stopping=False, consistency=0.5))
    assert rdrop.training_work(40) == 2 * plain.training_work(40)


def test_finetune_runs_rdrop_in_both_stages_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The field reaches the loss: every training batch of both stages (first on QNLI, then RTE) goes through
    R-Drop's doubled pass when consistency > 0, and none does at 0."""
    import core.steps.training as training

    calls: list[tuple[int, float]] = []
    real = training._rdrop_loss

    def spy(model: object, head: str, batch: dict, weight: float) -> object:
        calls.append((batch["input_ids"].shape[0], weight))
        return real(model, head, batch, weight)

    monkeypatch.setattr(training, "_rdrop_loss", spy)
    out = _finetune(first_on_task="qnli", consistency=0.5).apply(tiny_state(tmp_path, task="rte"), make_ctx(tmp_path, "rte"))
    stats = out.info["finetune"]
    assert len(calls) == stats["first_on_task"]["steps"] + stats["steps"] == 6  # 3 batches of 8 per stage
    assert {weight for _, weight in calls} == {0.5} and {rows for rows, _ in calls} == {8}
    calls.clear()
    _finetune(first_on_task="qnli").apply(tiny_state(tmp_path, task="rte"), make_ctx(tmp_path, "rte"))
    assert calls == []
