"""Export a variant's torch model to ONNX and to OpenVINO IR, with dynamic batch and sequence axes.

ONNX: torch's TorchScript exporter (``torch.onnx.export(dynamo=False)``, opset 17). On torch 2.13
both exporters export BERT, RoBERTa, DistilBERT and MPNet heads correctly, but the TorchScript one
takes 0.2-1 s per tiny model where the torch.export ("dynamo") exporter takes 3-10 s and needs
onnxscript, and its files are smaller (2.5x on tiny models; shared weights stored once). It is
deprecated since torch 2.9 but present in every torch this project admits (< 2.14). Tracing
freezes Python control flow, so the trace input has a padded row (the attention-mask path stays in
the graph) and every export is checked by a round trip on real rows of other shapes
(:mod:`core.backends.verify`).

OpenVINO: the IR is converted straight from the torch module (``openvino.convert_model`` +
``save_model``), not from the ONNX file: OpenVINO's PyTorch frontend keeps attention as its fused
ScaledDotProductAttention op, which the ONNX graph spells out op by op; the fused graph ran
10-25 % faster (fp32 and NNCF int8, fine-tuned MiniLM, batch 1 and 8). Weights stay fp32 unless
``compress_to_fp16`` (OpenVINO's own default) is asked for.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.backends.errors import ExportFailed, UnsupportedVariant
from core.backends.packages import ONNXRUNTIME, OPENVINO, require
from core.backends.support import export_notes, title, unsupported_reason

OPSET = 17
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class ExportResult:
    """One exported file: where it is, how it was made and what it holds."""

    path: Path
    format: str  # "onnx" | "openvino-ir"
    exporter: str
    inputs: list[str]
    outputs: list[str]
    seconds: float
    bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"path": str(self.path)}


def output_names(head: str) -> list[str]:
    return ["start_logits", "end_logits"] if head == "qa" else ["logits"]


def input_names(model: Any, tokenizer: Any) -> list[str]:
    """The inputs the graph takes: those the tokenizer makes and the model's forward accepts."""
    import inspect

    accepted = set(inspect.signature(model.forward).parameters)
    made = set(getattr(tokenizer, "model_input_names", INPUT_ORDER)) | {"input_ids", "attention_mask"}
    return [n for n in INPUT_ORDER if n in made and n in accepted]


