"""Sweeps on a Ray cluster: the shared prefix of the variant tree is made here, the independent
branches after it as Ray tasks, one variant per task (docs/CLUSTER.md).

This process stays the driver: it decides what to compute (cache, resume), records every row and
reports every event. A task gets its job as JSON and its parent's artifact as a zip
(core.artifacts.pack_artifact) through Ray's object store, and returns what it measured as JSON
and its own artifact as a zip, unpacked here into the run's artifacts folder; with
``shared_artifacts`` the nodes read and write that folder directly (it must be at the same path on
every node). Only JSON text and zip bytes travel: no pickled objects of ours.

Progress: a task's events go to a small actor (``EventSink``) in batches, at most ~4 a second,
and the driver drains it while it waits. Cancel: ``ray.cancel`` on every task in flight. A worker
process killed mid-task is retried by Ray (``max_retries``); a lost cluster ends the run as failed,
every variant recorded so far kept, and ``workbench-cli resume`` finishes it (here, or on a cluster).

Each task runs this driver's own ``core`` package (shipped with Ray's ``py_modules``), so the cache
keys (which hash the code) describe what the nodes ran; torch, transformers and the other
libraries must be installed on every node.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import ipaddress
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import StepCancelled, WorkbenchError
from core.protocol import Event, Log, ProtocolError, StepStarted, decode, ray_address_problem

DEFAULT_MAX_RETRIES = 2  # a task whose worker process dies is run again this many times
FLUSH_EVERY_S = 0.25  # how often a task sends its events
HEALTH_EVERY_S = 2.0  # how often the driver checks that the cluster is still there
LOST_AFTER_S = 8.0  # unreachable for this long: the cluster is lost
CANCEL_GRACE_S = 10.0  # after ray.cancel, how long a task may take to stop before it is killed

INSTALL_HINT = "pip install 'compression-workbench[ray]'"


class ClusterError(WorkbenchError):
    """The Ray cluster cannot be used, or was lost during the run."""


class RemoteStepError(WorkbenchError):
    """A step failed on a Ray node; ``kind`` is the type of the error it raised there."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def check_address(address: str) -> str:
    """``address`` as Ray takes it: "auto" or HOST:PORT; ClusterError saying what to give otherwise."""
    problem = ray_address_problem(address)
    if problem is not None:
        raise ClusterError(f"--ray {problem}")
    return address.strip()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve_auto() -> str | None:
    """The address 'auto' means: RAY_ADDRESS, or the cluster last started on this machine."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    temp = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    path = Path(temp or "/tmp") / "ray" / "ray_current_cluster"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _reachable(address: str, timeout: float = 2.0) -> bool:
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _model_type(model: str) -> str | None:
    """The starting model's family (config.json's model_type), None when not readable here."""
    from core.models import ModelRef, inspect_model_folder

    try:
        folder = ModelRef.parse(model).local_folder()
        return inspect_model_folder(folder).model_type if folder is not None else None
    except Exception:  # warming up is an optimisation: the run itself reports a bad model
        return None


def _package_dir(module: str) -> Path | None:
    """The folder of ``module``'s top-level package, to ship to the nodes (None: not a folder package)."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# ---------------------------------------------------------------------------------------------
# The task side (runs on a Ray node)


class EventSink:
    """The events of every task, queued for the driver (a Ray actor; lines of core.protocol JSON)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def push(self, lines: list[str]) -> None:
        self.lines.extend(lines)

    def drain(self) -> list[str]:
        out, self.lines = self.lines, []
        return out


class _Emitter:
    """A task's ``emit``: buffers events and sends them to the sink in batches (fire and forget;
    a caller's calls to one actor run in order)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.lines: list[str] = []
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        self.line(event.to_json())
        urgent = isinstance(event, StepStarted) or (isinstance(event, Log) and event.level in ("warning", "error"))
        if urgent or time.monotonic() - self.last >= FLUSH_EVERY_S:
            self.flush()

    def line(self, text: str) -> None:
        with self.lock:
            self.lines.append(text)

    def flush(self, wait: bool = False) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
            self.last = time.monotonic()
        if lines or wait:
            ref = self.sink.push.remote(lines)
            if wait:
                import ray

                ray.get(ref, timeout=30)


