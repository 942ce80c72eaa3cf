"""Export to ONNX Runtime and OpenVINO: every family agrees with torch, the adapter scores like the
model, timing interleaves sessions on pinned threads, missing packages are explained."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.backends import BackendUnavailable
from core.backends.artifact import (
    is_backend_artifact,
    load_backend_artifact,
    read_manifest,
    size_report,
)
from core.backends.deploy import DISAGREES, OK, UNAVAILABLE, deploy_all, deploy_variant
from core.backends.errors import BackendError
from core.backends.session import SessionModel, TorchSession
from core.backends.timing import TimedSession, paired_ratio, time_sessions
from core.backends.verify import compare, probe_batches
from core.measure import evaluate
from core.pooling import MEAN, set_pooling
from tests.core.backends_support import FAMILIES, family_state
from tests.core.steps_support import tiny_state, tiny_task

BACKENDS = ["torch", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each family (classification) and the BERT regression and QA heads on every backend."""
    tmp = tmp_path_factory.mktemp("deployed")
    out = {}
    cases = [(f, "classification") for f in FAMILIES] + [("bert", "regression"), ("bert", "qa")]
    for family, head in cases:
        state = family_state(tmp, family, head)
        task = tiny_task(head)
        variants = deploy_all(state.model, state.tokenizer, task, BACKENDS, tmp / f"{family}_{head}", threads=1,
                              variant=f"{family} {head}")  # fmt: skip
        out[(family, head)] = (state, task, variants)
    return out


@pytest.mark.parametrize("case", [(f, "classification") for f in FAMILIES] + [("bert", "regression"), ("bert", "qa")],
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_every_family_and_head_exports_to_both_backends_and_agrees(deployed: dict[str, Any], case: Any) -> None:
    _, _, variants = deployed[case]
    for backend in BACKENDS:
        v = variants[backend]
        assert v.status == OK, v.message
        assert v.ok and v.session is not None
    for backend in ("onnxruntime", "openvino"):
        v = variants[backend]
        trip = v.round_trip
        assert trip.passed and trip.agreement == 1.0 and trip.examples == 12
        assert trip.max_abs_diff < 1e-4, trip
        assert is_backend_artifact(v.folder)
        manifest = read_manifest(v.folder)
        assert manifest["backend"] == backend and manifest["head"] == case[1] and manifest["precision"] == "fp32"
        assert v.bytes == sum(p.stat().st_size for p in v.folder.rglob("*") if p.is_file())
    # the graph takes exactly what the family's forward accepts
    inputs = variants["onnxruntime"].session.input_names
    takes_types = case[0] in ("bert", "roberta")
    assert inputs == ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])


@pytest.mark.parametrize("family", FAMILIES)
def test_mean_pooling_is_baked_into_both_exported_files(tmp_path: Path, family: str) -> None:
    state = family_state(tmp_path, family)
    texts = ["the good movie", "a bad film is not very good !"]  # padded: the mask must reach the mean
    feed = dict(state.tokenizer(texts, return_tensors="pt", padding=True, return_token_type_ids=False))
    with torch.inference_mode():
        first_token = state.model(**feed).logits.numpy()
        set_pooling(state.model, MEAN)
        mean = state.model(**feed).logits.numpy()
    assert not np.allclose(first_token, mean, atol=1e-3)
    variants = deploy_all(state.model, state.tokenizer, tiny_task(), ["onnxruntime", "openvino"], tmp_path / "out",
                          threads=1, variant=f"{family} mean")  # fmt: skip
    for backend in ("onnxruntime", "openvino"):
        assert variants[backend].status == OK, variants[backend].message
        names = variants[backend].session.input_names
        got = variants[backend].session.run({k: v for k, v in feed.items() if k in names})["logits"]
        assert np.allclose(got, mean, atol=1e-4)


def test_dynamic_axes_accept_other_batch_and_sequence_sizes(deployed: dict[str, Any]) -> None:
    state, _, variants = deployed[("bert", "qa")]
    for backend in ("onnxruntime", "openvino"):
        session = variants[backend].session
        for batch, seq in ((1, 1), (5, 37), (3, 128)):
            ids = torch.randint(5, len(state.tokenizer), (batch, seq))
            feed = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
            with torch.inference_mode():
                want = state.model(**feed)
            got = session.run(feed)
            assert got["start_logits"].shape == (batch, seq)
            assert np.allclose(got["start_logits"], want.start_logits.numpy(), atol=1e-4)
            assert np.allclose(got["end_logits"], want.end_logits.numpy(), atol=1e-4)


