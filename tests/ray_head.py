"""A real Ray head on 127.0.0.1 for tests and benchmarks: started with the ``ray`` command in its own
session and folder, stopped by killing exactly the processes it started (never ``ray stop``, which
would stop every Ray cluster of this user)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A cluster on this machine only: Ray keeps to the loopback address (it would otherwise swap
# 127.0.0.1 for the machine's network address and listen there), and reports no usage.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class LocalRayHead:
    """``ray start --head --block`` on 127.0.0.1 with ``cpus`` CPUs, in a fresh temporary folder."""

    def __init__(self, cpus: int = 2, object_store_mb: int = 300) -> None:
        self.cpus = cpus
        self.object_store_mb = object_store_mb
        self.folder = Path(tempfile.mkdtemp(prefix="wbray-"))  # short: Ray's socket paths must fit
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **LOOPBACK_ENV, "RAY_TMPDIR": str(self.folder)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "head.log"

    def start(self, timeout: float = 180.0) -> LocalRayHead:
        ray = Path(sys.executable).with_name("ray")
        command = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                   f"--num-cpus={self.cpus}", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                   f"--object-store-memory={self.object_store_mb * 2**20}", f"--temp-dir={self.folder / 'ray'}"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Ray head did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        self._wait_for_raylet(deadline)
        return self

    def _wait_for_raylet(self, deadline: float) -> None:
        """The GCS answers before the head's raylet has registered; a driver needs the raylet."""
        while not any("raylet" in " ".join(cmd) for _pid, cmd in self.processes()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head's raylet did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        time.sleep(2.0)

    def processes(self) -> list[tuple[int, list[str]]]:
        """Every live process started for this head: in its session, or naming its folder."""
        out = []
        sid = self.proc.pid if self.proc is not None else None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            words = [c.decode(errors="replace") for c in cmd if c]
            if stat[0] in ("Z", "X"):
                continue
            if (sid is not None and int(stat[3]) == sid) or any(str(self.folder) in w for w in words):
                out.append((int(entry.name), words))
        return out

    def kill(self) -> None:
        """Lose the cluster at once, as when its machine goes away."""
        for pid, _cmd in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # --block: the head stops the processes it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        self.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalRayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