def warm_worker(modules: list[str], model_type: str | None) -> int:
    """Import what making a variant imports (torch, transformers and the model family's modelling code,
    the workbench, the recipe's own step modules) in a Ray worker, so the first branch it gets starts
    at once; returns the worker's pid. The driver sends these while it makes the shared prefix: the
    imports (~10 s per fresh process on a busy 2-core machine) then overlap with the prefix."""
    for module in ("core.artifacts", "core.measure", "core.recipe", "core.run.variant", *modules):
        importlib.import_module(module)
    from core.steps import all_steps

    all_steps()
    if model_type:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        with contextlib.suppress(Exception):  # a family transformers does not map: its first task imports it
            MODEL_MAPPING[type(AutoConfig.for_model(model_type))]  # imports the family's modelling module
    return os.getpid()


def make_remote_variant(payload: str, parent: bytes | None, sink: Any) -> tuple[str, bytes | None]:
    """One variant on a Ray node: the job as JSON (and its parent's artifact as a zip, unless the
    artifacts folder is shared) in; what was measured as JSON (and the artifact as a zip) out.
    A step's error comes back as JSON too (``ok`` false), so it is reported as the step's."""
    import shutil
    import tempfile
    import traceback

    started = time.perf_counter()
    request = json.loads(payload)
    emit = _Emitter(sink)
    work: Path | None = None
    try:
        emit.line(request["started"])
        emit.flush()
        for module in request["modules"]:  # steps registered outside core.steps (plugins, tests)
            importlib.import_module(module)
        if request.get("threads"):
            import torch

            torch.set_num_threads(int(request["threads"]))
        from core.artifacts import pack_artifact, unpack_artifact
        from core.measure import machine_fingerprint
        from core.recipe import recipe_task
        from core.run import keys, variant

        job = variant.Job.from_dict(request["job"])
        task = recipe_task(job.recipe)
        if keys.Hasher().data(task) != request["data_hash"]:
            from core.errors import DataError

            raise DataError(f"The data of task {task.id} on {socket.gethostname()} differs from the driver's: "
                            "install the same workbench version on every node, and put your own data files at "
                            "the same path on every node (docs/CLUSTER.md)")
        if not request["shared"]:
            work = Path(tempfile.mkdtemp(prefix="workbench-variant-"))
            if parent is not None:
                job.parent_artifact = work / "parent"
                unpack_artifact(parent, job.parent_artifact)
            job.folder = work / job.folder.name
        import ray

        emit(Log(level="debug", message=f"node {job.node}: made on {socket.gethostname()} (pid {os.getpid()}, "
                                        f"Ray node {ray.get_runtime_context().get_node_id()[:8]})"))
        _shipped, made = variant.make_variant(job, task, emit=emit, cancelled=lambda: False)
        del _shipped
        result = {
            "ok": True, "values": [asdict(v) for v in made.values], "flags": made.flags,
            "predictions": made.predictions, "info": made.info, "timings": made.timings,
            "machine": machine_fingerprint(), "pid": os.getpid(), "host": socket.gethostname(),
            "ray_node": ray.get_runtime_context().get_node_id(), "seconds": time.perf_counter() - started,
        }
        data = None if request["shared"] else pack_artifact(job.folder)
        return json.dumps(result), data
    except Exception as exc:
        return json.dumps({"ok": False, "kind": type(exc).__name__, "message": str(exc),
                           "user_error": isinstance(exc, WorkbenchError), "traceback": traceback.format_exc(),
                           "host": socket.gethostname()}), None
    finally:
        with contextlib.suppress(Exception):  # the sink or the cluster is gone: the result still goes back
            emit.flush(wait=True)  # every event is in the sink before the result is
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The driver side


