"""Torch-free checks of a model folder before anything runs (issue 16): the safetensors structure
(checked against the safetensors library itself), config and tokenizer files, token ids that fit
the embeddings, hub ids that cannot be fetched here, and the cache that makes it cheap per edit."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from core.errors import ModelLoadError
from core.models import (
    DEFAULT_MODEL,
    ModelRef,
    check_safetensors_header,
    hub_problem,
    inspect_model_folder,
    vocabulary_mismatch,
)
from tests.helpers import SPELLING_VOCAB, TINY_VOCAB, tiny_bert_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _copy(tiny: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny, tmp_path / "model"))


def test_header_sizes_agree_with_the_safetensors_library(tiny: Path) -> None:
    from safetensors import safe_open

    sizes = check_safetensors_header(tiny / "model.safetensors")
    with safe_open(str(tiny / "model.safetensors"), framework="numpy") as f:
        reference = {k: f.get_tensor(k).nbytes for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    assert sizes == reference and len(sizes) > 10


def _damaged(data: bytes) -> dict[str, bytes]:
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"][1] += 4  # a tensor claims bytes of its neighbour
    moved = json.dumps(header).encode()
    return {
        "truncated by one byte": data[:-1],
        "one byte appended": data + b"\0",
        "empty": b"",
        "header length beyond the file": (10**12).to_bytes(8, "little") + data[8:],
        "not safetensors at all": b"PK\x03\x04" + data[4:],
        "header not JSON": data[:8] + b"{" * length + data[8 + length :],
        "overlapping offsets": len(moved).to_bytes(8, "little") + moved + data[8 + length :],
    }


_DAMAGES = ["truncated by one byte", "one byte appended", "empty", "header length beyond the file",
            "not safetensors at all", "header not JSON", "overlapping offsets"]


@pytest.mark.parametrize("damage", _DAMAGES)
def test_damaged_safetensors_are_refused_like_the_library_refuses_them(tiny: Path, tmp_path: Path, damage: str) -> None:
    from safetensors.numpy import load_file

    path = tmp_path / "model.safetensors"
    path.write_bytes(_damaged((tiny / "model.safetensors").read_bytes())[damage])
    with pytest.raises(Exception):  # noqa: B017 (the reference: safetensors itself refuses the file)
        load_file(str(path))
    with pytest.raises(ModelLoadError) as info:
        check_safetensors_header(path)
    assert str(path) in str(info.value) and "damaged or not a safetensors file" in str(info.value)


def test_facts_of_a_good_folder_and_of_the_packaged_model(tiny: Path) -> None:
    from transformers import AutoTokenizer

    facts = inspect_model_folder(tiny)
    reference = len(AutoTokenizer.from_pretrained(str(tiny)))  # TINY_VOCAB lists "a" twice: 46 distinct tokens
    assert (facts.model_type, facts.vocab_size, facts.tokens, facts.max_positions, facts.layers) == (
        "bert", len(TINY_VOCAB), reference, 128, 2)
    assert facts.weights_bytes == (tiny / "model.safetensors").stat().st_size
    assert 0 < facts.embedding_bytes < facts.weights_bytes
    packaged = inspect_model_folder(ModelRef.parse(DEFAULT_MODEL).local_folder())  # type: ignore[arg-type]
    assert (packaged.vocab_size, packaged.tokens, packaged.max_positions, packaged.layers) == (30522, 30522, 512, 6)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("no tokenizer", "has no tokenizer: it needs tokenizer.json or vocab.txt"),
        ("tokenizer.json not JSON", "tokenizer.json is damaged or not a tokenizer file"),
        ("vocab.txt not UTF-8", "vocab.txt is damaged or not a tokenizer file"),
        ("config.json not JSON", "config.json is not valid JSON"),
        ("config.json a list", "has no 'model_type'"),
        ("ids beyond the embeddings", f"token ids up to {len(TINY_VOCAB) - 1}, but the model's embeddings hold 40 rows"),
        ("a file, not a folder", "is a file; give the folder"),
    ],
)
def test_broken_folders_name_the_file_and_the_problem(tiny: Path, tmp_path: Path, damage: str, needle: str) -> None:
    folder = _copy(tiny, tmp_path)
    if damage == "no tokenizer":
        (folder / "tokenizer.json").unlink()
        (folder / "vocab.txt").unlink()
    elif damage == "tokenizer.json not JSON":
        (folder / "tokenizer.json").write_text('{"model": ', encoding="utf-8")
    elif damage == "vocab.txt not UTF-8":
        (folder / "tokenizer.json").unlink()
        (folder / "vocab.txt").write_bytes(b"[PAD]\n\xff\xfe\n")
    elif damage == "config.json not JSON":
        (folder / "config.json").write_text('{"model_type": "bert",', encoding="utf-8")
    elif damage == "config.json a list":
        (folder / "config.json").write_text("[1, 2]", encoding="utf-8")
    elif damage == "ids beyond the embeddings":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 40}), encoding="utf-8")
    else:
        folder = folder / "config.json"
    with pytest.raises(ModelLoadError) as info:
        inspect_model_folder(folder)
    assert needle in str(info.value)


def test_checks_are_cached_per_file_version(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.models as models

    folder = _copy(tiny, tmp_path)
    first = inspect_model_folder(folder)
    calls: list[Path] = []
    real = models._inspect
    monkeypatch.setattr(models, "_inspect", lambda f: calls.append(f) or real(f))
    assert inspect_model_folder(folder) is first and calls == []  # unchanged files: not read again
    weights = folder / "model.safetensors"
    with weights.open("r+b") as fh:
        fh.truncate(weights.stat().st_size - 10)
    with pytest.raises(ModelLoadError, match="truncated"):
        inspect_model_folder(folder)
    assert calls == [folder]
    with pytest.raises(ModelLoadError, match="truncated"):  # the failure is cached too
        inspect_model_folder(folder)
    assert calls == [folder]


def test_hub_ids_that_cannot_be_fetched_here_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: every test is offline
    why = hub_problem(ModelRef.parse("google-bert/bert-base-uncased"))
    assert why is not None and "'google-bert/bert-base-uncased' is not downloaded" in why and "HF_HUB_OFFLINE" in why
    assert "neither a model folder nor a hub id" in (hub_problem(ModelRef.parse("my model/with spaces/x")) or "")
    assert hub_problem(ModelRef.parse(DEFAULT_MODEL)) is None
    # A hub model downloaded before loads offline: no problem.
    snapshot = tmp_path / "models--org--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert hub_problem(ModelRef.parse("org/cached")) is None
    # Online but unreachable: said too, without waiting more than the probe's timeout.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    why = hub_problem(ModelRef.parse("org/not-cached"))
    assert why is not None and "cannot be reached" in why


def test_vocabulary_mismatch_names_both_sizes(tiny: Path, tmp_path: Path) -> None:
    other = tiny_bert_folder(tmp_path / "other", vocab=SPELLING_VOCAB)
    same = tiny_bert_folder(tmp_path / "same", layers=1)
    a, b = inspect_model_folder(tiny), inspect_model_folder(other)
    why = vocabulary_mismatch("the teacher", a, "the student", b)
    assert why is not None
    assert f"the teacher has a vocabulary of {a.tokens} tokens, {len(TINY_VOCAB)} embedding rows" in why
    assert f"the student of {len(SPELLING_VOCAB)} tokens, {len(SPELLING_VOCAB)} embedding rows" in why
    assert vocabulary_mismatch("the teacher", a, "the student", inspect_model_folder(same)) is None
    shuffled = tiny_bert_folder(tmp_path / "shuffled", vocab=[*TINY_VOCAB[:5], *reversed(TINY_VOCAB[5:])])
    why = vocabulary_mismatch("a", a, "b", inspect_model_folder(shuffled))
    assert why is not None and "the same number of tokens, but different ones" in why
