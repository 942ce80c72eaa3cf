"""The backend artifact: a folder a user deploys as is, and its save/load functions.

    model.onnx                  (backend onnxruntime)   or   model.xml + model.bin (backend openvino)
    config.json                 the transformers config (labels, architecture, sizes)
    tokenizer files             what turns text into the model's inputs
    manifest.json               {"kind": "backend", "backend_format": 1, "backend", "file_format",
                                 "model_file", "head", "task", "inputs", "outputs", "precision",
                                 "exporter", "quantization", "notes", "versions", ...}

Its size is the bytes of the whole folder. Loading it gives a session and a :class:`SessionModel`
adapter, never a torch module: what is measured is the file that ships. The manifest has no
``format`` key and no ``model.safetensors``, so ``core.artifacts.load_artifact`` refuses it; use
:func:`is_backend_artifact` to choose the loader.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backends.errors import BackendError
from core.backends.packages import ONNXRUNTIME, OPENVINO, versions
from core.backends.session import BackendSession, SessionModel, open_session

BACKEND_FORMAT = 1
MANIFEST = "manifest.json"
MODEL_FILES = {ONNXRUNTIME: ("model.onnx",), OPENVINO: ("model.xml", "model.bin")}
FILE_FORMATS = {ONNXRUNTIME: "onnx", OPENVINO: "openvino-ir"}


@dataclass
class LoadedBackendArtifact:
    session: BackendSession
    model: SessionModel  # the adapter core.measure.evaluate / latency accept
    tokenizer: Any
    manifest: dict[str, Any]
    folder: Path


def is_backend_artifact(folder: Path | str) -> bool:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == "backend"
    except ValueError:
        return False


def is_complete_backend_artifact(folder: Path | str) -> bool:
    """A backend artifact whose manifest reads and whose model files are all there (the runner's
    cache reuses only whole artifacts)."""
    try:
        manifest = read_manifest(folder)
    except BackendError:
        return False
    names = MODEL_FILES.get(manifest.get("backend", ""), ())
    return bool(names) and all((Path(folder) / name).is_file() for name in names)


def load_deployed_state(folder: Path | str, *, threads: int | None = None) -> Any:
    """A backend artifact as the ``ModelState`` a chain and the measurement take: the session adapter
    as its model, on the manifest's backend, with the traits the file has (never float nor trainable)."""
    from core.state import DEPLOYED, ModelState

    loaded = load_backend_artifact(folder, threads=threads)
    manifest = loaded.manifest
    traits = {DEPLOYED} | ({"int8"} if manifest.get("precision") == "int8" else set())
    return ModelState(model=loaded.model, tokenizer=loaded.tokenizer, task=str(manifest.get("task", "")),
                      head=str(manifest["head"]), traits=frozenset(traits), info=dict(manifest.get("info") or {}))


def model_file(folder: Path | str, backend: str) -> Path:
    """The file a session opens (``model.onnx`` or ``model.xml``)."""
    return Path(folder) / MODEL_FILES[backend][0]