@dataclass
class _Flight:
    """A task in flight."""

    slot: Any  # core.run.runner.Slot
    parent: Any  # the parent's _Done
    key: str
    job: Any  # core.run.variant.Job (driver paths)
    result: Any  # ObjectRef of the JSON result
    data: Any  # ObjectRef of the zip (None when the artifacts folder is shared)


class RayExecutor:
    """Makes the shared prefix of each walk here and every branch after it on the Ray cluster."""

    overlaps = True  # branches run side by side: no sum of their times is the run's time left

    def __init__(self, address: str, *, shared_artifacts: bool, max_retries: int, emit: Callable[[Event], None]) -> None:
        self.address = address
        self.shared = shared_artifacts
        self.max_retries = max_retries
        self.emit = emit
        self.sink: Any = None
        self.task: Any = None
        self.warm: Any = None
        self.warmed = False
        self.modules: list[str] = []
        self.nodes: list[dict[str, Any]] = []
        self.starts: dict[int, int] = {}  # event id -> how many times its task started
        self._last_health = 0.0
        self._unreachable_since: float | None = None
        self._connected = False
        self._owns = False  # whether this executor joined the cluster (and so leaves it)

    # -- connecting ----------------------------------------------------------------------------
    @classmethod
    def connect(cls, address: str, *, shared_artifacts: bool = False, max_retries: int = DEFAULT_MAX_RETRIES,
                emit: Callable[[Event], None] = lambda event: None, recipe: Any = None) -> RayExecutor:
        """Join the cluster at ``address`` ("auto": RAY_ADDRESS or the one started on this machine).
        ClusterError, before anything runs, when Ray is missing or the cluster cannot be reached."""
        if not ray_available():
            raise ClusterError(f"Running on a Ray cluster needs Ray on this machine: {INSTALL_HINT}")
        requested = check_address(address)
        resolved = _resolve_auto() if requested == "auto" else requested
        if resolved is None:
            raise ClusterError("--ray auto found no Ray cluster on this machine (no RAY_ADDRESS, no 'ray start' "
                               "here); start one with 'ray start --head' or give the head's HOST:PORT")
        resolved = check_address(resolved)
        host, _ = _split(resolved)
        if not _reachable(resolved):
            raise ClusterError(f"Cannot reach the Ray cluster at {resolved} (nothing answers there): start it with "
                               "'ray start --head', check the address, or run without --ray")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never report usage anywhere
        if is_loopback(host):
            # A cluster on this machine only: keep Ray on the loopback address (by default Ray swaps
            # 127.0.0.1 for this machine's network address, and would listen there too).
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        executor = cls(resolved, shared_artifacts=shared_artifacts, max_retries=max_retries, emit=emit)
        executor._init(recipe)
        return executor

    def _init(self, recipe: Any) -> None:
        import ray

        import core

        self.modules = sorted(self._step_modules(recipe)) if recipe is not None else []
        packages = {Path(core.__file__).parent} | {d for m in self.modules if (d := _package_dir(m)) is not None}
        passed = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "WORKBENCH_ALLOW_PICKLE_WEIGHTS")
                  if k in os.environ}
        runtime_env = {"py_modules": [str(p) for p in sorted(packages)], "excludes": ["__pycache__", "*.pyc"],
                       "env_vars": {"TOKENIZERS_PARALLELISM": "false", **passed}}
        if ray.is_initialized():  # a process that joined already (a notebook, a test) keeps its session
            self._owns = False
        else:
            try:
                ray.init(address=self.address, runtime_env=runtime_env, namespace="compression-workbench",
                         logging_level="WARNING", log_to_driver=False)
            except Exception as exc:
                raise ClusterError(f"Cannot join the Ray cluster at {self.address}: {exc}") from None
            self._owns = True
        self._connected = True
        self.nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in self.nodes)
        self.emit(Log(level="info", message=f"Ray cluster at {self.address}: {len(self.nodes)} node(s), {cpus:g} CPU(s); "
                                            "branches after the shared prefix run there"))
        if recipe is not None:
            self._check_fits(recipe)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        self.sink = ray.remote(num_cpus=0)(EventSink).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True)).remote()
        self.task = ray.remote(make_remote_variant)
        self.warm = ray.remote(warm_worker)

    @staticmethod
    def _step_modules(recipe: Any) -> set[str]:
        """Modules registering the recipe's steps outside core.steps: each task imports them."""
        from core.recipe import variant_tree
        from core.steps import get_step

        out = set()
        for node in variant_tree(recipe).walk():
            if node.step is not None:
                module = get_step(node.step.step).__module__
                if not module.startswith("core."):
                    out.add(module)
        return out

    def requests(self, step_id: str, measure: Any) -> tuple[float, int]:
        """(CPUs, memory bytes) one variant of ``step_id`` asks of a node (Step.resources); at least
        the threads the recipe times with."""
        from core.steps import get_step

        res = get_step(step_id).resources
        return max(float(res.cpus), float(measure.threads or 0)), int(res.memory_gb * 2**30)

    def _check_fits(self, recipe: Any) -> None:
        """Every step's request fits some node: a task that fits none would wait for ever."""
        from core.recipe import variant_tree

        biggest = max(((n["Resources"].get("CPU", 0), n["Resources"].get("memory", 0)) for n in self.nodes), default=(0, 0))
        for node in variant_tree(recipe).walk():
            if node.step is None:
                continue
            cpus, memory = self.requests(node.step.step, recipe.measure)
            if not any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("memory", 0) >= memory
                       for n in self.nodes):
                raise ClusterError(
                    f"Step {node.step.step} asks a Ray node for {cpus:g} CPU(s) and {memory / 2**30:.1f} GB of memory "
                    f"(its resources, and measure.threads); the biggest node of {self.address} has {biggest[0]:g} "
                    f"CPU(s) and {biggest[1] / 2**30:.1f} GB. Add a bigger node or lower measure.threads")

    def close(self) -> None:
        """Leave the cluster (in a thread: a lost cluster must not hold the run's ending)."""
        if not self._connected:
            return
        self._connected = False
        if not self._owns:
            return
        import ray

        done = threading.Thread(target=ray.shutdown, daemon=True)
        done.start()
        if self._unreachable_since is None:
            done.join(timeout=30)
        else:
            # Leaving a lost cluster waits for it about a minute, and Ray's exit hook would wait again
            # when this process ends: the run is recorded, so leave at once.
            done.join(timeout=1)
            atexit.unregister(ray.shutdown)

    # -- the walk ------------------------------------------------------------------------------
    def walk(self, runner: Any, tree: Any, key: str) -> None:
        """The shared prefix here (parents in memory), then every branch after it on the cluster."""
        self._warm_up(runner, tree)
        node, parent, state = tree, None, None
        while True:
            done, state = runner.produce(node, parent, key, state)
            if runner.over_budget(done):
                self._children(runner, node, done, key)  # reports its subtree skipped
                return
            if len(node.children) != 1:
                break
            child = node.children[0]
            node, parent, key = child, done, runner.child_key(key, child.step)
        del state  # the branches read it from its artifact
        if node.children:
            self.branches(runner, node, done, key)
        else:
            runner.log("no sweep to spread: every variant was made on this machine")

    def _warm_up(self, runner: Any, tree: Any) -> None:
        """Start, while the prefix is made here, as many Ray workers as the first branches can use at
        once (one per branch, as far as the cluster's CPUs go), each importing what a task needs."""
        if self.warmed:
            return
        self.warmed = True
        top = tree
        while len(top.children) == 1:
            top = top.children[0]
        if not top.children:
            return
        cpus = max(self.requests(c.step.step, runner.recipe.measure)[0] for c in top.children)
        total = sum(n.get("Resources", {}).get("CPU", 0) for n in self.nodes)
        model_type = _model_type(runner.recipe.model)
        for _ in range(min(len(top.children), int(total // cpus))):
            self.warm.options(num_cpus=cpus, scheduling_strategy="SPREAD", max_retries=0,
                              name="workbench: warm-up").remote(self.modules, model_type)

    def branches(self, runner: Any, top: Any, top_done: Any, top_key: str) -> None:
        import ray

        ready: deque[tuple[Any, Any, str]] = deque(
            (child, top_done, runner.child_key(top_key, child.step)) for child in top.children)
        packed: dict[int, Any] = {}  # id(parent's _Done) -> ObjectRef of its zip
        in_flight: dict[Any, _Flight] = {}
        data_hash = runner.hasher.data(runner.task)
        try:
            while ready or in_flight:
                if runner.cancelled():
                    raise StepCancelled("Run cancelled by the user")
                while ready:
                    node, parent, key = ready.popleft()
                    slot = runner.slot(node)
                    done = runner.reuse(slot, parent, key)
                    if done is not None:  # a task says when it starts; a reused variant is told here
                        runner.emit(slot.started_event())
                        runner.report(slot, done)
                        ready.extend(self._children(runner, node, done, key))
                        continue
                    flight = self._submit(runner, slot, parent, key, packed, data_hash)
                    in_flight[flight.result] = flight
                if not in_flight:
                    continue
                finished, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0.2, fetch_local=False)
                self.pump(runner)
                for ref in finished:
                    flight = in_flight.pop(ref)
                    done = self._collect(runner, flight)
                    if flight.slot.node.children:
                        packed[id(done)] = flight.data
                    ready.extend(self._children(runner, flight.slot.node, done, flight.key))
                if not finished:
                    self._check_health()
        except BaseException:
            if self._unreachable_since is None:  # a lost cluster has nothing left to cancel
                self._cancel(list(in_flight.values()), runner)
            raise

    @staticmethod
    def _children(runner: Any, node: Any, done: Any, key: str) -> list[tuple[Any, Any, str]]:
        """What to make after ``node``: its children, or none when it broke the accuracy budget.
        (Siblings run side by side here, so a sweep's later values are not stopped by an earlier one
        over budget, as they are in a local run: the cluster makes them anyway.)"""
        if runner.over_budget(done):
            for child in node.children:
                runner.skip(child, f"{runner.slot(node).label} is over the accuracy budget")
            return []
        return [(c, done, runner.child_key(key, c.step)) for c in node.children]

    def _submit(self, runner: Any, slot: Any, parent: Any, key: str, packed: dict[int, Any], data_hash: str) -> _Flight:
        import ray

        job = runner.job(slot, parent, key, loads=True)
        parent_zip = None
        if not self.shared:
            if id(parent) not in packed:  # made here (the prefix) or reused from the cache: send it once
                from core.artifacts import pack_artifact

                packed[id(parent)] = ray.put(pack_artifact(parent.artifact))
            parent_zip = packed[id(parent)]
        cpus, memory = self.requests(slot.step_id, runner.recipe.measure)
        payload = {"job": job.to_dict(), "started": slot.started_event().to_json(), "modules": self.modules,
                   "data_hash": data_hash, "shared": self.shared, "threads": runner.recipe.measure.threads or int(cpus)}
        result, data = self.task.options(
            num_cpus=cpus, memory=memory, max_retries=self.max_retries, retry_exceptions=False, num_returns=2,
            name=f"workbench: {slot.label}",
        ).remote(json.dumps(payload), parent_zip, self.sink)
        return _Flight(slot, parent, key, job, result, data if not self.shared else None)

    def _collect(self, runner: Any, flight: _Flight) -> Any:
        """Record a finished task's variant (its events first)."""
        import ray
        from ray import exceptions as rx

        from core.artifacts import MANIFEST, unpack_artifact
        from core.run import variant
        from core.store.rows import MetricValue

        slot = flight.slot
        runner.current_index = slot.index
        try:
            result = json.loads(ray.get(flight.result))
        except rx.TaskCancelledError:
            raise StepCancelled("Run cancelled by the user") from None
        except rx.RayError as exc:
            raise ClusterError(
                f"{slot.label}: the Ray cluster lost the worker or node making it "
                f"({self.max_retries + 1} attempt(s); {type(exc).__name__}: {str(exc).splitlines()[0][:300]}). "
                "Every variant recorded so far is kept: resume the run to finish it") from None
        self.pump(runner)
        if not result["ok"]:
            if not result["user_error"]:
                print(f"--- {slot.label} failed on {result['host']}:\n{result['traceback']}", file=sys.stderr)
                message = f"Internal error ({result['kind']}) on Ray node {result['host']}: {result['message']}"
            else:
                message = result["message"]
            raise RemoteStepError(message, result["kind"])
        clock = time.perf_counter()
        if self.shared:
            if not (flight.job.folder / MANIFEST).is_file():
                raise ClusterError(f"{slot.label}: the node wrote its artifact to {flight.job.folder}, which this "
                                   "machine does not see: is the shared artifacts folder mounted at the same path here?")
        else:
            unpack_artifact(ray.get(flight.data), flight.job.folder)
        transfer = time.perf_counter() - clock
        info = {**result["info"], "ray": {"host": result["host"], "node": result["ray_node"], "pid": result["pid"],
                                          "task_seconds": round(result["seconds"], 3),
                                          "transfer_seconds": round(transfer, 3)}}
        made = variant.Made(folder=flight.job.folder, values=[MetricValue(**v) for v in result["values"]],
                            flags=result["flags"], predictions=result["predictions"], info=info,
                            timings=result["timings"])
        done = runner.made(slot, flight.parent, flight.key, made, result["seconds"] + transfer, result["machine"])
        runner.report(slot, done)
        return done

    def pump(self, runner: Any) -> None:
        """Forward the tasks' queued events; a task that starts again means Ray retried it."""
        import ray

        try:
            lines = ray.get(self.sink.drain.remote(), timeout=10)
        except Exception:  # the sink's node is gone: events are lost, rows are not
            self._check_health()
            return
        for line in lines:
            try:
                event = decode(line)
            except ProtocolError as exc:
                runner.emit(Log(level="warning", message=f"unreadable event from a Ray task: {exc}"))
                continue
            if isinstance(event, StepStarted):
                self.starts[event.node] = self.starts.get(event.node, 0) + 1
                if self.starts[event.node] > 1:
                    runner.emit(Log(level="warning", message=(
                        f"{event.label}: the Ray worker making it was lost; Ray runs it again "
                        f"(attempt {self.starts[event.node]} of {self.max_retries + 1})")))
            runner.emit(event)  # type: ignore[arg-type]

    def _check_health(self) -> None:
        """ClusterError once the head has not answered for LOST_AFTER_S."""
        now = time.monotonic()
        if now - self._last_health < HEALTH_EVERY_S:
            return
        self._last_health = now
        if _reachable(self.address, timeout=1.0):
            self._unreachable_since = None
            return
        self._unreachable_since = self._unreachable_since or now
        if now - self._unreachable_since >= LOST_AFTER_S:
            raise ClusterError(
                f"Lost the Ray cluster at {self.address} (no answer for {LOST_AFTER_S:g} s). Every variant recorded "
                "so far is kept: resume the run to finish it, here or on a cluster again")

    def _cancel(self, flights: list[_Flight], runner: Any) -> None:
        """Cancel tasks in flight: politely, then by killing their workers."""
        if not flights:
            return
        import ray

        refs = [f.result for f in flights]
        try:
            for ref in refs:
                ray.cancel(ref, force=False)
            _, pending = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S, fetch_local=False)
            for ref in pending:
                ray.cancel(ref, force=True)
        except Exception as exc:  # a lost cluster has nothing left to cancel
            runner.emit(Log(level="warning", message=f"could not cancel every Ray task: {exc}"))
            return
        runner.emit(Log(level="info", message=f"cancelled {len(refs)} Ray task(s) in flight"))