@pytest.mark.parametrize("head", ["classification", "regression", "qa"])
def test_adapter_gives_the_torch_metric_through_evaluate(deployed: dict[str, Any], head: str) -> None:
    state, task, variants = deployed[("bert", head)]
    reference = evaluate(state.model, state.tokenizer, task, threads=1, batch_size=4)
    for backend in ("onnxruntime", "openvino"):
        model = variants[backend].model
        assert isinstance(model, SessionModel) and model.training is False
        result = evaluate(model, state.tokenizer, task, threads=1, batch_size=4)
        assert result.primary == pytest.approx(reference.primary, abs=1e-6)
        if head == "regression":
            assert np.allclose(result.predictions, reference.predictions, atol=1e-5)
        elif head == "qa":
            assert [p["text"] for p in result.predictions] == [p["text"] for p in reference.predictions]
        else:
            assert result.predictions == reference.predictions


def test_adapter_is_torch_like_but_cannot_train(deployed: dict[str, Any]) -> None:
    _, _, variants = deployed[("bert", "classification")]
    model = variants["onnxruntime"].model
    assert model.eval() is model and model.train(False) is model
    with pytest.raises(BackendError, match="cannot be trained"):
        model.train()
    ids = torch.tensor([[2, 31, 32, 3]])
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids))  # token_type_ids filled with zeros
    assert isinstance(out.logits, torch.Tensor) and out.logits.shape == (1, 2)
    with pytest.raises(BackendError, match="no input_ids"):
        model(attention_mask=torch.ones_like(ids))


def test_backend_artifact_reloads_to_a_session_with_its_tokenizer(deployed: dict[str, Any]) -> None:
    state, task, variants = deployed[("roberta", "classification")]
    for backend in ("onnxruntime", "openvino"):
        folder = variants[backend].folder
        loaded = load_backend_artifact(folder, threads=1)
        assert loaded.session.backend == backend and loaded.model.folder == folder
        assert loaded.tokenizer.get_vocab() == state.tokenizer.get_vocab()
        assert loaded.model.config.model_type == "roberta"
        batch = probe_batches(task, state.tokenizer, size=4)[0]
        assert np.allclose(loaded.session.run(batch)["logits"], variants[backend].session.run(batch)["logits"])
        report = size_report(folder)
        assert report.artifact_bytes == variants[backend].bytes
        params = sum(p.numel() for p in state.model.parameters())
        assert 0.9 * params <= report.params <= 1.1 * params  # the constants are the weights (plus small ones)
    manifest = json.loads((variants["openvino"].folder / "manifest.json").read_text())
    assert manifest["file_format"] == "openvino-ir" and manifest["model_file"] == "model.xml"
    assert "openvino.convert_model" in manifest["exporter"]


def test_a_torch_artifact_is_not_a_backend_artifact(tmp_path: Path) -> None:
    from core.artifacts import save_artifact

    state = tiny_state(tmp_path)
    save_artifact(state, tmp_path / "torch_artifact")
    assert not is_backend_artifact(tmp_path / "torch_artifact")
    with pytest.raises(BackendError, match="torch artifact"):
        read_manifest(tmp_path / "torch_artifact")


def test_round_trip_flags_an_export_that_disagrees(deployed: dict[str, Any]) -> None:
    state, task, variants = deployed[("bert", "classification")]
    good = variants["onnxruntime"].session

    class Swapped:
        backend, threads, input_names = "onnxruntime", 1, good.input_names

        def run(self, batch: Any) -> dict[str, Any]:
            logits = good.run(batch)["logits"]
            return {"logits": logits[:, ::-1].copy()}  # every prediction flips

    reference = TorchSession(state.model, "classification", threads=1)
    batches = probe_batches(task, state.tokenizer)
    trip = compare(reference, Swapped(), batches, "classification", backend="onnxruntime")
    assert not trip.passed and trip.agreement < 0.995
    assert "disagrees" in trip.reason and "not measured" in trip.reason
    assert compare(reference, good, batches, "classification", backend="onnxruntime").passed


