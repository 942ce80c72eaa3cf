"""Put one variant on each backend: export, reload, round-trip check, and a verdict per backend.

This is what a measurement calls for ``backends: [torch, onnxruntime, openvino]``: it never
raises for something a variant or an installation cannot do; each (variant, backend) gets a
status and a one-sentence message instead, and only ``status == "ok"`` entries carry a session
to time and an adapter to evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backends.errors import BackendError, BackendUnavailable, ExportFailed, UnsupportedVariant
from core.backends.packages import ONNXRUNTIME, OPENVINO, TORCH, check_backend

OK = "ok"
UNAVAILABLE = "unavailable"  # a package is missing
UNSUPPORTED = "unsupported"  # the variant holds modules the backend cannot run
EXPORT_FAILED = "export_failed"  # the exporter/converter rejected it
LOAD_FAILED = "load_failed"  # the runtime rejected the exported file
DISAGREES = "disagrees"  # the round trip found different predictions: not this variant


@dataclass
class BackendVariant:
    """One variant on one backend. ``session``/``model`` are set only when ``status`` is ok."""

    variant: str
    backend: str
    status: str
    message: str
    folder: Path | None = None
    bytes: int | None = None
    export: Any = None  # ExportResult
    round_trip: Any = None  # RoundTrip
    session: Any = field(default=None, repr=False)
    model: Any = field(default=None, repr=False)  # SessionModel (or the torch model for torch)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "backend": self.backend,
            "status": self.status,
            "message": self.message,
            "folder": str(self.folder) if self.folder else None,
            "bytes": self.bytes,
            "export": self.export.to_dict() if self.export is not None else None,
            "round_trip": self.round_trip.to_dict() if self.round_trip is not None else None,
            "session": self.session.info().__dict__ if self.session is not None else None,
        }


def deploy_variant(
    model: Any,
    tokenizer: Any,
    task: Any,
    backend: str,
    folder: Path | str | None,
    *,
    variant: str = "",
    threads: int | None = None,
    transforms: list[dict[str, Any]] | None = None,
    probe_size: int = 64,
    seed: int = 0,
    max_length: int = 128,
    min_agreement: float | None = None,
    openvino_precision: str = "f32",
    compress_to_fp16: bool = False,
) -> BackendVariant:
    """Export ``model`` (a reloaded torch artifact) for ``backend`` into ``folder`` and check it.

    For ``torch`` nothing is exported: the session runs ``model``. A model that is already a
    backend artifact (a SessionModel, e.g. from quantize.static_int8) runs on its own backend only.
    """
    from core.backends.session import SessionModel, TorchSession
    from core.backends.support import title

    check_backend(backend)
    head = task.head
    if isinstance(model, SessionModel):  # already a deployed file (quantize.static_int8): its own backend only
        if backend != model.backend:
            return BackendVariant(variant, backend, UNSUPPORTED,
                                  f"this variant is the {title(model.backend)} file quantize.static_int8 made; "
                                  f"it runs on {title(model.backend)} only", folder=model.folder)  # fmt: skip
        return BackendVariant(variant, backend, OK, f"runs its own {title(backend)} artifact", folder=model.folder,
                              session=model.session, model=model)  # fmt: skip
    if backend == TORCH:
        session = TorchSession(model, head, threads=threads)
        return BackendVariant(variant, TORCH, OK, "runs the reloaded torch artifact", session=session, model=model)
    if folder is None:
        raise BackendError(f"{title(backend)} needs a folder for the exported artifact", backend=backend)
    folder = Path(folder)
    try:
        export, size = export_artifact(model, tokenizer, task, backend, folder, transforms=transforms,
                                       compress_to_fp16=compress_to_fp16)  # fmt: skip
    except BackendUnavailable as exc:
        return BackendVariant(variant, backend, UNAVAILABLE, str(exc))
    except UnsupportedVariant as exc:
        return BackendVariant(variant, backend, UNSUPPORTED, str(exc))
    except ExportFailed as exc:
        return BackendVariant(variant, backend, EXPORT_FAILED, str(exc))
    return check_artifact(model, tokenizer, task, folder, variant=variant, export=export, size=size, threads=threads,
                          probe_size=probe_size, seed=seed, max_length=max_length, min_agreement=min_agreement,
                          openvino_precision=openvino_precision)  # fmt: skip


def check_artifact(model: Any, tokenizer: Any, task: Any, folder: Path, *, variant: str = "", export: Any = None,
                   size: int | None = None, threads: int | None = None, probe_size: int = 64, seed: int = 0,
                   max_length: int = 128, min_agreement: float | None = None,
                   openvino_precision: str = "f32") -> BackendVariant:
    """Reload a backend artifact and round-trip it against ``model``; the verdict as a BackendVariant."""
    from core.backends.artifact import folder_bytes, load_backend_artifact, read_manifest
    from core.backends.verify import MIN_AGREEMENT, check_round_trip

    backend = read_manifest(folder)["backend"]
    options = {"precision": openvino_precision} if backend == OPENVINO else {}
    size = size if size is not None else folder_bytes(folder)
    try:
        loaded = load_backend_artifact(folder, threads=threads, **options)
    except BackendUnavailable as exc:
        return BackendVariant(variant, backend, UNAVAILABLE, str(exc), folder=folder, bytes=size, export=export)
    except BackendError as exc:
        return BackendVariant(variant, backend, LOAD_FAILED, str(exc), folder=folder, bytes=size, export=export)
    trip = check_round_trip(model, loaded.session, tokenizer, task, probe_size=probe_size, seed=seed,
                            max_length=max_length,
                            min_agreement=MIN_AGREEMENT if min_agreement is None else min_agreement)  # fmt: skip
    if not trip.passed:
        return BackendVariant(variant, backend, DISAGREES, trip.reason, folder=folder, bytes=size, export=export,
                              round_trip=trip)  # fmt: skip
    return BackendVariant(variant, backend, OK, trip.reason, folder=folder, bytes=size, export=export, round_trip=trip,
                          session=loaded.session, model=loaded.model)  # fmt: skip


def export_artifact(model: Any, tokenizer: Any, task: Any, backend: str, folder: Path | str, *,
                    transforms: list[dict[str, Any]] | None = None, compress_to_fp16: bool = False,
                    extra: dict[str, Any] | None = None) -> tuple[Any, int]:
    """Write the backend artifact of a torch variant; (ExportResult, folder bytes). Raises BackendError kinds."""
    from core.backends.artifact import save_backend_artifact
    from core.backends.export import export_onnx, export_openvino

    results: list[Any] = []

    def write(path: Path) -> dict[str, Any]:
        if backend == ONNXRUNTIME:
            result = export_onnx(model, tokenizer, task.head, path, transforms=transforms)
        else:
            result = export_openvino(model, tokenizer, task.head, path, compress_to_fp16=compress_to_fp16,
                                     transforms=transforms)  # fmt: skip
        results.append(result)
        return {"precision": "fp32", "weights": "fp16" if compress_to_fp16 and backend == OPENVINO else "fp32",
                "exporter": result.exporter, "inputs": result.inputs, "outputs": result.outputs,
                "notes": result.notes, "transforms": transforms or []}  # fmt: skip

    size = save_backend_artifact(folder, backend=backend, write_model=write, tokenizer=tokenizer, config=model.config,
                                 head=task.head, task=task.id, manifest=extra)  # fmt: skip
    return results[0], size


def deploy_all(model: Any, tokenizer: Any, task: Any, backends: list[str], folder: Path | str, *, variant: str = "",
               **kwargs: Any) -> dict[str, BackendVariant]:
    """:func:`deploy_variant` for each backend, each exported backend into ``folder/<backend>``."""
    folder = Path(folder)
    return {backend: deploy_variant(model, tokenizer, task, backend, None if backend == TORCH else folder / backend,
                                    variant=variant, **kwargs)
            for backend in backends}  # fmt: skip
