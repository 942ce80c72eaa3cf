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


# --- weights from safetensors only ------------------------------------------------------------------

class _RunsCode:
    """Unpickling this writes a file: what a malicious pytorch_model.bin could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "code ran"))


def _pickle_only_folder(folder: Path) -> Path:
    """A tiny model folder whose weights are only pytorch_model.bin (written by torch.save, a pickle)."""
    import torch
    from safetensors.torch import load_file

    tiny_bert_folder(folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def test_a_folder_with_only_pickled_weights_is_refused_naming_the_file_and_the_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.models import ALLOW_PICKLE_ENV, check_local_folder

    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    folder = _pickle_only_folder(tmp_path / "downloaded")
    for attempt in (lambda: check_local_folder(folder),
                    lambda: load_model(ModelRef.parse(str(folder)), "classification")):
        with pytest.raises(ModelLoadError) as info:
            attempt()
        message = str(info.value)
        assert str(folder / "pytorch_model.bin") in message and "pickle" in message
        assert "model.safetensors" in message and f"{ALLOW_PICKLE_ENV}=1" in message


def test_pickled_weights_load_when_allowed_explicitly_and_only_as_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file

    from core.models import ALLOW_PICKLE_ENV

    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    reference = load_file(tiny_bert_folder(tmp_path / "reference") / "model.safetensors")
    folder = _pickle_only_folder(tmp_path / "downloaded")
    model = load_model(ModelRef.parse(str(folder)), "none")
    assert torch.equal(model.state_dict()["embeddings.word_embeddings.weight"], reference["embeddings.word_embeddings.weight"])

    marker = tmp_path / "marker.txt"
    torch.save({"embeddings.word_embeddings.weight": _RunsCode(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin|weights"):
        load_model(ModelRef.parse(str(folder)), "none")
    assert not marker.exists()  # torch.load(weights_only=True) refused to run the pickle's code


def test_loading_draws_no_progress_bar_on_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A worker's stderr tail becomes a crash message: transformers' "Loading weights" bar must not be in it."""
    from transformers.utils import logging as hf_logging

    folder = tiny_bert_folder(tmp_path / "tiny")
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    load_model(ModelRef.parse(str(folder)), "classification")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for whoever had it on
