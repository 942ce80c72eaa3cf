"""Evaluation matches a naive loop in original order; size counts honestly; latency fields are sane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from core.errors import StepCancelled
from core.measure import environment, evaluate, latency, size_flag, size_report, subset_indices
from core.measure.size import SizeReport
from core.models import ModelRef, load_model, load_tokenizer
from core.tasks import get_task
from tests.helpers import tiny_bert_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRef, Any]:
    ref = ModelRef.parse(str(tiny_bert_folder(tmp_path_factory.mktemp("tiny"))))
    return ref, load_tokenizer(ref)


def _model(ref: ModelRef, task_id: str) -> Any:
    task = get_task(task_id)
    torch.manual_seed(1)
    return load_model(ref, task.head, task.num_labels).eval()


def _naive(model: Any, tok: Any, task: Any, data: Any) -> list[Any]:
    """One example at a time, no sorting, no padding: the reference the engine must agree with."""
    out = []
    with torch.no_grad():
        for row in data:
            enc = tok(row["text"], row.get("text_pair"), truncation=True, max_length=128, return_tensors="pt")
            logits = model(**enc).logits[0]
            out.append(float(logits[0]) if task.head == "regression" else int(logits.argmax()))
    return out


@pytest.mark.parametrize("task_id", ["sst2", "rte", "stsb"])
def test_predictions_in_original_order_equal_a_naive_loop(tiny: tuple[ModelRef, Any], task_id: str) -> None:
    ref, tok = tiny
    task = get_task(task_id)
    model = _model(ref, task_id)
    result = evaluate(model, tok, task, limit=60, batch_size=8)
    reference = _naive(model, tok, task, task.load("dev").select(range(60)))
    if task.head == "regression":
        assert result.predictions == pytest.approx(reference, abs=1e-5)
    else:
        assert result.predictions == reference
    expected = task.score(reference, list(task.load("dev")["label"][:60]))
    # a tiny random regression head gives near-constant outputs, so correlations amplify float noise
    assert result.metrics == pytest.approx(expected, rel=1e-3 if task.head == "regression" else 1e-9)
    assert result.primary == result.metrics[task.primary_metric]
    assert result.examples == 60 and result.seconds > 0
    assert "subset" in result.note


@pytest.mark.parametrize("task_id", ["sst2", "stsb"])
def test_confidences_are_the_top_softmax_probability_or_the_value(tiny: tuple[ModelRef, Any], task_id: str) -> None:
    ref, tok = tiny
    task = get_task(task_id)
    model = _model(ref, task_id)
    result = evaluate(model, tok, task, limit=12, batch_size=5)
    expected = []
    with torch.no_grad():
        for row in task.load("dev").select(range(12)):
            enc = tok(row["text"], row.get("text_pair"), truncation=True, max_length=128, return_tensors="pt")
            logits = model(**enc).logits[0]
            expected.append(float(logits[0]) if task.head == "regression" else float(logits.softmax(-1).max()))
    assert result.confidences == pytest.approx(expected, abs=1e-5)
    if task.head != "regression":
        assert all(0.5 <= c <= 1.0 for c in result.confidences)  # two classes: the top one has at least half


def test_subset_sampling_is_deterministic() -> None:
    a = subset_indices(1000, 50, 7)
    assert a == subset_indices(1000, 50, 7) and a == sorted(a) and len(set(a)) == 50
    assert a != subset_indices(1000, 50, 8)
    assert subset_indices(1000, 5, None) == [0, 1, 2, 3, 4]
    assert subset_indices(10, 50, 3) == list(range(10))


def test_sampled_evaluation_is_reproducible(tiny: tuple[ModelRef, Any]) -> None:
    ref, tok = tiny
    model = _model(ref, "sst2")
    task = get_task("sst2")
    one = evaluate(model, tok, task, limit=30, sample_seed=3)
    two = evaluate(model, tok, task, limit=30, sample_seed=3)
    assert one.predictions == two.predictions and one.metrics == two.metrics
    picked = task.load("dev").select(subset_indices(872, 30, 3))
    assert one.predictions == _naive(model, tok, task, picked)


def test_threads_are_pinned_and_restored_and_callbacks_fire(tiny: tuple[ModelRef, Any]) -> None:
    ref, tok = tiny
    model = _model(ref, "sst2")
    before = torch.get_num_threads()
    ticks: list[float] = []
    result = evaluate(model, tok, get_task("sst2"), limit=20, batch_size=8, threads=1,
                      progress=lambda f, m: ticks.append(f))  # fmt: skip
    assert result.threads == 1 and torch.get_num_threads() == before
    assert ticks[-1] == 1.0 and len(ticks) == 3
    with pytest.raises(StepCancelled):
        evaluate(model, tok, get_task("sst2"), limit=20, cancelled=lambda: True)
    assert torch.get_num_threads() == before


def test_qa_evaluation_runs_end_to_end(tiny: tuple[ModelRef, Any]) -> None:
    ref, tok = tiny
    model = _model(ref, "squad_v2")
    result = evaluate(model, tok, get_task("squad_v2"), limit=6, max_length=128)
    assert len(result.predictions) == 6 and {"id", "text", "null_odds"} <= set(result.predictions[0])
    assert result.confidences == [-p["null_odds"] for p in result.predictions]  # the span's margin over "no answer"
    assert 0.0 <= result.metrics["f1"] <= 100.0 and "best_f1_thresh" in result.metrics
    assert "article split" in result.note


def test_size_report_counts_a_shared_tensor_once(tiny: tuple[ModelRef, Any]) -> None:
    ref, _ = tiny
    model = _model(ref, "sst2")
    total = sum(p.numel() for p in model.parameters())
    layers = model.base_model.encoder.layer
    shared = layers[1].attention.self.query.weight
    layers[0].attention.self.query.weight = shared
    report = size_report(model)
    assert report.params == total - shared.numel()
    # also a tensor shared through two Parameter objects on the same storage
    layers[0].attention.self.key.weight = torch.nn.Parameter(layers[1].attention.self.key.weight.data)
    assert size_report(model).params == report.params - shared.numel()


def test_nonzeros_follow_pruning_masks(tiny: tuple[ModelRef, Any]) -> None:
    ref, _ = tiny
    model = _model(ref, "sst2")
    before = size_report(model)
    linear = model.base_model.encoder.layer[0].intermediate.dense
    from torch.nn.utils import prune

    prune.l1_unstructured(linear, "weight", amount=0.5)
    after = size_report(model)
    assert after.params == before.params  # weight_orig replaces weight; the mask is a buffer
    assert before.nonzero_params - after.nonzero_params == linear.weight.numel() // 2


def test_artifact_bytes_and_size_flag(tiny: tuple[ModelRef, Any], tmp_path: Path) -> None:
    from core.artifacts import save_artifact
    from core.state import ModelState

    ref, tok = tiny
    model = _model(ref, "sst2")
    state = ModelState(model=model, tokenizer=tok, task="sst2", head="classification")
    written = save_artifact(state, tmp_path / "a")
    report = size_report(model, tmp_path / "a")
    assert report.artifact_bytes == written
    assert report.weights_bytes == (tmp_path / "a" / "model.safetensors").stat().st_size
    assert report.weights_bytes > 4 * report.params  # float32 payload plus a header
    flag = size_flag(report, report)
    assert flag is not None and "not smaller" in flag and "values only" in flag
    zeroed = SizeReport(report.params, report.nonzero_params // 2, report.artifact_bytes, report.weights_bytes)
    assert "densely" in (size_flag(report, zeroed) or "")
    smaller = SizeReport(report.params, report.params, report.artifact_bytes - 1, None)
    assert size_flag(report, smaller) is None


def test_latency_report_fields_are_sane(tiny: tuple[ModelRef, Any]) -> None:
    ref, tok = tiny
    model = _model(ref, "sst2")
    before = torch.get_num_threads()
    rep = latency(model, tok, batch_size=2, seq_len=16, warmup=1, repeats=5, threads=1)
    assert (rep.batch_size, rep.seq_len, rep.threads, rep.repeats) == (2, 16, 1, 5)
    assert len(rep.times_ms) == 5 and rep.min_ms <= rep.p50_ms <= rep.p90_ms <= rep.max_ms
    assert rep.min_ms <= rep.mean_ms <= rep.max_ms and rep.min_ms > 0
    assert torch.get_num_threads() == before
    assert set(rep.to_dict()) >= {"p50_ms", "p90_ms", "mean_ms", "batch_size", "seq_len", "threads", "repeats"}


def test_environment_records_cpu_and_versions() -> None:
    env = environment()
    assert env["cpu_model"] and env["cores"] >= 1
    assert env["versions"]["torch"] == torch.__version__.split("+")[0] or env["versions"]["torch"].startswith(
        torch.__version__.split("+")[0]
    )
    assert isinstance(env["cpu_flags"], list)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_int8_dynamic_linear_weights_are_still_counted(tiny: tuple[ModelRef, Any]) -> None:
    ref, _ = tiny
    model = _model(ref, "sst2")
    before = size_report(model)
    qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    after = size_report(qmodel)
    assert after.params == before.params  # packed int8 weights + float biases
    assert after.nonzero_params <= before.nonzero_params  # tiny weights may round to zero
    assert after.nonzero_params > 0.9 * before.nonzero_params


def test_size_flag_explains_a_training_step_that_only_changed_values() -> None:
    from core.measure.size import SizeReport

    parent = SizeReport(params=100, nonzero_params=90, artifact_bytes=1000)
    trained = SizeReport(params=100, nonzero_params=100, artifact_bytes=1004)  # fine-tuning filled zeros
    assert "changed values only" in (size_flag(parent, trained) or "")
    fewer = SizeReport(params=80, nonzero_params=80, artifact_bytes=1200)
    assert "outweighs" in (size_flag(parent, fewer) or "")
