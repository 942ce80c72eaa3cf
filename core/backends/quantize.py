"""Static int8 post-training quantization for a deployment backend, calibrated on the task.

Both backends quantize their own float export of the model (:mod:`core.backends.export`),
calibrated on the same seeded subset of the task's train split (one unpadded example per
calibration batch):

- ``openvino``: NNCF post-training quantization of the OpenVINO model (``nncf.quantize`` with
  ``model_type=TRANSFORMER``, which keeps the attention softmax/LayerNorm paths in float where
  int8 costs accuracy, and stores the embedding tables int8 as well), saved as IR.
- ``onnxruntime``: ``onnxruntime.quantization.quantize_static`` in QDQ format after ORT's
  pre-processing (shape inference + graph optimisation), with a CalibrationDataReader over the
  calibration rows. Weights int8 (per output channel by default), activations uint8 with MinMax
  ranges, MatMuls with constant weights only, embedding tables quantized (see ``OnnxStaticSettings``).

The result is a backend artifact folder (:mod:`core.backends.artifact`) whose model file holds
int8 weights; :func:`int8_constant_count` counts them in the file.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.backends.errors import BackendError
from core.backends.packages import ONNXRUNTIME, OPENVINO, require

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Calibration:
    """Which rows calibrate the activation ranges."""

    size: int = 300
    seed: int = 0
    split: str = "train"
    max_length: int = 128


@dataclass(frozen=True)
class OpenVinoStaticSettings:
    preset: str = "mixed"  # mixed: symmetric weights, asymmetric activations; performance: both symmetric
    fast_bias_correction: bool = True
    smooth_quant: bool = True  # NNCF's SmoothQuant (alpha 0.95 on MatMuls; on by default for transformers)
    embeddings_int8: bool = True  # NNCF quantizes the embedding tables too (int8 weight-only); False keeps them float
    compress_to_fp16: bool = True  # remaining float constants stored fp16 (OpenVINO's save default)


@dataclass(frozen=True)
class OnnxStaticSettings:
    """ONNX Runtime's knobs. Measured on the fine-tuned MiniLM (SST-2 dev, 300 calibration rows):
    per-channel weights lose 0.2 points where per-tensor loses 2.0; uint8 and int8 activations and
    quantizing the attention MatMuls or not are within one sentence of each other. Only MinMax
    calibration: ORT's percentile/entropy calibrators need equal-shape batches (padding)."""

    per_channel: bool = True  # one weight scale per output channel
    activation_type: str = "uint8"  # uint8 (U8S8: the fast x86 path) or int8
    matmul_const_weights_only: bool = True  # leave the activation x activation attention MatMuls in float
    embeddings_int8: bool = True  # quantize the embedding Gathers' tables (per tensor)
    reduce_range: bool = False  # 7-bit weights, for CPUs without VNNI


@dataclass
class StaticInt8Result:
    backend: str
    folder: Path
    bytes: int
    seconds: float
    calibration: dict[str, Any]
    settings: dict[str, Any]
    int8_constants: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"folder": str(self.folder)}


