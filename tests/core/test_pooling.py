"""Mean pooling: every family's head reads the masked mean, it survives copies, saving and reloading,
the finetune step sets it only on a head that has not learned, and a bad config value is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact
from core.errors import ArtifactError, ModelLoadError
from core.models import ModelRef, load_model
from core.pooling import FIRST_TOKEN, MEAN, POOLING_FIELD, _mean_into_first_token, pooling_of, set_pooling
from core.state import ModelState
from core.steps.base import get_step
from tests.core.backends_support import FAMILIES, family_state
from tests.core.steps_support import make_ctx, tiny_state, tiny_task

TEXTS = ["the good movie", "a bad film is not very good !", "not good"]


def _batch(tokenizer, texts=TEXTS):  # type: ignore[no-untyped-def]
    return dict(tokenizer(texts, return_tensors="pt", padding=True, return_token_type_ids=False))


def _first_position_and_pooled(model, batch):  # type: ignore[no-untyped-def]
    seen = {}
    handle = model.base_model.register_forward_hook(
        lambda m, a, out: seen.update(first=out[0][:, 0].clone(), pooled=out.get("pooler_output")))
    with torch.inference_mode():
        logits = model(**batch).logits
    handle.remove()
    return seen, logits


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_reads_the_masked_mean(tmp_path: Path, family: str) -> None:
    state = family_state(tmp_path, family)
    batch = _batch(state.tokenizer)
    with torch.inference_mode():
        hidden = state.model.base_model(**batch)[0]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = (hidden * mask).sum(1) / mask.sum(1)
    assert not torch.allclose(expected, hidden[:, 0], atol=1e-3)  # the two poolings differ on this batch
    first_token_logits = state.model(**batch).logits.detach()

    set_pooling(state.model, MEAN)
    seen, logits = _first_position_and_pooled(state.model, batch)

    assert torch.allclose(seen["first"], expected, atol=1e-5)  # padding left out of the mean
    pooler = getattr(state.model.base_model, "pooler", None)
    if pooler is not None:  # BERT's head reads the pooler, which must see the mean too
        assert torch.allclose(seen["pooled"], pooler(expected.unsqueeze(1)), atol=1e-5)
    assert not torch.allclose(logits, first_token_logits, atol=1e-4)


@pytest.mark.parametrize("family", ["bert", "distilbert"])  # with a pooler, and without
def test_tuple_outputs_pool_like_dict_outputs(tmp_path: Path, family: str) -> None:
    """A base model called with return_dict=False hands the hook a tuple."""
    state = family_state(tmp_path, family)
    set_pooling(state.model, MEAN)
    batch = _batch(state.tokenizer)
    with torch.inference_mode():
        as_dict = state.model.base_model(**batch)
        as_tuple = state.model.base_model(**batch, return_dict=False)
    assert torch.equal(as_tuple[0], as_dict["last_hidden_state"])
    if "pooler_output" in as_dict:
        assert torch.equal(as_tuple[1], as_dict["pooler_output"])


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_a_padded_row_scores_like_the_row_alone(tmp_path: Path, family: str) -> None:
    state = family_state(tmp_path, family)
    set_pooling(state.model, MEAN)
    state.model.eval()
    with torch.inference_mode():
        alone = state.model(**_batch(state.tokenizer, ["not good"])).logits
        padded = state.model(**_batch(state.tokenizer, ["not good", "a bad film is not very good !"])).logits[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_copies_keep_it_and_switching_back_removes_it(tmp_path: Path) -> None:
    state = family_state(tmp_path, "bert")
    batch = _batch(state.tokenizer)
    with torch.inference_mode():
        first = state.model(**batch).logits
        set_pooling(state.model, MEAN)
        set_pooling(state.model, MEAN)  # idempotent: one hook
        mean = state.model(**batch).logits
        copied = copy.deepcopy(state.model)
        assert torch.equal(copied(**batch).logits, mean)
        set_pooling(copied, FIRST_TOKEN)
        assert torch.equal(copied(**batch).logits, first)
        assert torch.equal(state.model(**batch).logits, mean)  # the original is untouched
    assert len(state.model.base_model._forward_hooks) == 1


def test_an_artifact_reloads_with_its_pooling(tmp_path: Path) -> None:
    state = tiny_state(tmp_path)
    set_pooling(state.model, MEAN)
    save_artifact(state, tmp_path / "art")
    config = json.loads((tmp_path / "art" / "config.json").read_text())
    assert config[POOLING_FIELD] == MEAN
    loaded = load_artifact(tmp_path / "art")
    batch = _batch(state.tokenizer)
    with torch.inference_mode():
        assert torch.equal(loaded.model(**batch).logits, state.model(**batch).logits)

    config[POOLING_FIELD] = "max"
    (tmp_path / "art" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=f"config.json.*'{POOLING_FIELD}' is 'max'.*first_token, mean"):
        load_artifact(tmp_path / "art")


def test_a_model_folder_with_a_bad_pooling_value_is_refused(tmp_path: Path) -> None:
    tiny_state(tmp_path)
    folder = next(p for p in tmp_path.iterdir() if (p / "config.json").exists())
    config = json.loads((folder / "config.json").read_text())
    config[POOLING_FIELD] = "MEAN"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="one of first_token, mean"):
        tiny_state(tmp_path)


def test_finetune_pools_a_new_head_by_default_and_a_trained_head_keeps_its_own(tmp_path: Path) -> None:
    step = get_step("finetune")
    fast = dict(lr=3e-3, epochs=1, batch_size=8, early_stopping=False)
    ctx = make_ctx(tmp_path, tiny_task(n=16))
    state = tiny_state(tmp_path)
    assert pooling_of(state.model.config) == FIRST_TOKEN and not state.info.get("head_trained")

    trained = step(step.config_cls(**fast)).apply(state, ctx)
    assert step.config_cls().pooling == MEAN
    assert pooling_of(trained.model.config) == MEAN and trained.info["finetune"]["pooling"] == MEAN
    assert pooling_of(state.model.config) == FIRST_TOKEN  # the input state is untouched

    lines: list[str] = []
    again = step(step.config_cls(**fast, pooling=FIRST_TOKEN)).apply(trained, make_ctx(tmp_path, tiny_task(n=16),
                                                                                          log=lines.append))
    assert pooling_of(again.model.config) == MEAN and again.info["finetune"]["pooling"] == MEAN
    assert any("keeps that pooling" in line for line in lines)


def test_recipes_written_before_pooling_keep_the_first_token() -> None:
    step = get_step("finetune")
    assert step.migrate({}, 2)["pooling"] == FIRST_TOKEN
    assert step.migrate({}, 1)["pooling"] == FIRST_TOKEN
    assert step.migrate({"pooling": MEAN}, 2)["pooling"] == MEAN


def test_a_qa_head_reads_every_token_whatever_the_config_recorded(tmp_path: Path) -> None:
    """A model fine-tuned for a sentence-level task (mean recorded), then loaded for SQuAD: no mean hook."""
    state = tiny_state(tmp_path)
    set_pooling(state.model, MEAN)
    folder = tmp_path / "sentence_level"
    state.model.save_pretrained(folder)
    state.tokenizer.save_pretrained(folder)
    model = load_model(ModelRef.parse(str(folder)), "qa")
    assert pooling_of(model.config) == FIRST_TOKEN
    assert _mean_into_first_token not in model.base_model._forward_hooks.values()
    qa = ModelState(model=model, tokenizer=state.tokenizer, task="squad_v2", head="qa")
    save_artifact(qa, tmp_path / "art")  # and its artifact records no mean either
    assert json.loads((tmp_path / "art" / "config.json").read_text())[POOLING_FIELD] == FIRST_TOKEN
    assert _mean_into_first_token not in load_artifact(tmp_path / "art").model.base_model._forward_hooks.values()
