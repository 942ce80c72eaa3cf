"""measure.backends and quantize.static_int8 through the runner (issue 15): each variant exported,
round-trip checked and timed on every backend side by side; rows, the CLI and exports carry
``latency_p50_ms_<backend>`` and the fastest backend; a static int8 variant is its deployable file,
sized and measured by running it. Checked against ONNX Runtime and OpenVINO called directly."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import protocol as p
from core.run.runner import run_recipe
from core.store import export_table, open_store, result_rows, results_table, run_variants, variant_predictions
from tests.core.fakes import tiny_recipe

BACKENDS = ["torch", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _run(tiny: Path, folder: Path, chain: list[dict[str, Any]], backends: list[str]) -> tuple[Any, list[Any]]:
    recipe = tiny_recipe(tiny, chain)
    recipe["measure"] = {**recipe["measure"], "backends": backends, "latency_repeats": 3}
    events: list[Any] = []
    terminal = run_recipe(recipe, db_url_or_path=folder / "w.sqlite", artifacts_dir=folder / "a", emit=events.append)
    assert isinstance(terminal, p.RunFinished), terminal
    return terminal, events


@pytest.fixture(scope="module")
def timed(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """baseline -> dynamic int8 (torch), on all three backends."""
    folder = tmp_path_factory.mktemp("timed")
    terminal, _ = _run(tiny, folder, [{"step": "quantize.dynamic_int8", "config": {}}], BACKENDS)
    return folder, terminal.run_id


def _dev_batch(folder: Path, indices: list[int], max_length: int = 16) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    from core.tasks.base import get_task

    texts = list(get_task("sst2").load("dev").select(indices)["text"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"))


def test_every_backend_is_timed_side_by_side_and_rows_carry_it(timed: tuple[Path, int]) -> None:
    folder, run_id = timed
    store = open_store(folder / "w.sqlite")
    base, int8 = result_rows(store, run_ids=[run_id])
    assert list(base.backend_latency) == BACKENDS
    for backend, (p50, low, high) in base.backend_latency.items():
        assert p50 is not None and low is not None and high is not None and low <= p50 <= high, backend
    assert base.fastest_backend == min(base.backend_latency, key=lambda b: base.backend_latency[b][0])
    # The variant's own latency is torch's, from the same interleaved rounds.
    assert base.latency_p50_ms == base.backend_latency["torch"][0]
    # torch dynamic int8 cannot be exported: a flag per backend names it and the fix; torch still timed.
    assert list(int8.backend_latency) == ["torch"]
    texts = [f["text"] for f in int8.flags if f["code"] == "not_on_backend"]
    assert len(texts) == 2 and all("quantize.static_int8" in t for t in texts)
    assert int8.fastest_backend == "torch"


def test_exports_reload_in_the_runtimes_themselves_and_agree_with_torch(timed: tuple[Path, int]) -> None:
    """The exported files a run keeps, opened with onnxruntime and openvino directly (no workbench
    code), give the torch artifact's logits."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    from core.steps import load_state

    folder, run_id = timed
    store = open_store(folder / "w.sqlite")
    base = run_variants(store, run_id)[0]
    artifact = Path(base.artifact_path or "")
    exports = artifact.parent / "exports" / artifact.name
    batch = _dev_batch(artifact, list(range(12)))
    with torch.inference_mode():
        expected = load_state(artifact).model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    session = ort.InferenceSession(str(exports / "onnxruntime" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    onnx_logits = session.run(None, {k: v.astype(np.int64) for k, v in batch.items() if k in names})[0]
    compiled = ov.Core().compile_model(str(exports / "openvino" / "model.xml"), "CPU")
    ov_names = {i.get_any_name() for i in compiled.inputs}
    ov_logits = compiled({k: v.astype(np.int64) for k, v in batch.items() if k in ov_names})[compiled.output(0)]
    np.testing.assert_allclose(onnx_logits, expected, atol=1e-4)
    np.testing.assert_allclose(ov_logits, expected, atol=1e-4)
    assert base.metrics["roundtrip_agreement_onnxruntime"] == 1.0
    assert base.metrics["export_bytes_openvino"] == sum(f.stat().st_size for f in (exports / "openvino").rglob("*"))


def test_cli_show_and_every_export_carry_the_backend_columns(timed: tuple[Path, int],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    folder, run_id = timed
    assert main(["show", str(run_id), "--db", str(folder / "w.sqlite")]) == 0
    out = capsys.readouterr().out
    assert all(f"{b} p50 ms [95% CI]" in out for b in BACKENDS) and "fastest" in out
    store = open_store(folder / "w.sqlite")
    table = results_table(store, run_ids=[run_id])
    rows = list(csv.DictReader(io.StringIO(export_table(table, "csv"))))
    base = result_rows(store, run_ids=[run_id])[0]
    for b in BACKENDS:
        assert float(rows[0][f"latency_p50_ms_{b}"]) == pytest.approx(base.backend_latency[b][0])
        assert rows[0][f"latency_p50_ms_{b}_ci95_low"] and rows[0][f"latency_p50_ms_{b}_ci95_high"]
    assert rows[0]["fastest_backend"] == base.fastest_backend
    assert rows[1]["latency_p50_ms_openvino"] == ""  # dynamic int8 is not on OpenVINO
    data = json.loads(export_table(table, "json"))
    assert data["units"]["latency_p50_ms_openvino"] == "ms" and "fastest_backend" in data["columns"]
    header = export_table(table, "markdown").splitlines()[0]
    assert "latency_p50_ms_onnxruntime" in header and "fastest_backend" in header


def test_a_disagreeing_export_is_flagged_and_not_timed(tiny: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from core.backends import verify

    monkeypatch.setattr(verify, "MIN_AGREEMENT", 1.01)  # no export can agree that well
    terminal, events = _run(tiny, tmp_path, [], ["torch", "openvino"])
    (row,) = result_rows(open_store(tmp_path / "w.sqlite"), run_ids=[terminal.run_id])
    assert list(row.backend_latency) == ["torch"]
    # The bar stays below 100 % until the backends are timed (it used to reach it when evaluation ended).
    progress = [e for e in events if isinstance(e, p.Progress)]
    timing = next(i for i, e in enumerate(progress) if e.message.startswith("latency: timing"))
    assert all(e.fraction < 1.0 for e in progress[:timing]) and progress[-1].fraction == 1.0
    (flag,) = [f for f in row.flags if f["code"] == "export_disagrees"]
    assert flag["text"].startswith("OpenVINO:")


def test_a_missing_backend_package_is_named_and_the_others_still_measured(tiny: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from core.recipe import Recipe, validate_recipe

    recipe = Recipe.from_dict({**tiny_recipe(tiny, []), "measure": {"backends": ["torch", "onnxruntime"]}})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "onnxruntime" else object())
    (problem,) = [q for q in validate_recipe(recipe, check_files=False) if q.field == "measure.backends"]
    assert "'onnxruntime'" in problem.message and 'pip install -e ".[deploy]"' in problem.fix
    # Found but failing to import (a broken install) gets past validation: the run names it per
    # variant and backend, and still times torch.
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    terminal, _ = _run(tiny, tmp_path, [], ["torch", "onnxruntime"])
    (row,) = result_rows(open_store(tmp_path / "w.sqlite"), run_ids=[terminal.run_id])
    assert list(row.backend_latency) == ["torch"]
    (flag,) = [f for f in row.flags if f["code"] == "not_on_backend"]
    assert "onnxruntime" in flag["text"] and ".[deploy]" in flag["text"]


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_static_int8_variant_is_its_deployable_file_measured_on_that_backend(tiny: Path, tmp_path: Path,
                                                                              backend: str) -> None:
    from core.backends.artifact import folder_bytes, read_manifest

    chain = [{"step": "quantize.static_int8", "config": {"backend": backend, "calibration_size": 16}}]
    terminal, _ = _run(tiny, tmp_path, chain, BACKENDS)
    store = open_store(tmp_path / "w.sqlite")
    _, info = run_variants(store, terminal.run_id)
    _, row = result_rows(store, run_ids=[terminal.run_id])
    folder = Path(info.artifact_path or "")
    assert read_manifest(folder)["backend"] == backend and read_manifest(folder)["precision"] == "int8"
    assert info.metrics["artifact_bytes"] == folder_bytes(folder)  # size: the bytes of what ships
    assert list(row.backend_latency) == [backend] and row.latency_p50_ms == row.backend_latency[backend][0]
    # The stored dev predictions are the file's: the runtime itself, fed the same rows, predicts them.
    stored = variant_predictions(store, info.id)
    assert stored is not None
    batch = _dev_batch(folder, stored["indices"])
    if backend == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU")
        names = {i.get_any_name() for i in compiled.inputs}
        logits = compiled({k: v.astype(np.int64) for k, v in batch.items() if k in names})[compiled.output(0)]
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        logits = session.run(None, {k: v.astype(np.int64) for k, v in batch.items() if k in names})[0]
    assert logits.argmax(-1).tolist() == stored["predictions"]
    # Reused from the cache on a second run: the backend file counts as a whole artifact.
    again, _ = _run(tiny, tmp_path, chain, BACKENDS)
    assert all(r.cached for r in result_rows(store, run_ids=[again.run_id]))


def test_a_distilled_vocabulary_reduced_chain_ships_an_int8_file_with_its_own_tokenizer(tiny: Path,
                                                                                       tmp_path: Path) -> None:
    """Issue 15's second target as a recipe (bench_backends.py's chain): distil -> vocab -> static int8 on
    OpenVINO under an accuracy budget; the file reloads with the reduced tokenizer and predicts what was stored."""
    import openvino as ov
    from transformers import AutoTokenizer

    chain = [{"step": "distill", "config": {"student_layers": 1, "train_size": 16, "max_length": 16,
                                            "intermediate_epochs": 1.0, "prediction_epochs": 1.0}},
             {"step": "vocab.reduce", "config": {"keep_percent": 50.0}},
             {"step": "quantize.static_int8", "config": {"backend": "openvino", "calibration_size": 8}}]
    recipe = tiny_recipe(tiny, chain, budget={"metric_drop": 100.0})
    recipe["measure"] = {**recipe["measure"], "backends": BACKENDS, "latency_repeats": 2}
    terminal = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "a", emit=None)
    assert isinstance(terminal, p.RunFinished), terminal
    store = open_store(tmp_path / "w.sqlite")
    rows = result_rows(store, run_ids=[terminal.run_id])
    assert [r.step_id for r in rows] == ["baseline", "distill", "vocab.reduce", "quantize.static_int8"]
    folder = Path(rows[-1].artifact_path or "")
    shipped = AutoTokenizer.from_pretrained(str(folder))
    assert len(shipped) < len(AutoTokenizer.from_pretrained(str(tiny)))  # the reduced vocabulary ships with it
    assert list(rows[-1].backend_latency) == ["openvino"]
    assert all("over_budget" not in r.flag_codes for r in rows)  # a budget no chain can break: all of it ran
    stored = variant_predictions(store, rows[-1].variant)
    assert stored is not None
    batch = _dev_batch(folder, stored["indices"])
    compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU")
    names = {i.get_any_name() for i in compiled.inputs}
    logits = compiled({k: v.astype(np.int64) for k, v in batch.items() if k in names})[compiled.output(0)]
    assert logits.argmax(-1).tolist() == stored["predictions"]