def calibration_rows(task: Any, tokenizer: Any, calibration: Calibration) -> list[dict[str, list[int]]]:
    """A seeded sample of ``calibration.size`` rows of the split, tokenized without padding."""
    from core.measure.evaluation import subset_indices

    dataset = task.load(calibration.split)
    if calibration.size < 1:
        raise BackendError(f"calibration size must be at least 1, got {calibration.size}")
    indices = subset_indices(dataset.num_rows, calibration.size, calibration.seed)
    dataset = dataset.select(indices)
    if task.head == "qa":
        from core.tasks import squad

        rows = squad.eval_features(tokenizer, dataset, max_length=calibration.max_length,
                                   doc_stride=max(16, calibration.max_length // 2)).rows  # fmt: skip
        return rows[: calibration.size]
    from core.tasks.features import encode_texts

    enc = encode_texts(task, tokenizer, dataset, max_length=calibration.max_length)
    return [{k: enc[k][i] for k in enc} for i in range(len(enc["input_ids"]))]


def _feeds(rows: list[dict[str, list[int]]], names: list[str]) -> list[dict[str, Any]]:
    """One batch-1 feed dict per row, with exactly the graph's inputs."""
    import numpy as np

    feeds = []
    for row in rows:
        ids = np.asarray([row["input_ids"]], dtype=np.int64)
        feed = {}
        for name in names:
            if name in row:
                feed[name] = np.asarray([row[name]], dtype=np.int64)
            elif name == "attention_mask":
                feed[name] = np.ones_like(ids)
            else:
                feed[name] = np.zeros_like(ids)
        feeds.append(feed)
    return feeds


def _float_onnx(model: Any, tokenizer: Any, head: str, path: Path,
                onnx_file: Path | str | None) -> tuple[Path, list[str], str]:
    from core.backends.export import export_onnx, input_names

    if onnx_file is not None:
        return Path(onnx_file), input_names(model, tokenizer), "existing ONNX file"
    result = export_onnx(model, tokenizer, head, path, backend=ONNXRUNTIME)
    return result.path, result.inputs, result.exporter


def static_int8_openvino(
    model: Any,
    tokenizer: Any,
    task: Any,
    folder: Path | str,
    *,
    calibration: Calibration = Calibration(),
    settings: OpenVinoStaticSettings = OpenVinoStaticSettings(),
    progress: ProgressFn | None = None,
    manifest: dict[str, Any] | None = None,
) -> StaticInt8Result:
    """NNCF static int8 of ``model`` (a float transformers model), saved as an OpenVINO backend artifact."""
    from core.backends.artifact import save_backend_artifact

    ov = require("openvino", purpose="Static int8 with backend openvino", backend=OPENVINO)
    nncf = require("nncf", purpose="Static int8 with backend openvino (NNCF)", backend=OPENVINO)
    report = progress or (lambda fraction, message="": None)
    if settings.preset not in ("mixed", "performance"):
        raise BackendError(f"preset must be mixed or performance, got {settings.preset!r}", backend=OPENVINO)
    from core.backends.export import openvino_model

    started = time.perf_counter()
    report(0.05, "Converting the float model to OpenVINO")
    float_model, names = openvino_model(model, tokenizer, task.head)
    exporter = "openvino.convert_model (PyTorch frontend)"
    rows = calibration_rows(task, tokenizer, calibration)
    dataset = nncf.Dataset(_feeds(rows, names))
    report(0.2, f"Calibrating on {len(rows)} {calibration.split} rows (NNCF)")
    preset = nncf.QuantizationPreset.MIXED if settings.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
    advanced = None
    if not settings.smooth_quant:
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )

        advanced = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))
    # NNCF's transformer mode quantizes the embedding Gathers' tables itself; ignoring Gather keeps them float.
    ignored = None if settings.embeddings_int8 else nncf.IgnoredScope(types=["Gather"])
    with _quiet():
        quantized = nncf.quantize(
            float_model, dataset, preset=preset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(rows),
            fast_bias_correction=settings.fast_bias_correction, advanced_parameters=advanced, ignored_scope=ignored,
        )  # fmt: skip
    report(0.9, "Saving the OpenVINO IR")

    def write(path: Path) -> dict[str, Any]:
        ov.save_model(quantized, str(path), compress_to_fp16=settings.compress_to_fp16)
        return {"precision": "int8", "exporter": f"{exporter} -> nncf.quantize",
                "inputs": names, "outputs": [o.get_any_name() for o in quantized.outputs]}  # fmt: skip

    calib = asdict(calibration) | {"rows": len(rows)}
    knobs = asdict(settings) | {"nncf": nncf.__version__, "model_type": "transformer"}
    size = save_backend_artifact(folder, backend=OPENVINO, write_model=write, tokenizer=tokenizer, config=model.config,
                                 head=task.head, task=task.id,
                                 manifest={"quantization": {"method": "static_int8", "backend": OPENVINO,
                                                            "calibration": calib, "settings": knobs},
                                           **(manifest or {})})  # fmt: skip
    report(1.0, "Quantized")
    return StaticInt8Result(OPENVINO, Path(folder), size, time.perf_counter() - started, calib, knobs,
                            int8_constant_count(folder))  # fmt: skip


