"""Run a one-step chain through a built bundle's worker (``workbench --worker``) and check its end.

Used by packaging/build.sh. The tiny model is built here with the development Python (the same
code as tests/helpers.py); the run itself happens entirely inside the frozen executable, started
from a scratch folder with PYTHONPATH removed, so nothing can be imported from the source tree.

    python packaging/smoke_worker.py build/dist/workbench/workbench [--default-model]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.protocol import TERMINAL, Message, RunFinished, RunRequest, StepFinished, decode  # noqa: E402


def recipe(model: str, chain: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": 1,
        "name": "packaging smoke test",
        "model": model,
        "task": "sst2",
        "seed": 0,
        "measure": {"eval_limit": 8, "eval_batch_size": 8, "max_length": 16, "latency_batch_size": 2,
                    "latency_seq_len": 8, "latency_warmup": 0, "latency_repeats": 2, "threads": 1},
        "chain": chain,
    }


def run_bundle_worker(exe: Path, request: RunRequest, scratch: Path, timeout: float) -> tuple[int, list[Message]]:
    """Feed one RunRequest to ``exe --worker``; return its exit code and decoded events."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(WORKBENCH_HOME=str(scratch / "home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([str(exe), "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", cwd=scratch, env=env)
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(request.to_json())
    proc.stdin.flush()  # stdin stays open: its end means "the client went away" (a cancel)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    events: list[Message] = []
    try:
        for line in proc.stdout:
            if line.strip():
                event = decode(line)
                events.append(event)
                if isinstance(event, (StepFinished, *TERMINAL)):
                    print(f"  event: {event.to_json()[:160].rstrip()}", flush=True)
                if isinstance(event, TERMINAL):
                    break
    finally:
        proc.stdin.close()
        code = proc.wait()
        timer.cancel()
    if code != 0 or not events or not isinstance(events[-1], RunFinished):
        print("  worker stderr (last 30 lines):\n    " + "    ".join(stderr[-30:]), file=sys.stderr)
    return code, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exe", type=Path, help="the bundle's executable")
    parser.add_argument("--default-model", action="store_true",
                        help="also evaluate the packaged all-MiniLM-L6-v2 (baseline only) inside the bundle")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    exe = args.exe.resolve()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="wb-smoke-") as tmp:
        scratch = Path(tmp)
        from tests.helpers import tiny_bert_folder

        tiny = tiny_bert_folder(scratch / "tiny-bert")
        runs = [("tiny model, one prune step",
                 recipe(str(tiny), [{"step": "prune.global_magnitude", "config": {"amount": 0.5}}]))]
        if args.default_model:
            runs.append(("packaged all-MiniLM-L6-v2, baseline only", recipe("all-MiniLM-L6-v2", [])))
        for i, (label, rec) in enumerate(runs):
            request = RunRequest(recipe=rec, db=str(scratch / f"smoke{i}.sqlite"),
                                 artifacts=str(scratch / f"artifacts{i}"))
            start = time.monotonic()
            code, events = run_bundle_worker(exe, request, scratch, args.timeout)
            last = events[-1].type if events else "(no events)"
            ok = code == 0 and bool(events) and isinstance(events[-1], RunFinished)
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} worker run ({label}): exit {code}, last event {last}, "
                  f"{len(events)} events, {time.monotonic() - start:.1f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
