"""One runtime interface over torch, ONNX Runtime and OpenVINO, and a torch-like adapter.

A :class:`BackendSession` takes the batch dict the evaluation loop builds (``input_ids``,
``attention_mask``, ``token_type_ids`` when the tokenizer makes them; torch tensors or numpy
arrays) and returns the head's outputs as numpy arrays: ``logits``, or ``start_logits`` and
``end_logits``. Threads are fixed when the session is made: ``torch.set_num_threads`` (applied
around each call), ONNX Runtime's ``intra_op_num_threads`` and OpenVINO's
``INFERENCE_NUM_THREADS`` with the ``LATENCY`` performance hint.

:class:`SessionModel` wraps a session so ``core.measure.evaluate`` and ``core.measure.latency``
run the exported file with their own loops: called with ``**batch`` it returns a transformers
output object holding torch tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backends.errors import BackendError
from core.backends.packages import ONNXRUNTIME, OPENVINO, TORCH, require
from core.backends.support import title

OPENVINO_PRECISIONS = ("f32", "bf16", "default")


@dataclass
class SessionInfo:
    """What a timing or metric measured on a session depends on; stored beside the numbers."""

    backend: str
    threads: int
    file: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


class BackendSession:
    """Runs one model file (or torch module) on one backend."""

    backend: str
    head: str
    input_names: list[str]
    output_names: list[str]
    threads: int

    def run(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The head's outputs (numpy float32 arrays) for ``batch``."""
        raise NotImplementedError

    def info(self) -> SessionInfo:
        return SessionInfo(backend=self.backend, threads=self.threads)

    # -- shared input handling ---------------------------------------------------------------
    def feed(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """``batch`` as int64 numpy arrays named as the graph wants them.

        A graph input the batch lacks may only be ``token_type_ids`` (zeros, as transformers
        fills it); a batch input the graph lacks must be all zeros, or it would be dropped silently.
        """
        import numpy as np

        arrays = {k: _numpy(v) for k, v in batch.items() if v is not None}
        if "input_ids" not in arrays:
            raise BackendError("The batch has no input_ids", backend=self.backend)
        out: dict[str, Any] = {}
        for name in self.input_names:
            if name in arrays:
                out[name] = np.ascontiguousarray(arrays[name], dtype=np.int64)
            elif name == "token_type_ids":
                out[name] = np.zeros_like(arrays["input_ids"], dtype=np.int64)
            elif name == "attention_mask":
                out[name] = np.ones_like(arrays["input_ids"], dtype=np.int64)
            else:
                raise BackendError(f"The batch has no '{name}', which the exported model needs", backend=self.backend)
        for name, value in arrays.items():
            if name not in self.input_names and name in ("token_type_ids",) and value.any():
                raise BackendError(
                    f"The batch has non-zero {name}, but the exported model takes no such input; "
                    "export it from a tokenizer that makes them",
                    backend=self.backend,
                )
        return out


def _numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    import numpy as np

    return np.asarray(value)


class TorchSession(BackendSession):
    """A torch module behind the session interface (the reference every export is compared with)."""

    backend = TORCH

    def __init__(self, model: Any, head: str, *, threads: int | None = None, input_names: list[str] | None = None) -> None:
        import torch

        self.model = model.eval()
        self.head = head
        self.threads = int(threads or torch.get_num_threads())
        if input_names is None:  # what the model's forward accepts (DistilBERT/MPNet take no token_type_ids)
            import inspect

            accepted = set(inspect.signature(model.forward).parameters)
            input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
        self.input_names = list(input_names)
        self.output_names = ["start_logits", "end_logits"] if head == "qa" else ["logits"]

    def run(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        from core.measure.evaluation import pinned_threads

        tensors = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(_numpy(v))) for k, v in batch.items()
                   if k in self.input_names and v is not None}  # fmt: skip
        with pinned_threads(self.threads), torch.inference_mode():
            out = self.model(**tensors)
        return {name: getattr(out, name).float().numpy() for name in self.output_names}

    def info(self) -> SessionInfo:
        return SessionInfo(backend=TORCH, threads=self.threads, settings={"module": type(self.model).__name__})


