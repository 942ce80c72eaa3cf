"""An unmodified model's artifact reloads to identical outputs; damaged ones fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.artifacts import load_artifact, save_artifact
from core.errors import ArtifactError
from core.models import ModelRef, load_model, load_tokenizer
from core.state import ModelState
from tests.helpers import tiny_bert_folder


def _state(tmp_path: Path) -> ModelState:
    ref = ModelRef.parse(str(tiny_bert_folder(tmp_path / "tiny")))
    model = load_model(ref, "classification", num_labels=2).eval()
    return ModelState(model=model, tokenizer=load_tokenizer(ref), task="sst2", head="classification")


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    state = _state(tmp_path)
    save_artifact(state, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art")
    batch = state.tokenizer(["the good movie", "a bad film !"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        assert torch.equal(state.model(**batch).logits, loaded.model(**batch).logits)


def test_shared_tensors_are_stored_once_and_retied(tmp_path: Path) -> None:
    state = _state(tmp_path)
    layers = state.model.base_model.encoder.layer
    layers[0].attention.self.query.weight = layers[1].attention.self.query.weight
    save_artifact(state, tmp_path / "art")
    loaded = load_artifact(tmp_path / "art").model.base_model.encoder.layer
    assert loaded[0].attention.self.query.weight is loaded[1].attention.self.query.weight


def test_truncated_weights_are_reported(tmp_path: Path) -> None:
    save_artifact(_state(tmp_path), tmp_path / "art")
    weights = tmp_path / "art" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ArtifactError, match="model.safetensors"):
        load_artifact(tmp_path / "art")


def test_unknown_codec_is_reported(tmp_path: Path) -> None:
    state = _state(tmp_path)
    state.transforms.append({"codec": "from.the.future"})
    with pytest.raises(ArtifactError, match="from.the.future"):
        save_artifact(state, tmp_path / "art")
