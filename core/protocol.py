"""The JSON-lines protocol between a client (the window or the CLI) and ``python -m core.worker``.

The client writes one :class:`RunRequest` line to the worker's stdin and may later write a
:class:`CancelRequest` line; the end of stdin means the client is gone. The worker writes one event
per line to its *original* stdout (library prints go to stderr, so they cannot corrupt the stream).
Every message is a typed dataclass here, encoded as ``{"protocol": N, "type": ..., **fields}``; a
line that does not decode into one of them is a :class:`ProtocolError`. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

PROTOCOL_VERSION = 2


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class Message:
    """Base of every request and event; ``type`` is the wire name."""

    type: ClassVar[str]

    def to_json(self) -> str:
        """One message as a JSON line (no embedded newlines)."""
        body = {"protocol": PROTOCOL_VERSION, "type": self.type, **dataclasses.asdict(self)}
        return json.dumps(body, separators=(",", ":")) + "\n"


# --- requests (client -> worker) ---------------------------------------------------------------


def ray_address_problem(address: str) -> str | None:
    """What is wrong with a ``RunRequest.ray`` value ("auto" or the head's HOST:PORT), or None."""
    text = address.strip()
    if text == "auto":
        return None
    if text.startswith("ray://"):
        return (f"{text}: Ray Client addresses (ray://) are not supported; the workbench's worker must be a "
                "node of the cluster. Join it with 'ray start --address HEAD:6379 --num-cpus 0' on this machine "
                "and use 'auto' (docs/CLUSTER.md)")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{text or 'an empty address'}: give 'auto' or the head's HOST:PORT, e.g. 10.0.0.5:6379"
    return None



@dataclass(frozen=True)
class RunRequest(Message):
    """Run ``recipe`` (a recipe dict) or resume run ``resume_run``; None paths mean core.paths'
    defaults. ``background`` lowers the worker's CPU priority so the window stays responsive.
    ``ray`` ("auto" or HOST:PORT) makes the sweep's branches on that Ray cluster; with
    ``shared_artifacts`` every node reads and writes ``artifacts`` at the same path."""

    type: ClassVar[str] = "run"
    recipe: dict[str, Any] | None = None
    db: str | None = None
    artifacts: str | None = None
    resume_run: int | None = None
    background: bool = False
    ray: str | None = None
    shared_artifacts: bool = False


@dataclass(frozen=True)
class CancelRequest(Message):
    """Stop at the next safe point; finished variants stay recorded."""

    type: ClassVar[str] = "cancel"


@dataclass(frozen=True)
class SensitivityRequest(Message):
    """Measure a sensitivity map of stored ``variant`` (``python -m core.analysis.worker``): each of
    ``transforms`` ("int8", "nbit:6", "prune:0.3") on one part at a time, grouped ``by`` layer or role."""

    type: ClassVar[str] = "sensitivity"
    variant: int
    transforms: list[str]
    db: str | None = None
    examples: int = 400
    seed: int = 0
    by: str = "layer"
    threads: int | None = None
    background: bool = False


# --- events (worker -> client) -----------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    """One node of the variant tree, depth first: ``index`` is the chain position (0 = baseline)."""

    node: int
    index: int
    step: str
    label: str


@dataclass(frozen=True)
class RunStarted(Message):
    type: ClassVar[str] = "run_started"
    run_id: int
    variants: int  # nodes of the variant tree, baseline included
    resumed: bool = False
    steps: list[PlannedStep] = field(default_factory=list)


@dataclass(frozen=True)
class StepStarted(Message):
    """A variant starts. ``measure_seconds``: what loading, saving and measuring it should take, and
    ``later_seconds``: what every variant planned after it should take, whole (the runner's estimates from
    this run's measured phases and earlier runs' of the same work; None before this run measured a variant
    unless earlier runs timed every variant it plans, and in a Ray run, whose variants overlap)."""

    type: ClassVar[str] = "step_started"
    node: int
    index: int
    step: str
    label: str
    title: str
    measure_seconds: float | None = None
    later_seconds: float | None = None


@dataclass(frozen=True)
class Progress(Message):
    """``fraction`` (0..1) of one node; never decreases within a node."""

    type: ClassVar[str] = "progress"
    node: int
    index: int
    fraction: float
    message: str = ""


@dataclass(frozen=True)
class Curve(Message):
    """One point of a training curve of the node in flight: ``series`` is "loss", "lr" or
    "eval_<metric>", ``phase`` names the training stage (e.g. "Training", "Stage 1")."""

    type: ClassVar[str] = "curve"
    node: int
    index: int
    phase: str
    series: str
    step: int
    value: float


@dataclass(frozen=True)
class Log(Message):
    type: ClassVar[str] = "log"
    level: str  # debug | info | warning | error
    message: str


@dataclass(frozen=True)
class StepFinished(Message):
    """A variant is committed; ``row`` is its results-table row (core.store's ResultRow as a dict),
    so a client can show it without querying the database."""

    type: ClassVar[str] = "step_finished"
    node: int
    index: int
    variant_id: int
    cached: bool
    seconds: float
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFinished(Message):
    type: ClassVar[str] = "run_finished"
    run_id: int


@dataclass(frozen=True)
class RunFailed(Message):
    """``error`` is the user-facing message; ``kind`` the exception type; ``index`` the chain
    position of the step in flight (None before the run was recorded)."""

    type: ClassVar[str] = "run_failed"
    run_id: int | None
    error: str
    kind: str
    index: int | None = None


@dataclass(frozen=True)
class RunCancelled(Message):
    """Cancelled by the user, or ``interrupted`` by a termination signal (resumable either way)."""

    type: ClassVar[str] = "run_cancelled"
    run_id: int | None
    interrupted: bool = False


@dataclass(frozen=True)
class StepSkipped(Message):
    """A planned node that will not run: its ancestor broke the recipe's accuracy budget, or an
    earlier value of the same sweep did (``reason`` says which)."""

    type: ClassVar[str] = "step_skipped"
    node: int
    index: int
    label: str
    reason: str


@dataclass(frozen=True)
class AnalysisFinished(Message):
    """The end of an analysis worker's request: ``status`` finished | cancelled | failed, the stored
    result's id (a sensitivity map; also when cancelled, with the cells measured so far)."""

    type: ClassVar[str] = "analysis_finished"
    kind: str
    result_id: int | None
    status: str
    error: str = ""


Event = (RunStarted | StepStarted | Progress | Curve | Log | StepFinished | StepSkipped | RunFinished | RunFailed
         | RunCancelled | AnalysisFinished)
TERMINAL = (RunFinished, RunFailed, RunCancelled)

_TYPES: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (RunRequest, CancelRequest, SensitivityRequest, RunStarted, StepStarted, Progress, Curve, Log,
                StepFinished, StepSkipped, RunFinished, RunFailed, RunCancelled, AnalysisFinished)
}


def decode(line: str | bytes) -> Message:
    """The message on one line; ProtocolError when it is not one of this protocol's messages."""
    shown = line[:80] if isinstance(line, str) else line[:80].decode("utf-8", "replace")
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not a JSON line: {shown!r}") from exc
    if not isinstance(body, dict) or "type" not in body:
        raise ProtocolError(f"message without a type: {shown!r}")
    if body.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol {body.get('protocol')} is not {PROTOCOL_VERSION}")
    cls = _TYPES.get(body["type"])
    if cls is None:
        raise ProtocolError(f"unknown message type {body['type']!r}")
    fields = {k: v for k, v in body.items() if k not in ("protocol", "type")}
    if cls is RunStarted:
        fields["steps"] = [PlannedStep(**s) for s in fields.get("steps") or []]
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ProtocolError(f"malformed {body['type']!r} message: {exc}") from None
