"""The optional packages behind each backend, imported only when a backend is used.

``onnx``, ``onnxruntime``, ``openvino`` and ``nncf`` come with the ``deploy`` extra; a missing one
raises :class:`BackendUnavailable` naming the package and the install command, never an ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from core.backends.errors import INSTALL_HINT, BackendUnavailable

TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
BACKENDS = (TORCH, ONNXRUNTIME, OPENVINO)
EXPORT_BACKENDS = (ONNXRUNTIME, OPENVINO)

# The packages each backend needs at run time (torch is a core dependency).
NEEDS: dict[str, tuple[str, ...]] = {TORCH: (), ONNXRUNTIME: ("onnxruntime",), OPENVINO: ("openvino",)}
# ... and to export a variant for it (the measure.backends setting does both).
EXPORT_NEEDS: dict[str, tuple[str, ...]] = {TORCH: (), ONNXRUNTIME: ("onnx", "onnxruntime"), OPENVINO: ("openvino",)}


def check_backend(backend: str) -> str:
    """``backend`` when it is a known backend name, else a BackendUnavailable naming the choices."""
    if backend not in BACKENDS:
        raise BackendUnavailable(f"Unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}", backend=backend)
    return backend


def require(module: str, *, purpose: str, backend: str = "") -> ModuleType:
    """Import ``module`` or explain which package is missing and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        missing = getattr(exc, "name", None) or package
        raise BackendUnavailable(
            f"{purpose} needs the Python package '{package}'"
            + (f" (import of '{missing}' failed)" if missing != package else "")
            + f", which is not installed. Install the deployment extra: {INSTALL_HINT} "
            "(onnx, onnxruntime, openvino, nncf).",
            backend=backend,
        ) from exc


def missing_packages(modules: tuple[str, ...] | list[str]) -> list[str]:
    """Those of ``modules`` that are not installed, found without importing them (validation runs
    this on every edit; importing openvino takes seconds)."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def missing_message(what: str, missing: list[str]) -> str:
    """One sentence naming the missing packages and the extra that brings them."""
    names = ", ".join(f"'{m}'" for m in missing)
    return (f"{what} needs the Python package{'s' if len(missing) > 1 else ''} {names}, not installed here. "
            f"Install the deployment extra: {INSTALL_HINT}")


def available(backend: str) -> bool:
    """True when every package ``backend`` needs can be imported."""
    try:
        for module in NEEDS[check_backend(backend)]:
            require(module, purpose=backend, backend=backend)
    except BackendUnavailable:
        return False
    return True


def versions() -> dict[str, str | None]:
    """Installed versions of the deployment packages (None when missing), for recording with results."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in ("torch", "onnx", "onnxruntime", "openvino", "nncf"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out
