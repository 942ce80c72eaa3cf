"""The machine fingerprint stored beside every figure: CPU model and flags, cores, versions."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# SIMD / matrix flags that change which kernels run (and so the latency of int8 and float paths).
KERNEL_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
    "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve",
)  # fmt: skip
LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "safetensors", "numpy", "scikit-learn", "scipy")


def _cpuinfo() -> tuple[str, list[str]]:
    """CPU model and flags from py-cpuinfo when installed, else /proc/cpuinfo, else platform."""
    try:
        import cpuinfo  # type: ignore[import-not-found]

        info = cpuinfo.get_cpu_info()
        return str(info.get("brand_raw", "")), sorted(info.get("flags", []))
    except ImportError:
        pass
    model, flags = "", []
    path = Path("/proc/cpuinfo")
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = sorted(value.split())
    return model or platform.processor() or platform.machine(), flags


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """A JSON-able description of where a measurement was taken."""
    model, flags = _cpuinfo()
    env: dict[str, Any] = {
        "cpu_model": model,
        "cpu_flags": [f for f in flags if f in KERNEL_FLAGS],
        "cpu_flag_count": len(flags),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in LIBRARIES},
    }
    try:
        import torch

        env["threads"] = torch.get_num_threads()
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["torch_quantized_engine"] = torch.backends.quantized.engine
    except ImportError:
        env["threads"] = None
    return env


def machine_fingerprint() -> dict[str, Any]:
    """Where a variant was made and timed: :func:`environment` and the host name, without the torch
    thread count (each variant's latency records the threads it used). Two variants with the same
    fingerprint were timed on the same machine with the same libraries."""
    env = {k: v for k, v in environment().items() if k != "threads"}
    env["host"] = socket.gethostname()
    return env
