"""Configs of the steps1 steps: valid defaults, JSON round trip, torch-free declarations; every
step's artifact reloads to the same outputs, alone and in the study's chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact
from core.errors import ConfigError
from core.steps.base import get_step
from tests.core.steps_support import make_ctx, outputs, sample_batch, tiny_state, tiny_task

STEPS = {
    "finetune": "Training",
    "distill": "Distillation",
    "prune.global_magnitude": "Pruning",
    "quantize.dynamic_int8": "Quantization",
}
FAST = {
    "finetune": dict(epochs=1, batch_size=8, train_size=16, lr=1e-3),
    "distill": dict(student_layers=1, intermediate_epochs=1, prediction_epochs=1, batch_size=8, train_size=16),
    "prune.global_magnitude": dict(amount=0.5),
    "quantize.dynamic_int8": dict(),
}


@pytest.mark.parametrize("step_id", STEPS)
def test_default_config_is_valid_and_round_trips_through_json(step_id: str) -> None:
    step = get_step(step_id)
    assert step.category == STEPS[step_id]
    cfg = step.config_cls()
    text = json.dumps(cfg.to_dict())
    assert step.config_cls.from_dict(json.loads(text), step=step_id) == cfg
    described = json.loads(json.dumps(step.config_cls.describe()))
    assert {d["name"] for d in described} == set(cfg.to_dict())
    assert all(d["label"] for d in described)


@pytest.mark.parametrize(
    ("step_id", "values", "field"),
    [
        ("prune.global_magnitude", {"amount": 1.5}, "amount"),
        ("prune.global_magnitude", {"groups": ["query", "attention"]}, "groups"),
        ("distill", {"temperature": 0}, "temperature"),
        ("distill", {"student": "model", "student_model": ""}, "student_model"),
        ("finetune", {"lr": 0.0}, "lr"),
        ("finetune", {"train_size": 0}, "train_size"),
        ("quantize.dynamic_int8", {"activation_range": "16bit"}, "activation_range"),
        ("finetune", {"epochs": "3"}, "epochs"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(step_id: str, values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as e:
        get_step(step_id).config_cls.from_dict(values, step=step_id)
    assert e.value.field == field and e.value.step == step_id


def test_step_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import core.steps.training, core.steps.finetune, core.steps.distill, core.steps.prune, core.steps.quantize_int8\n"
        "from core.steps.base import all_steps\n"
        "all_steps()\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'datasets'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("step_id", STEPS)
def test_every_step_artifact_reloads_to_the_same_outputs(tmp_path: Path, step_id: str) -> None:
    state = tiny_state(tmp_path, layers=2)
    step = get_step(step_id)
    out = step(step.config_cls(**FAST[step_id])).apply(state, make_ctx(tmp_path, tiny_task()))
    save_artifact(out, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    batch = sample_batch(out.tokenizer)
    assert torch.equal(outputs(out.model, batch), outputs(loaded.model, batch))
    assert loaded.manifest["traits"] == sorted(out.traits)


def test_the_study_chain_runs_and_reloads(tmp_path: Path) -> None:
    """finetune -> distill (half the layers) -> prune 30 % -> int8, as in the TinyBERT study."""
    state = tiny_state(tmp_path, layers=4)
    ctx = make_ctx(tmp_path, tiny_task())
    messages: list[str] = []
    ctx.progress = lambda f, m="": messages.append(m)
    for step_id, cfg in (
        ("finetune", FAST["finetune"]),
        ("distill", {**FAST["distill"], "student_layers": 2}),
        ("prune.global_magnitude", {"amount": 0.3}),
        ("quantize.dynamic_int8", {}),
    ):
        step = get_step(step_id)
        state = step(step.config_cls(**cfg)).apply(state, ctx)
    assert [t["codec"] for t in state.transforms] == ["sparse", "int8.dynamic"]
    assert set(state.info) >= {"finetune", "distill", "prune.global_magnitude", "quantize.dynamic_int8"}
    assert any(m.startswith("Stage 1") for m in messages) and any(m.startswith("Stage 2") for m in messages)
    save_artifact(state, tmp_path / "chain")
    loaded = load_artifact(tmp_path / "chain").model
    batch = sample_batch(state.tokenizer)
    assert torch.equal(outputs(state.model, batch), outputs(loaded, batch))
    assert loaded.config.num_hidden_layers == 2


@pytest.mark.parametrize("step_id", STEPS)
def test_every_step_checks_cancellation_and_reports_progress(tmp_path: Path, step_id: str) -> None:
    from core.errors import StepCancelled

    step = get_step(step_id)
    state = tiny_state(tmp_path, layers=2)
    with pytest.raises(StepCancelled):
        step(step.config_cls(**FAST[step_id])).apply(state, make_ctx(tmp_path, tiny_task(), cancelled=lambda: True))
    seen: list[float] = []
    step(step.config_cls(**FAST[step_id])).apply(
        state, make_ctx(tmp_path, tiny_task(), progress=lambda f, m="": seen.append(f)))
    assert seen and seen[-1] == pytest.approx(1.0) and all(0.0 <= f <= 1.0 for f in seen)


def _other_family(family: str) -> torch.nn.Module:
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from tests.helpers import TINY_VOCAB

    torch.manual_seed(0)
    if family == "distilbert":
        return DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=len(TINY_VOCAB), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64))
    return RobertaForSequenceClassification(RobertaConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=70, pad_token_id=0))


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
@pytest.mark.parametrize("step_id", STEPS)
def test_steps_work_on_distilbert_and_roberta(tmp_path: Path, family: str, step_id: str) -> None:
    from core.state import ModelState
    from tests.helpers import tiny_tokenizer

    tok = tiny_tokenizer(tmp_path / "tok")
    state = ModelState(_other_family(family).eval(), tok, "tiny", "classification")
    step = get_step(step_id)
    out = step(step.config_cls(**FAST[step_id])).apply(state, make_ctx(tmp_path, tiny_task()))
    save_artifact(out, tmp_path / "art")
    batch = sample_batch(tok)
    batch.pop("token_type_ids")
    assert torch.equal(outputs(out.model, batch), outputs(load_artifact(tmp_path / "art").model, batch))