def save_backend_artifact(
    folder: Path | str,
    *,
    backend: str,
    write_model: Callable[[Path], dict[str, Any] | None],
    tokenizer: Any,
    config: Any,
    head: str,
    task: str,
    manifest: dict[str, Any] | None = None,
) -> int:
    """Write a backend artifact atomically; return the folder's bytes.

    ``write_model(path)`` writes the model file at ``path`` (``model.onnx`` or ``model.xml``; an
    OpenVINO ``.bin`` beside it) and may return manifest fields describing it (exporter, settings).
    The folder appears complete or not at all.
    """
    if backend not in MODEL_FILES:
        raise BackendError(f"A backend artifact is for onnxruntime or openvino, not '{backend}'", backend=backend)
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        described = write_model(tmp / MODEL_FILES[backend][0]) or {}
        missing = [name for name in MODEL_FILES[backend] if not (tmp / name).is_file()]
        if missing:
            raise BackendError(f"The {backend} export wrote no {', '.join(missing)}", backend=backend)
        config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        body = {
            "kind": "backend",
            "backend_format": BACKEND_FORMAT,
            "backend": backend,
            "file_format": FILE_FORMATS[backend],
            "model_file": MODEL_FILES[backend][0],
            "head": head,
            "task": task,
            "architecture": (getattr(config, "architectures", None) or [""])[0],
            "versions": versions(),
            **described,
            **(manifest or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackendError(f"Cannot write the backend artifact {folder}: {exc.strerror or exc}", backend=backend) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder_bytes(folder)


def folder_bytes(folder: Path | str) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def read_manifest(folder: Path | str) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BackendError(f"{folder} is not a backend artifact: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackendError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("kind") != "backend":
        raise BackendError(f"{folder} is a torch artifact, not a backend artifact: load it with core.artifacts")
    if manifest.get("backend_format", 0) > BACKEND_FORMAT:
        raise BackendError(f"{folder} was written by a newer workbench (backend format {manifest['backend_format']})")
    return manifest


def load_backend_artifact(folder: Path | str, *, threads: int | None = None, **options: Any) -> LoadedBackendArtifact:
    """Open the artifact's model file on its backend; ``options`` go to the session (e.g. precision)."""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(folder)
    manifest = read_manifest(folder)
    backend = manifest["backend"]
    path = folder / manifest["model_file"]
    if not path.is_file():
        raise BackendError(f"{folder} lacks its model file {manifest['model_file']}", backend=backend)
    if backend == OPENVINO and manifest.get("precision") == "int8":
        # An int8 file runs as a user's plain compile_model runs it: what is not int8 at the CPU's default
        # precision (bf16 where the CPU has it; f32 pinned was 1.2x slower at 8x128 here). The round-trip
        # and agreement checks measure this session, so the accuracy shown is the one it gives.
        options.setdefault("precision", "default")
    session = open_session(path, backend, manifest["head"], threads=threads, **options)
    config = AutoConfig.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return LoadedBackendArtifact(session=session, model=SessionModel(session, config, folder), tokenizer=tokenizer,
                                 manifest=manifest, folder=folder)  # fmt: skip


def save_deployed(model: Any, folder: Path | str, *, extra: dict[str, Any] | None = None) -> int:
    """Copy the backend artifact behind ``model`` (a SessionModel from :func:`load_backend_artifact`,
    e.g. what ``quantize.static_int8`` passes on) to ``folder``, atomically; return the folder's bytes.

    ``extra`` fields are merged into the copied manifest (e.g. the run's base model and step info).
    """
    source = getattr(model, "folder", None)
    if source is None or not is_backend_artifact(source):
        raise BackendError("This model was not loaded from a backend artifact; nothing to save")
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(source, tmp)
        if extra:
            manifest = json.loads((tmp / MANIFEST).read_text(encoding="utf-8")) | extra
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackendError(f"Cannot write the backend artifact {folder}: {exc.strerror or exc}") from exc
    return folder_bytes(folder)


def constant_counts(folder: Path | str) -> tuple[int, int]:
    """(weight elements, non-zero weight elements) stored in the artifact's model file.

    Counts floating and 8-bit constants with more than one element (weights, biases, embedding
    tables, quantized weights); int64 shape constants are not weights, and neither are an ONNX
    file's quantization scales/zero points (an OpenVINO IR's per-channel scales are counted).
    """
    import numpy as np

    manifest = read_manifest(folder)
    path = Path(folder) / manifest["model_file"]
    total = nonzero = 0
    for array in constants(path, manifest["backend"]):
        if array.size <= 1 or array.dtype.kind not in "fiu" or array.dtype == np.int64:
            continue
        if array.dtype.kind in "iu" and array.dtype.itemsize > 1:
            continue
        total += int(array.size)
        nonzero += int(np.count_nonzero(array))
    return total, nonzero


def constants(path: Path, backend: str) -> Any:
    if backend == ONNXRUNTIME:
        from core.backends.packages import require

        onnx = require("onnx", purpose="Reading an ONNX file", backend=backend)
        from onnx import numpy_helper

        model = onnx.load(str(path))
        for init in model.graph.initializer:
            if not init.name.endswith(("_scale", "_zero_point")):
                yield numpy_helper.to_array(init)
        return
    from core.backends.packages import require

    ov = require("openvino", purpose="Reading an OpenVINO IR", backend=backend)
    model = ov.Core().read_model(str(path))
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            yield op.get_data()


def size_report(folder: Path | str) -> Any:
    """A ``core.measure.SizeReport`` of a backend artifact: its constants and the folder's bytes."""
    from core.measure.size import SizeReport

    manifest = read_manifest(folder)
    params, nonzero = constant_counts(folder)
    files = [Path(folder) / name for name in MODEL_FILES[manifest["backend"]]]
    return SizeReport(params=params, nonzero_params=nonzero, artifact_bytes=folder_bytes(folder),
                      weights_bytes=sum(f.stat().st_size for f in files))  # fmt: skip
