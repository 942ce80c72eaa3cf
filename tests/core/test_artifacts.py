"""An unmodified model's artifact reloads to identical outputs; damaged ones fail clearly."""

from __future__ import annotations

import json
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


def test_the_saved_files_do_not_depend_on_how_the_tokenizer_was_last_called(tmp_path: Path) -> None:
    """A tokenizer used with truncation and padding (evaluated in memory) saves the same files as a
    fresh one: a variant made from an in-memory parent equals one made from its artifact."""
    state = _state(tmp_path)
    save_artifact(state, tmp_path / "fresh")
    state.tokenizer(["a good movie"], truncation=True, max_length=8, padding="max_length")
    save_artifact(state, tmp_path / "used")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "used" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    assert state.tokenizer(["a good movie"], truncation=True, max_length=4)["input_ids"][0].__len__() == 4


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


# --- a tampered manifest is refused naming the file and the field --------------------------------------

def _two_transform_artifact(tmp_path: Path) -> Path:
    """An artifact with a sparse (prune) and a sketch transform: codecs that read manifest fields."""
    from core.steps.base import get_step
    from tests.core.steps_support import make_ctx, tiny_state, tiny_task

    state = tiny_state(tmp_path)
    for step_id, cfg in (("prune.global_magnitude", {"amount": 0.5, "groups": ["embeddings", "classifier"]}),
                         ("sketch.random", {"m_attention": 8, "m_ffn_out": 16, "epochs": 0})):
        step = get_step(step_id)
        state = step(step.config_cls(**cfg)).apply(state, make_ctx(tmp_path, tiny_task()))
    folder = tmp_path / "art"
    save_artifact(state, folder)
    load_artifact(folder)  # untampered, it loads
    return folder


def _drop(key: str):  # type: ignore[no-untyped-def]
    return lambda m: m.pop(key)


TAMPERED = {
    "head of another architecture": (lambda m: m.update(head="qa"), "'head'"),
    "unknown head": (lambda m: m.update(head="bogus"), "'head'"),
    "head not a string": (lambda m: m.update(head=3), "'head'"),
    "head missing": (_drop("head"), "'head'"),
    "task missing": (_drop("task"), "'task'"),
    "format as text": (lambda m: m.update(format="1"), "'format'"),
    "format null": (lambda m: m.update(format=None), "'format'"),
    "format missing": (_drop("format"), "'format'"),
    "format from the future": (lambda m: m.update(format=99), "newer workbench"),
    "transforms not a list": (lambda m: m.update(transforms={}), "'transforms'"),
    "transform without codec": (lambda m: m["transforms"][0].pop("codec"), r"'transforms\[0\]'"),
    "transform lacking its key": (lambda m: m["transforms"][1].pop("layers"), r"'transforms\[1\]'.*'layers'"),
    "layer lacking its seed": (lambda m: next(iter(m["transforms"][1]["layers"].values())).pop("seed"),
                               r"'transforms\[1\]'.*'seed'"),
    "stored entry of the wrong type": (lambda m: m["transforms"][0].update(stored=["x"]), r"'transforms\[0\]'"),
    "transform removed": (lambda m: m["transforms"].pop(1), "does not match manifest.json"),
    "aliases not a mapping": (lambda m: m.update(aliases=["x"]), "'aliases'"),
    "alias to nowhere": (lambda m: m.update(aliases={"bert.nope.weight": "classifier.weight"}), "'aliases'"),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_manifest_is_refused_naming_the_file_and_field(tmp_path: Path, case: str) -> None:
    import json

    folder = _two_transform_artifact(tmp_path)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    edit, field = TAMPERED[case]
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=field) as info:  # never KeyError / TypeError / RuntimeError
        load_artifact(folder)
    assert str(folder) in str(info.value)


def test_a_manifest_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    folder = _two_transform_artifact(tmp_path)
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="manifest.json.*not an object"):
        load_artifact(folder)


# --- a full disk while saving ----------------------------------------------------------------------------

def _disk_full_from_safetensors(*args: object, **kwargs: object) -> None:
    """What safetensors' Rust writer raises on a full disk (seen on a 64 kB tmpfs): a SafetensorError."""
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _disk_full_from_python(*args: object, **kwargs: object) -> None:
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["weights", "tokenizer"])
def test_a_full_disk_says_what_to_free_and_leaves_no_partial_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import safetensors.torch

    state = _state(tmp_path)
    out = tmp_path / "artifacts"
    save_artifact(state, out / "001-baseline")  # an earlier artifact, to be kept as it is
    before = sorted(p.name for p in (out / "001-baseline").iterdir())
    if where == "weights":
        monkeypatch.setattr(safetensors.torch, "save_file", _disk_full_from_safetensors)
    else:
        monkeypatch.setattr(type(state.tokenizer), "save_pretrained", _disk_full_from_python)
    for target in (out / "002-prune", out / "001-baseline"):
        with pytest.raises(ArtifactError) as info:
            save_artifact(state, target)
        message = str(info.value)
        assert "No space left" in message and str(target) in message
        assert "Free at least" in message and " MB" in message and "--artifacts" in message
        assert "os error" not in message and "SafetensorError" not in message
    assert sorted(p.name for p in out.iterdir()) == ["001-baseline"]  # no .partial, no half artifact
    assert sorted(p.name for p in (out / "001-baseline").iterdir()) == before
    monkeypatch.undo()
    load_artifact(out / "001-baseline")


def test_a_variant_of_another_task_continues_under_the_recipes_task(tmp_path: Path) -> None:
    """RTE fine-tuned from a stored QNLI variant: the chain's state, and so every manifest it writes, names
    RTE (they said QNLI); a variant whose label count differs from the task's is refused by name."""
    from types import SimpleNamespace

    from core.run.variant import load_start
    from core.tasks import get_task

    state = _state(tmp_path)
    state.task = "qnli"
    state.data = {"train": [{"question": "Who?", "sentence": "Him.", "label": 0}]}  # rows prepared for QNLI
    save_artifact(state, tmp_path / "qnli")
    assert load_artifact(tmp_path / "qnli").data  # stored with the variant...
    loaded = load_start(SimpleNamespace(model=str(tmp_path / "qnli")), get_task("rte"))
    assert loaded.task == "rte" and loaded.data == {}  # ...but not RTE's training rows
    save_artifact(loaded, tmp_path / "rte")
    assert json.loads((tmp_path / "rte" / "manifest.json").read_text())["task"] == "rte"
    three = SimpleNamespace(id="nli3", head="classification", num_labels=3, label_names=("a", "b", "c"), family="glue")
    with pytest.raises(ArtifactError, match="made for task qnli: a head for task qnli has 2 labels; task nli3 has 3"):
        load_start(SimpleNamespace(model=str(tmp_path / "qnli")), three)
    # two labels, but sentiment's: an SST-2 head would answer another question than RTE's
    save_artifact(_state(tmp_path / "s"), tmp_path / "sst2")
    with pytest.raises(ArtifactError, match=r"labels \(negative, positive\) are not task rte's"):
        load_start(SimpleNamespace(model=str(tmp_path / "sst2")), get_task("rte"))