def trace_inputs(model: Any, tokenizer: Any, names: list[str], *, batch: int = 2, seq: int = 12, seed: int = 0) -> dict[str, Any]:
    """A small batch whose second row is padded, so the traced graph keeps the attention-mask path."""
    import torch

    from core.measure.timing import random_token_ids

    ids = random_token_ids(model, tokenizer, batch, seq, seed)
    mask = torch.ones_like(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for row in range(1, batch):
        ids[row, seq // 2 :] = pad
        mask[row, seq // 2 :] = 0
    if tokenizer.cls_token_id is not None:
        ids[:, 0] = tokenizer.cls_token_id
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {n: out[n] for n in names}


def _wrapper(model: Any, head: str) -> Any:
    """A module whose forward takes the inputs positionally and returns the head's tensors as a tuple."""
    import torch

    outputs = output_names(head)

    class HeadOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> tuple[Any, ...]:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            out = self.model(**kwargs, return_dict=True)
            return tuple(getattr(out, name) for name in outputs)

    return HeadOutputs().eval()


def reason_line(exc: BaseException, limit: int = 300) -> str:
    """The informative line of an exporter/converter error, without its traceback or advice."""
    text = str(exc).strip() or type(exc).__name__
    marker = "Failed operations detailed log:"  # OpenVINO lists the failed operations after this line
    if marker in text:
        for line in text[text.index(marker) :].splitlines()[1:]:
            if line.strip():
                text = line.strip().lstrip("- ")
                break
    line = text.splitlines()[0].strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def export_onnx(
    model: Any,
    tokenizer: Any,
    head: str,
    path: Path | str,
    *,
    backend: str = ONNXRUNTIME,
    opset: int = OPSET,
    transforms: list[dict[str, Any]] | None = None,
) -> ExportResult:
    """Write ``model`` (a task-headed transformers model) to ``path`` as ONNX.

    ``backend`` only names who asked, for the messages. Raises UnsupportedVariant for a model the
    exported backends cannot run and ExportFailed (one line, no traceback) when the exporter fails.
    """
    reason = unsupported_reason(model, backend)
    if reason:
        raise UnsupportedVariant(reason, backend=backend)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = input_names(model, tokenizer)
    outputs = output_names(head)
    sample = trace_inputs(model, tokenizer, names)
    wrapper = _wrapper(model, head)
    was_training = model.training
    started = time.perf_counter()
    try:
        _run_exporter(wrapper, tuple(sample[n] for n in names), names, outputs, path, opset)
    except Exception as exc:  # the exporter raises many types; each becomes one line
        raise ExportFailed(
            f"{title(backend)}: the ONNX export of this {type(model).__name__} failed ({reason_line(exc)}). "
            "The variant cannot run on this backend; the other backends are still measured.",
            backend=backend,
        ) from None
    finally:
        model.train(was_training)
    return ExportResult(
        path=path,
        format="onnx",
        exporter=f"torch.onnx.export (TorchScript, opset {opset})",
        inputs=names,
        outputs=outputs,
        seconds=time.perf_counter() - started,
        bytes=path.stat().st_size,
        notes=export_notes(model, transforms),
    )


def _run_exporter(wrapper: Any, args: tuple[Any, ...], names: list[str], outputs: list[str], path: Path,
                  opset: int) -> None:
    import torch

    dynamic_out = {o: {0: "batch", 1: "sequence"} if o != "logits" else {0: "batch"} for o in outputs}
    # The exporter warns about tracing and deprecation; the worker's stdout carries events only.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, args, str(path), input_names=names, output_names=outputs,
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names} | dynamic_out,
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    wrapper.eval()  # the exporter restores the mode it found; keep the wrapped model in eval


def openvino_model(model: Any, tokenizer: Any, head: str, *, backend: str = OPENVINO) -> tuple[Any, list[str]]:
    """The torch model converted to an in-memory ``openvino.Model`` with dynamic batch/sequence inputs.

    Converted straight from the torch module (OpenVINO's PyTorch frontend) rather than from the
    ONNX export: the frontend maps torch's scaled-dot-product attention to OpenVINO's fused
    ScaledDotProductAttention op where the ONNX graph spells it out (MatMul, Softmax, masking),
    and the fused graph ran 10-25 % faster in fp32 and after NNCF int8 on the fine-tuned MiniLM.
    The same variants fail as with ONNX (torch dynamic int8, torchao), refused before converting.
    """
    ov = require("openvino", purpose="Exporting to OpenVINO", backend=backend)
    reason = unsupported_reason(model, backend)
    if reason:
        raise UnsupportedVariant(reason, backend=backend)
    names = input_names(model, tokenizer)
    sample = trace_inputs(model, tokenizer, names)
    wrapper = _wrapper(model, head)
    was_training = model.training
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch

            with torch.no_grad():
                converted = ov.convert_model(wrapper, example_input=sample,
                                             input=[(n, [-1, -1], ov.Type.i64) for n in names])  # fmt: skip
    except Exception as exc:  # the frontend raises OpConversionFailure/RuntimeError with long logs
        raise ExportFailed(
            f"{title(backend)}: the conversion of this {type(model).__name__} failed ({reason_line(exc)}). "
            "The variant cannot run on this backend; the other backends are still measured.",
            backend=backend,
        ) from None
    finally:
        model.train(was_training)
    for port, name in zip(converted.outputs, output_names(head), strict=True):
        port.get_tensor().set_names({name})
    return converted, names


def export_openvino(
    model: Any,
    tokenizer: Any,
    head: str,
    xml_path: Path | str,
    *,
    compress_to_fp16: bool = False,
    transforms: list[dict[str, Any]] | None = None,
) -> ExportResult:
    """Write ``model`` as OpenVINO IR at ``xml_path`` (weights in the ``.bin`` beside it)."""
    ov = require("openvino", purpose="Exporting to OpenVINO", backend=OPENVINO)
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    converted, names = openvino_model(model, tokenizer, head)
    try:
        ov.save_model(converted, str(xml_path), compress_to_fp16=compress_to_fp16)
    except Exception as exc:
        raise ExportFailed(f"OpenVINO could not save the IR ({reason_line(exc)})", backend=OPENVINO) from None
    notes = export_notes(model, transforms)
    if compress_to_fp16:
        notes.append("weights stored as fp16 in the IR (decompressed to fp32 at load)")
    size = xml_path.stat().st_size + xml_path.with_suffix(".bin").stat().st_size
    return ExportResult(
        path=xml_path,
        format="openvino-ir",
        exporter="openvino.convert_model (PyTorch frontend)",
        inputs=names,
        outputs=output_names(head),
        seconds=time.perf_counter() - started,
        bytes=size,
        notes=notes,
    )