class OnnxRuntimeSession(BackendSession):
    """An ONNX file on ONNX Runtime's CPU execution provider, all graph optimisations on."""

    backend = ONNXRUNTIME

    def __init__(self, path: Path | str, head: str, *, threads: int | None = None) -> None:
        ort = require("onnxruntime", purpose="Running ONNX Runtime", backend=ONNXRUNTIME)
        import os

        self.path = Path(path)
        self.head = head
        self.threads = int(threads or os.cpu_count() or 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            from core.backends.export import reason_line

            raise BackendError(f"ONNX Runtime cannot load {self.path.name}: {reason_line(exc)}", backend=ONNXRUNTIME) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.version = ort.__version__

    def run(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        values = self.session.run(self.output_names, self.feed(batch))
        return dict(zip(self.output_names, values, strict=True))

    def info(self) -> SessionInfo:
        return SessionInfo(backend=ONNXRUNTIME, threads=self.threads, file=str(self.path),
                           settings={"onnxruntime": self.version, "provider": "CPUExecutionProvider",
                                     "intra_op_num_threads": self.threads, "graph_optimization": "all"})  # fmt: skip


class OpenVinoSession(BackendSession):
    """An OpenVINO IR (or ONNX) file compiled for the CPU with the LATENCY hint.

    ``precision``: ``f32`` computes in fp32 (what an fp32 export promises); ``bf16`` lets CPUs with
    AMX/AVX512-BF16 run non-quantized layers in bfloat16; ``default`` leaves OpenVINO's choice
    (bf16 on such CPUs), which is what a plain ``compile_model`` call gets.
    """

    backend = OPENVINO

    def __init__(self, path: Path | str, head: str, *, threads: int | None = None, precision: str = "f32") -> None:
        ov = require("openvino", purpose="Running OpenVINO", backend=OPENVINO)
        import os

        if precision not in OPENVINO_PRECISIONS:
            raise BackendError(f"OpenVINO precision must be one of {', '.join(OPENVINO_PRECISIONS)}; got {precision!r}",
                               backend=OPENVINO)
        self.path = Path(path)
        self.head = head
        self.threads = int(threads or os.cpu_count() or 1)
        self.precision = precision
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision != "default":
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            core = ov.Core()
            self.compiled = core.compile_model(str(self.path), "CPU", config)
        except Exception as exc:
            from core.backends.export import reason_line

            raise BackendError(f"OpenVINO cannot load {self.path.name}: {reason_line(exc)}", backend=OPENVINO) from None
        self.request = self.compiled.create_infer_request()
        self.input_names = [p.get_any_name() for p in self.compiled.inputs]
        self.output_names = [p.get_any_name() for p in self.compiled.outputs]
        self.version = ov.get_version()
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.used_precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)  # e.g. "f32", "bf16"

    def run(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        result = self.request.infer(self.feed(batch))
        return {name: result[self.compiled.output(name)].copy() for name in self.output_names}

    def info(self) -> SessionInfo:
        return SessionInfo(backend=OPENVINO, threads=self.threads, file=str(self.path),
                           settings={"openvino": self.version, "device": "CPU", "INFERENCE_NUM_THREADS": self.threads,
                                     "PERFORMANCE_HINT": "LATENCY", "precision": self.precision,
                                     "inference_precision": self.used_precision})  # fmt: skip


def open_session(path: Path | str, backend: str, head: str, *, threads: int | None = None, **options: Any) -> BackendSession:
    """A session on an exported file: ``.onnx`` for onnxruntime, ``.xml`` (or ``.onnx``) for openvino."""
    if backend == ONNXRUNTIME:
        return OnnxRuntimeSession(path, head, threads=threads)
    if backend == OPENVINO:
        return OpenVinoSession(path, head, threads=threads, **options)
    raise BackendError(f"{title(backend)} sessions are made from a torch module (TorchSession), not a file", backend=backend)


class SessionModel:
    """Looks like a transformers model to the evaluation and latency loops; runs a session.

    Callable with ``**batch``; returns a transformers output with torch tensors (``.logits``, or
    ``.start_logits``/``.end_logits``). ``eval()`` and ``train(False)`` do nothing; it cannot train.
    """

    training = False

    def __init__(self, session: BackendSession, config: Any = None, folder: Path | None = None) -> None:
        self.session = session
        self.config = config
        self.folder = folder  # the backend artifact it was loaded from, when it was

    @property
    def backend(self) -> str:
        return self.session.backend

    def eval(self) -> SessionModel:
        return self

    def train(self, mode: bool = True) -> SessionModel:
        if mode:
            raise BackendError(f"A model running on {title(self.session.backend)} cannot be trained; "
                               "put training steps before the export", backend=self.session.backend)
        return self

    def __call__(self, **batch: Any) -> Any:
        import torch

        out = self.session.run(batch)
        tensors = {k: torch.from_numpy(v) for k, v in out.items()}
        if self.session.head == "qa":
            from transformers.modeling_outputs import QuestionAnsweringModelOutput

            return QuestionAnsweringModelOutput(start_logits=tensors["start_logits"], end_logits=tensors["end_logits"])
        from transformers.modeling_outputs import SequenceClassifierOutput

        return SequenceClassifierOutput(logits=tensors["logits"])

    forward = __call__
