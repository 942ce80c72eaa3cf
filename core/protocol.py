"""The JSON-lines protocol between a client (GUI or CLI) and ``python -m core.worker``.

The client writes one request line to the worker's stdin and may later write a cancel line.
The worker writes one event per line to its *original* stdout; library prints are redirected to
stderr so they cannot corrupt the stream. Every message carries ``protocol``. Torch-free.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1

# Requests (client -> worker)
RUN = "run"  # {"recipe": {...}, "db": path, "artifacts": dir, "resume_run": int | None}
CANCEL = "cancel"  # {}

# Events (worker -> client)
RUN_STARTED = "run_started"  # run_id, variants: int (steps to run incl. baseline)
STEP_STARTED = "step_started"  # index, step, title
PROGRESS = "progress"  # index, fraction (0..1), message
METRIC = "metric"  # index, variant_id, name, value, unit
LOG = "log"  # level, message
STEP_FINISHED = "step_finished"  # index, variant_id, cached: bool, seconds
RUN_FINISHED = "run_finished"  # run_id
RUN_FAILED = "run_failed"  # run_id, error (user-facing message), kind (exception type), step index
RUN_CANCELLED = "run_cancelled"  # run_id

EVENTS = (RUN_STARTED, STEP_STARTED, PROGRESS, METRIC, LOG, STEP_FINISHED, RUN_FINISHED, RUN_FAILED, RUN_CANCELLED)
TERMINAL_EVENTS = (RUN_FINISHED, RUN_FAILED, RUN_CANCELLED)


class ProtocolError(ValueError):
    pass


def encode(kind: str, /, **fields: Any) -> str:
    """One message as a JSON line (no embedded newlines)."""
    return json.dumps({"protocol": PROTOCOL_VERSION, "type": kind, **fields}, separators=(",", ":")) + "\n"


def decode(line: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not a JSON line: {line[:80]!r}") from exc
    if not isinstance(message, dict) or "type" not in message:
        raise ProtocolError(f"message without a type: {line[:80]!r}")
    if message.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol {message.get('protocol')} is not {PROTOCOL_VERSION}")
    return message