def test_regression_tolerance_is_stated_and_applied(deployed: dict[str, Any]) -> None:
    state, task, variants = deployed[("bert", "regression")]
    good = variants["onnxruntime"].session

    class Shifted:
        backend, threads, input_names = "onnxruntime", 1, good.input_names

        def __init__(self, by: float) -> None:
            self.by = by

        def run(self, batch: Any) -> dict[str, Any]:
            return {"logits": good.run(batch)["logits"] + self.by}

    reference = TorchSession(state.model, "regression", threads=1)
    batches = probe_batches(task, state.tokenizer)
    near = compare(reference, Shifted(0.005), batches, "regression", backend="onnxruntime")
    far = compare(reference, Shifted(0.05), batches, "regression", backend="onnxruntime")
    assert near.passed and near.tolerance == "|score difference| <= 0.01"
    assert not far.passed and far.agreement == 0.0 and far.max_abs_diff == pytest.approx(0.05, rel=1e-3)


def test_missing_backend_package_is_explained_and_other_backends_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tiny_state(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    from core.backends.packages import available, require

    with pytest.raises(BackendUnavailable, match=r'pip install -e "\.\[deploy\]"') as err:
        require("onnxruntime", purpose="Running ONNX Runtime", backend="onnxruntime")
    assert "'onnxruntime'" in str(err.value) and err.value.backend == "onnxruntime"
    assert not available("openvino") and available("torch")
    variants = deploy_all(state.model, state.tokenizer, tiny_task(), BACKENDS, tmp_path / "out", threads=1)
    assert variants["torch"].status == OK
    for backend in ("onnxruntime", "openvino"):
        assert variants[backend].status == UNAVAILABLE
        assert 'pip install -e ".[deploy]"' in variants[backend].message
        assert variants[backend].session is None


def test_a_disagreeing_file_is_not_handed_out_for_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.backends.verify as verify

    state = tiny_state(tmp_path)
    real = verify.compare
    monkeypatch.setattr(verify, "compare", lambda *a, **k: real(*a, **{**k, "min_agreement": 1.01}))
    v = deploy_variant(state.model, state.tokenizer, tiny_task(), "onnxruntime", tmp_path / "ort", threads=1)
    assert v.status == DISAGREES and not v.ok
    assert v.session is None and v.model is None and v.round_trip is not None


class _FakeSession:
    def __init__(self, name: str, log: list[str], threads: int = 2, backend: str = "onnxruntime") -> None:
        self.name, self.log, self.threads, self.backend = name, log, threads, backend
        self.shapes: list[tuple[int, ...]] = []

    def run(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.log.append(self.name)
        self.shapes.append(batch["input_ids"].shape)
        return {}

    def info(self) -> Any:
        from core.backends.session import SessionInfo

        return SessionInfo(backend=self.backend, threads=self.threads)


def test_timing_interleaves_rounds_on_the_same_inputs(tmp_path: Path) -> None:
    tokenizer = tiny_state(tmp_path).tokenizer
    log: list[str] = []
    fakes = [_FakeSession(n, log) for n in "abc"]
    timed = [TimedSession(f.name, f, tokenizer, variant="v") for f in fakes]
    results = time_sessions(timed, batch_size=3, seq_len=7, threads=2, rounds=4, warmup=1, pause_s=0)
    assert log[:3] == ["a", "b", "c"]  # warm-up, then 4 rounds, the order rotated each round
    rounds = [log[3 + 3 * r : 6 + 3 * r] for r in range(4)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert all(set(f.shapes) == {(3, 7)} for f in fakes)
    for r in results:
        assert r.rounds == 4 and len(r.times_ms) == 4 and r.threads == 2 and r.batch_size == 3 and r.seq_len == 7
        assert r.min_ms <= r.p25_ms <= r.p50_ms <= r.p75_ms <= r.p90_ms <= r.max_ms
    ratio = paired_ratio(results[0], results[1])
    assert ratio["low"] <= ratio["ratio"] <= ratio["high"]
    with pytest.raises(BackendError, match="same thread count"):
        time_sessions([*timed, TimedSession("d", _FakeSession("d", log, threads=1), tokenizer)], threads=2, rounds=1)


def test_timing_real_sessions_pins_their_threads(deployed: dict[str, Any]) -> None:
    state, _, variants = deployed[("bert", "classification")]
    timed = [TimedSession(b, variants[b].session, state.tokenizer) for b in BACKENDS]
    results = time_sessions(timed, batch_size=2, seq_len=16, threads=1, rounds=3, warmup=1)
    assert [r.backend for r in results] == BACKENDS
    assert all(r.p50_ms > 0 and r.threads == 1 for r in results)
    assert results[1].settings["settings"]["intra_op_num_threads"] == 1
    assert results[2].settings["settings"]["INFERENCE_NUM_THREADS"] == 1
    assert results[2].settings["settings"]["inference_precision"] == "f32"