def static_int8_onnxruntime(
    model: Any,
    tokenizer: Any,
    task: Any,
    folder: Path | str,
    *,
    calibration: Calibration = Calibration(),
    settings: OnnxStaticSettings = OnnxStaticSettings(),
    onnx_file: Path | str | None = None,
    progress: ProgressFn | None = None,
    manifest: dict[str, Any] | None = None,
) -> StaticInt8Result:
    """ONNX Runtime static int8 (QDQ) of ``model``, saved as an ONNX Runtime backend artifact."""
    from core.backends.artifact import save_backend_artifact

    ort = require("onnxruntime", purpose="Static int8 with backend onnxruntime", backend=ONNXRUNTIME)
    require("onnx", purpose="Static int8 with backend onnxruntime", backend=ONNXRUNTIME)
    q = require("onnxruntime.quantization", purpose="Static int8 with backend onnxruntime", backend=ONNXRUNTIME)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    report = progress or (lambda fraction, message="": None)
    types = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    if settings.activation_type not in types:
        raise BackendError(f"activation_type must be one of {', '.join(types)}", backend=ONNXRUNTIME)
    started = time.perf_counter()
    rows = calibration_rows(task, tokenizer, calibration)
    with tempfile.TemporaryDirectory(prefix="workbench-int8-") as tmp:
        report(0.05, "Exporting the float model to ONNX")
        onnx_path, names, exporter = _float_onnx(model, tokenizer, task.head, Path(tmp) / "float.onnx", onnx_file)
        prepared = Path(tmp) / "prepared.onnx"
        report(0.1, "Pre-processing the graph (shape inference, optimisation)")
        with _quiet():
            quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        reader = _Reader(_feeds(rows, names))
        ops = ["MatMul", "Gather"] if settings.embeddings_int8 else ["MatMul"]
        report(0.2, f"Calibrating on {len(rows)} {calibration.split} rows (ONNX Runtime)")
        quantized = Path(tmp) / "model.onnx"
        with _quiet():
            q.quantize_static(
                str(prepared), str(quantized), reader, quant_format=q.QuantFormat.QDQ, op_types_to_quantize=ops,
                per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                activation_type=types[settings.activation_type], weight_type=q.QuantType.QInt8,
                calibrate_method=q.CalibrationMethod.MinMax,
                extra_options={"MatMulConstBOnly": settings.matmul_const_weights_only},
            )  # fmt: skip
        report(0.9, "Saving")

        def write(path: Path) -> dict[str, Any]:
            import shutil

            shutil.copyfile(quantized, path)
            return {"precision": "int8", "exporter": f"{exporter} -> onnxruntime.quantization.quantize_static (QDQ)",
                    "inputs": names, "outputs": ["start_logits", "end_logits"] if task.head == "qa" else ["logits"]}

        calib = asdict(calibration) | {"rows": len(rows)}
        knobs = asdict(settings) | {"onnxruntime": ort.__version__, "format": "QDQ", "weight_type": "int8",
                                    "calibrate_method": "minmax", "op_types": ops}  # fmt: skip
        size = save_backend_artifact(folder, backend=ONNXRUNTIME, write_model=write, tokenizer=tokenizer,
                                     config=model.config, head=task.head, task=task.id,
                                     manifest={"quantization": {"method": "static_int8", "backend": ONNXRUNTIME,
                                                                "calibration": calib, "settings": knobs},
                                               **(manifest or {})})  # fmt: skip
    report(1.0, "Quantized")
    return StaticInt8Result(ONNXRUNTIME, Path(folder), size, time.perf_counter() - started, calib, knobs,
                            int8_constant_count(folder))  # fmt: skip


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over prepared feed dicts."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._feeds = feeds
        self._next = 0

    def get_next(self) -> dict[str, Any] | None:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Quantizers print progress bars and tables; the worker's stdout carries events only."""
    import logging
    import sys
    import warnings

    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        nncf_logger.setLevel(level)


def int8_constant_count(folder: Path | str) -> int:
    """How many 8-bit integer weight constants (more than one element) the artifact's model file holds."""
    import numpy as np

    from core.backends.artifact import constants, read_manifest

    manifest = read_manifest(folder)
    path = Path(folder) / manifest["model_file"]
    return sum(1 for a in constants(path, manifest["backend"])
               if a.dtype in (np.int8, np.uint8) and a.size > 1)  # fmt: skip
