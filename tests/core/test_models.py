"""Model references resolve, load with a head, and fail with messages naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ModelLoadError
from core.models import DEFAULT_MODEL, ModelRef, load_model, load_tokenizer
from tests.helpers import tiny_bert_folder


def test_parse_kinds(tmp_path: Path) -> None:
    assert ModelRef.parse(DEFAULT_MODEL) == ModelRef("packaged", DEFAULT_MODEL)
    assert ModelRef.parse(f"packaged:{DEFAULT_MODEL}").kind == "packaged"
    assert ModelRef.parse(str(tmp_path)).kind == "local"
    assert ModelRef.parse("google-bert/bert-base-uncased") == ModelRef("hub", "google-bert/bert-base-uncased")
    with pytest.raises(ModelLoadError, match="packaged models"):
        ModelRef.parse("packaged:nope")


def test_local_tiny_model_loads_with_fresh_classification_head(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "tiny")
    model = load_model(ModelRef.parse(str(folder)), "classification", num_labels=3)
    assert model.config.num_labels == 3
    assert model.base_model.config.num_hidden_layers == 2


def test_hub_id_offline_fails_with_clear_message() -> None:
    with pytest.raises(ModelLoadError, match="'someone/some-model'.*network"):
        load_model(ModelRef.parse("someone/some-model"), "classification")


def test_folder_without_config_names_config_json(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(ModelRef.parse(str(tmp_path)), "classification")


def test_corrupt_weights_name_the_file(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "tiny")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        load_model(ModelRef.parse(str(folder)), "classification")


def test_unsupported_architecture_names_config(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "tiny")
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(ModelRef.parse(str(folder)), "classification")


@pytest.mark.slow
def test_packaged_default_loads_offline() -> None:
    ref = ModelRef.parse(DEFAULT_MODEL)
    model = load_model(ref, "classification", num_labels=2)
    tok = load_tokenizer(ref)
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    n = sum(p.numel() for p in model.base_model.parameters())
    assert 22_000_000 < n < 23_000_000
    assert tok("hello world")["input_ids"][0] == tok.cls_token_id
