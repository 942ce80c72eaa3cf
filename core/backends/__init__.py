"""Deployment backends: export a variant to ONNX / OpenVINO IR, check it, run it, time it, quantize it.

Importing this package imports neither torch nor any backend package; each function imports what
it needs when called, and a missing optional package raises :class:`BackendUnavailable` naming
``pip install -e ".[deploy]"``.

- :mod:`core.backends.export`     ONNX and OpenVINO IR export (dynamic batch and sequence)
- :mod:`core.backends.session`    one runtime interface per backend + the torch-like SessionModel
- :mod:`core.backends.verify`     round-trip check of an exported file against the torch model
- :mod:`core.backends.deploy`     one variant on each backend: export, reload, check, verdict
- :mod:`core.backends.timing`     interleaved latency of several sessions, same inputs and threads
- :mod:`core.backends.quantize`   static int8 with NNCF (OpenVINO) or ONNX Runtime, task-calibrated
- :mod:`core.backends.artifact`   the backend artifact folder: save, load, size
- :mod:`core.backends.support`    which variants each backend can run, and notes on the others
"""

from core.backends.errors import BackendError, BackendUnavailable, ExportFailed, UnsupportedVariant
from core.backends.packages import BACKENDS, EXPORT_BACKENDS, ONNXRUNTIME, OPENVINO, TORCH, available

__all__ = [
    "BACKENDS",
    "EXPORT_BACKENDS",
    "ONNXRUNTIME",
    "OPENVINO",
    "TORCH",
    "BackendError",
    "BackendUnavailable",
    "ExportFailed",
    "UnsupportedVariant",
    "available",
]
