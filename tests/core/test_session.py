"""The protocol's typed messages and the client side of a worker run, without any process: every
message round-trips through its JSON line, and a session turns lines and an exit status into the
one Outcome the CLI and the window both show."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core import protocol as p
from core.run.session import WorkerSession, worker_command, worker_environment

EXAMPLES = [
    p.RunRequest(recipe={"model": "m", "task": "sst2"}, db="/x.sqlite", artifacts="/a", resume_run=None, background=True),
    p.CancelRequest(),
    p.RunStarted(run_id=3, variants=2, resumed=False,
                 steps=[p.PlannedStep(0, 0, "baseline", "baseline"), p.PlannedStep(1, 1, "prune", "prune(amount=0.1)")]),
    p.StepStarted(node=1, index=1, step="prune", label="prune(amount=0.1)", title="Pruning"),
    p.Progress(node=1, index=1, fraction=0.5, message="half"),
    p.Log(level="warning", message="careful"),
    p.StepFinished(node=1, index=1, variant_id=7, cached=False, seconds=1.5, row={"variant": 7, "metric": 0.9}),
    p.RunFinished(run_id=3),
    p.RunFailed(run_id=3, error="boom", kind="ConfigError", index=1),
    p.RunCancelled(run_id=3, interrupted=True),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_every_message_round_trips_through_one_json_line(message: p.Message) -> None:
    line = message.to_json()
    assert line.endswith("\n") and line.count("\n") == 1
    assert p.decode(line) == message
    assert p.decode(line.encode()) == message


@pytest.mark.parametrize(("line", "why"), [
    ("not json", "not a JSON line"),
    ('{"protocol": 2}', "without a type"),
    ('{"protocol": 1, "type": "run_finished", "run_id": 1}', "protocol 1 is not 2"),
    ('{"protocol": 2, "type": "teleport"}', "unknown message type"),
    ('{"protocol": 2, "type": "run_finished"}', "malformed 'run_finished'"),
    ('{"protocol": 2, "type": "run_finished", "run_id": 1, "extra": 1}', "malformed 'run_finished'"),
])
def test_lines_that_are_not_messages_are_refused_by_name(line: str, why: str) -> None:
    with pytest.raises(p.ProtocolError, match=why):
        p.decode(line)


def _session(*events: p.Message, stderr: tuple[str, ...] = ()) -> WorkerSession:
    session = WorkerSession(p.RunRequest(recipe={}))
    for event in events:
        session.stdout_line(event.to_json())
    for line in stderr:
        session.stderr_line(line)
    return session


def test_outcomes_say_how_the_worker_ended() -> None:
    finished = _session(p.RunStarted(run_id=4, variants=1), p.RunFinished(run_id=4)).finish(0)
    assert finished.ok and finished.run_id == 4 and finished.message() == "Run 4 finished."
    failed = _session(p.RunStarted(run_id=4, variants=1), p.RunFailed(run_id=4, error="no disk", kind="X", index=2))
    out = failed.finish(1)
    assert out.status == "failed" and out.message() == "The run failed (step 2): no disk" and out.resumable
    killed = _session(p.RunStarted(run_id=5, variants=3), stderr=("Traceback", "MemoryError")).finish(None, 9)
    assert killed.status == "crashed" and killed.signal_name == "SIGKILL" and killed.resumable
    assert "out of memory" in killed.message() and "MemoryError" in killed.message()
    exited = _session(p.RunStarted(run_id=5, variants=3)).finish(1)
    assert exited.status == "exited" and "code 1" in exited.message()
    before_run = _session(p.RunFailed(run_id=None, error="unknown step 'x'", kind="RecipeError")).finish(1)
    assert before_run.status == "failed" and before_run.run_id is None and not before_run.resumable


def test_a_stop_the_user_asked_for_is_reported_as_cancelled_however_it_ended() -> None:
    for code, sig in ((3, None), (None, 15), (None, 9)):
        session = _session(p.RunStarted(run_id=6, variants=2))
        session.cancel_line()
        out = session.finish(code, sig)
        assert out.status == "cancelled" and "cancelled" in out.message() and out.resumable


def test_progress_bars_never_become_the_reason_a_worker_died() -> None:
    session = _session(p.RunStarted(run_id=1, variants=1),
                       stderr=("RuntimeError: out of shared memory", "Loading weights: 100%|##########| 199/199 [00:00<00:00]"))
    out = session.finish(None, 9)
    assert out.stderr_tail[-1] == "RuntimeError: out of shared memory"
    assert "Loading weights" not in out.message()


def test_an_unreadable_stdout_line_becomes_a_warning_not_a_crash() -> None:
    event = WorkerSession(p.RunRequest()).stdout_line("ready\n")
    assert isinstance(event, p.Log) and event.level == "warning" and "ready" in event.message


def test_worker_command_and_environment_find_this_copy_of_core(monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_command() == [sys.executable, "-u", "-m", "core.run.worker"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert worker_command() == [sys.executable, "--worker"]
    root = str(Path(__file__).resolve().parents[2])
    env = worker_environment({"PYTHONPATH": f"/elsewhere:{root}"})
    assert env["PYTHONPATH"].split(":") == [root, "/elsewhere"] and env["PYTHONUNBUFFERED"] == "1"

