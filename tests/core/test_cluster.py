"""Sweeps on a Ray cluster (issue 19), against a real Ray head on 127.0.0.1 (2 CPUs) started by the
test and stopped at its end: the same variants and metrics as the same sweep run here, artifacts
back through the object store or a shared folder, progress streamed back, every latency timed
again on the driver on request, cancel, a killed Ray worker retried, and a lost cluster resumed here.

The pure parts (addresses, packing, the job as JSON, the CLI's messages) are tested without Ray.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core import protocol as p
from core.run.cluster import ClusterError, check_address, ray_available
from tests.core.fakes import WORKER_COMMAND, tiny_recipe

needs_ray = pytest.mark.skipif(not ray_available(), reason="Ray is not installed here: pip install -e '.[test]' "
                                                            "(or '.[ray]') to run the Ray cluster tests")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


# ---------------------------------------------------------------------------------------------
# Without Ray


def test_addresses_are_checked_before_anything_runs() -> None:
    assert check_address("auto") == "auto" and check_address(" 127.0.0.1:6379 ") == "127.0.0.1:6379"
    with pytest.raises(ClusterError, match="give 'auto' or the head's HOST:PORT"):
        check_address("my-cluster")
    with pytest.raises(ClusterError, match="Ray Client addresses"):
        check_address("ray://head:10001")


def test_an_artifact_packs_and_unpacks_byte_for_byte_and_a_bad_zip_is_refused(tmp_path: Path) -> None:
    import io
    import zipfile

    from core.artifacts import MANIFEST, pack_artifact, unpack_artifact
    from core.errors import ArtifactError

    folder = tmp_path / "a"
    (folder / "sub").mkdir(parents=True)
    (folder / MANIFEST).write_text("{}")
    (folder / "sub" / "w.bin").write_bytes(os.urandom(5000))
    data = pack_artifact(folder)
    assert unpack_artifact(data, tmp_path / "b") == 5002
    assert (tmp_path / "b" / "sub" / "w.bin").read_bytes() == (folder / "sub" / "w.bin").read_bytes()
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr(MANIFEST, "{}")
        archive.writestr("../outside.txt", "x")
    with pytest.raises(ArtifactError, match="outside it"):
        unpack_artifact(evil.getvalue(), tmp_path / "c")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "c").exists()
    with pytest.raises(ArtifactError, match="damaged"):
        unpack_artifact(b"not a zip", tmp_path / "d")
    assert not (tmp_path / "d.partial").exists()


def test_a_job_survives_json(tiny: Path, tmp_path: Path) -> None:
    import json

    from core.recipe import Recipe, variant_tree
    from core.run.variant import Job

    recipe = Recipe.from_dict(tiny_recipe(tiny, [{"step": "quantize.linear_nbit", "config": {"bits": [4, 8]}}]))
    step = variant_tree(recipe).children[1].step
    job = Job(recipe=recipe, step=step, key="k" * 64, folder=tmp_path / "f", node=2, index=1,
              parent_artifact=tmp_path / "p", parent_predictions=[0, 1], parent_size={"params": 3},
              shares={"load": (0.0, 0.5)})
    back = Job.from_dict(json.loads(json.dumps(job.to_dict())))
    assert back == job and back.step.config.bits == 8 and back.step.label == "quantize.linear_nbit(bits=8)"


def test_the_cli_says_what_to_install_and_what_address_to_give(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import cli
    from core.recipe import Recipe, save_recipe
    from core.run import cluster

    path = tmp_path / "r.yaml"
    save_recipe(Recipe.from_dict(tiny_recipe(tiny, [{"step": "test.scale"}])), path)
    started: list[Any] = []
    monkeypatch.setattr(cli, "_run_worker", lambda request, args: started.append(request) or 0)
    assert cli.main(["run", str(path), "--db", str(tmp_path / "w.sqlite"), "--ray", "nowhere"]) == 2
    assert "give 'auto' or the head's HOST:PORT" in capsys.readouterr().err
    assert cli.main(["run", str(path), "--db", str(tmp_path / "w.sqlite"), "--shared-artifacts", str(tmp_path)]) == 2
    assert "--shared-artifacts needs --ray" in capsys.readouterr().err
    monkeypatch.setattr(cluster, "ray_available", lambda: False)
    assert cli.main(["run", str(path), "--db", str(tmp_path / "w.sqlite"), "--ray", "auto"]) == 2
    assert "pip install 'compression-workbench[ray]'" in capsys.readouterr().err
    assert started == []
    monkeypatch.setattr(cluster, "ray_available", lambda: True)
    assert cli.main(["run", str(path), "--db", str(tmp_path / "w.sqlite"), "--ray", "10.1.2.3:6379",
                     "--shared-artifacts", str(tmp_path / "shared")]) == 0
    (request,) = started
    assert (request.ray, request.shared_artifacts, request.artifacts) == ("10.1.2.3:6379", True, str(tmp_path / "shared"))
    assert p.decode(request.to_json()) == request


def test_a_cluster_that_does_not_answer_fails_before_a_run_is_recorded(tiny: Path, tmp_path: Path) -> None:
    from core.run.runner import run_recipe
    from core.store import list_runs, open_store
    from tests.ray_head import free_port

    if not ray_available():
        pytest.skip("Ray is not installed here")
    with pytest.raises(ClusterError, match=r"Cannot reach the Ray cluster at 127\.0\.0\.1:\d+"):
        run_recipe(tiny_recipe(tiny, [{"step": "test.scale"}]), db_url_or_path=tmp_path / "w.sqlite",
                   ray=f"127.0.0.1:{free_port()}")
    assert list_runs(open_store(tmp_path / "w.sqlite")) == []


# ---------------------------------------------------------------------------------------------
# A real Ray head on 127.0.0.1


@pytest.fixture(scope="module")
def head(tiny: Path) -> Any:
    """One head for the module, and this process joined to it once (with the test steps' package
    shipped), so the tasks of every test reuse the same warm Ray workers."""
    if not ray_available():
        pytest.skip("Ray is not installed here: pip install -e '.[test]' to run the Ray cluster tests")
    from core.recipe import Recipe
    from core.run.cluster import RayExecutor
    from tests.ray_head import LocalRayHead

    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_ADDRESS")}
    with LocalRayHead(cpus=2) as ray_head:
        os.environ["RAY_TMPDIR"] = str(ray_head.folder)
        joined = RayExecutor.connect(ray_head.address, recipe=Recipe.from_dict(tiny_recipe(tiny, [{"step": "test.slow"}])))
        try:
            yield ray_head
        finally:
            joined.close()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _run(tmp: Path, recipe: dict[str, Any], events: list[Any] | None = None, **kw: Any) -> Any:
    from core.run.runner import run_recipe

    sink = events if events is not None else []
    return run_recipe(recipe, db_url_or_path=tmp / "w.sqlite", artifacts_dir=tmp / "artifacts", emit=sink.append, **kw)


SWEEP = [{"step": "test.scale", "config": {"factor": 0.5}},
         {"step": "prune.global_magnitude", "config": {"amount": [0.3, 0.6]}},
         {"step": "quantize.linear_nbit", "config": {"bits": [4, 8]}}]


def _variants(tmp: Path, run_id: int) -> list[Any]:
    from core.store import open_store, run_variants

    with open_store(tmp / "w.sqlite") as store:
        return sorted(run_variants(store, run_id), key=lambda v: v.node)


@needs_ray
def test_a_sweep_on_ray_gives_the_same_variants_and_metrics_as_here(head: Any, tiny: Path, tmp_path: Path) -> None:
    from core.artifacts import load_artifact
    from core.measure import machine_fingerprint
    from core.store import open_store, result_rows, variant_predictions
    from core.store.record import machine_hash

    here = _run(tmp_path / "here", tiny_recipe(tiny, SWEEP))
    assert isinstance(here, p.RunFinished), here
    events: list[Any] = []
    far = _run(tmp_path / "ray", tiny_recipe(tiny, SWEEP), events, ray=head.address)
    assert isinstance(far, p.RunFinished), far
    # The same recipe with every node reading and writing one shared folder, timed again here at the end.
    shared_events: list[Any] = []
    shared = _run(tmp_path / "shared", tiny_recipe(tiny, SWEEP, measure={**tiny_recipe(tiny, [])["measure"],
                                                                            "retime_on_driver": True}),
                  shared_events, ray=head.address, shared_artifacts=True)
    assert isinstance(shared, p.RunFinished), shared

    local = _variants(tmp_path / "here", here.run_id)
    assert len(local) == 8  # baseline, scale, 2 prune, 4 n-bit: the 4 leaves are the sweep's branches
    for where, run in (("ray", far), ("shared", shared)):
        remote = _variants(tmp_path / where, run.run_id)
        assert [(v.node, v.label, v.step_id) for v in remote] == [(v.node, v.label, v.step_id) for v in local]
        by_id = {v.id: v.node for v in remote}
        local_by_id = {v.id: v.node for v in local}
        assert [by_id.get(v.parent_id) for v in remote] == [local_by_id.get(v.parent_id) for v in local]
        for a, b in zip(local, remote, strict=True):
            names = {k for k in a.metrics if not k.startswith(("latency", "load_avg", "eval_seconds"))}
            assert names == {k for k in b.metrics if not k.startswith(("latency", "load_avg", "eval_seconds"))}
            for name in names:
                assert b.metrics[name] == pytest.approx(a.metrics[name], rel=1e-9, abs=1e-12), (b.label, name)
            assert b.flags == a.flags and b.swept == a.swept
            assert Path(b.artifact_path).parent == tmp_path / where / "artifacts" / f"run-{run.run_id:05d}"
            wa, wb = load_artifact(Path(a.artifact_path)).model.state_dict(), load_artifact(Path(b.artifact_path)).model.state_dict()
            assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), b.label
            with open_store(tmp_path / where / "w.sqlite") as store, open_store(tmp_path / "here" / "w.sqlite") as mine:
                assert variant_predictions(store, b.id) == variant_predictions(mine, a.id)

    # Made where: the prefix here, the branches in Ray tasks; every variant knows its machine.
    from core.store import variant_info

    remote = _variants(tmp_path / "ray", far.run_id)
    with open_store(tmp_path / "ray" / "w.sqlite") as store:
        infos = [variant_info(store, v.id) for v in remote]
        rows = result_rows(store, run_ids=[far.run_id])
    assert ["ray" in i for i in infos] == [False, False] + [True] * 6
    assert all(i["ray"]["host"] == socket.gethostname() and i["ray"]["pid"] != os.getpid() for i in infos[2:])
    assert {v.machine for v in remote} == {machine_hash(machine_fingerprint())}  # one machine: no warning
    assert not [r for r in rows if "timed_elsewhere" in r.flag_codes]
    # Events: each remote node started once (its task said so), its progress streamed back, rows arrived.
    started = [e.node for e in events if isinstance(e, p.StepStarted)]
    assert sorted(started) == list(range(8))
    # Branches overlap on the cluster: no sum of their times is offered as the run's time left.
    assert all(e.later_seconds is None for e in events if isinstance(e, p.StepStarted))
    assert {e.node for e in events if isinstance(e, p.Progress)} >= set(range(2, 8))
    finished = {e.node: e for e in events if isinstance(e, p.StepFinished)}
    assert sorted(finished) == list(range(8)) and all(finished[n].row["variant"] == finished[n].variant_id for n in finished)
    assert any(isinstance(e, p.Log) and e.message.startswith(f"Ray cluster at {head.address}") for e in events)
    # retime_on_driver: every latency of the shared run was timed again here, the old one kept in its info.
    with open_store(tmp_path / "shared" / "w.sqlite") as store:
        retimed = [variant_info(store, v.id)["retimed"] for v in _variants(tmp_path / "shared", shared.run_id)]
    assert len(retimed) == 8 and all(r["before"]["latency_p50"] > 0 for r in retimed)
    assert any(isinstance(e, p.Log) and "is now timed on" in e.message for e in shared_events)


def _slow_branches(tiny: Path, release: Path, seconds: list[float]) -> dict[str, Any]:
    return tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": seconds, "chatter": False,
                                                               "release_file": str(release)}}])


def _made_on(events: list[Any]) -> dict[int, int]:
    """Event node -> pid of the Ray worker making it, from the tasks' 'made on' log lines."""
    out = {}
    for e in events:
        if isinstance(e, p.Log) and " made on " in e.message and e.message.startswith("node "):
            out[int(e.message.split(":")[0].split()[1])] = int(e.message.split("(pid ")[1].split(",")[0])
    return out


@needs_ray
def test_cancel_cancels_the_ray_tasks(head: Any, tiny: Path, tmp_path: Path) -> None:
    release = tmp_path / "never"
    events: list[Any] = []
    cancel = threading.Event()

    def emit(event: Any) -> None:
        events.append(event)
        if isinstance(event, p.Progress) and event.node in (1, 2) and event.fraction > 0:
            seen = {e.node for e in events if isinstance(e, p.Progress) and e.node in (1, 2)}
            if seen == {1, 2}:
                cancel.set()

    from core.run.runner import run_recipe
    from core.store import get_run, open_store

    clock: list[float] = []
    threading.Thread(target=lambda: (cancel.wait(600), clock.append(time.monotonic())), daemon=True).start()
    result = run_recipe(_slow_branches(tiny, release, [300, 301]), db_url_or_path=tmp_path / "w.sqlite",
                        artifacts_dir=tmp_path / "a", emit=emit, cancelled=cancel.is_set, ray=head.address)
    assert isinstance(result, p.RunCancelled), result
    assert clock and time.monotonic() - clock[0] < 60  # the 300 s sleeps were stopped, not waited for
    assert any(isinstance(e, p.Log) and e.message == "cancelled 2 Ray task(s) in flight" for e in events)
    with open_store(tmp_path / "w.sqlite") as store:
        run = get_run(store, result.run_id)
    assert run.status == "cancelled" and run.variants == 1  # the baseline; resume makes the rest


@needs_ray
def test_a_ray_worker_killed_mid_task_is_retried(head: Any, tiny: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    events: list[Any] = []
    killed: list[int] = []

    def emit(event: Any) -> None:
        events.append(event)
        if not killed and isinstance(event, p.Progress) and event.node == 1 and event.fraction > 0:
            pid = _made_on(events).get(1)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # the Ray worker process making node 1, mid-step
                killed.append(pid)
                release.touch()  # from now on the slow steps end at once

    from core.run.runner import run_recipe

    result = run_recipe(_slow_branches(tiny, release, [300, 301]), db_url_or_path=tmp_path / "w.sqlite",
                        artifacts_dir=tmp_path / "a", emit=emit, ray=head.address)
    assert isinstance(result, p.RunFinished), result
    assert killed, "node 1 never reported progress from a Ray worker"
    assert [e.node for e in events if isinstance(e, p.StepStarted)].count(1) == 2  # the task ran again
    assert any(isinstance(e, p.Log) and e.level == "warning" and "Ray runs it again (attempt 2 of 3)" in e.message
               for e in events)
    variants = _variants(tmp_path, result.run_id)
    assert [v.label for v in variants] == ["baseline", "test.slow(seconds=300)", "test.slow(seconds=301)"]
    from core.store import open_store, variant_info

    with open_store(tmp_path / "w.sqlite") as store:
        assert variant_info(store, variants[1].id)["ray"]["pid"] != killed[0]  # made by another worker


@needs_ray
def test_a_lost_cluster_leaves_every_recorded_variant_and_the_run_resumes_here(tiny: Path, tmp_path: Path) -> None:
    """The worker (driver) runs in its own process; the cluster's processes are all killed once one
    branch is recorded and the other is in flight. Resuming without Ray reuses what was recorded."""
    from core.run.process import WorkerProcess
    from core.run.runner import run_recipe
    from core.store import get_run, mark_interrupted_runs, open_store
    from tests.ray_head import LocalRayHead

    release = tmp_path / "release"
    recipe = tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": 0.5}},
                                {"step": "test.slow", "config": {"seconds": [0.1, 300], "chatter": False,
                                                                 "release_file": str(release)}}])
    with LocalRayHead(cpus=2) as ray_head:
        request = p.RunRequest(recipe=recipe, db=str(tmp_path / "w.sqlite"), artifacts=str(tmp_path / "a"),
                               ray=ray_head.address)
        worker = WorkerProcess(request, command=WORKER_COMMAND, env={"RAY_TMPDIR": str(ray_head.folder)})
        lost_at = None
        events: list[Any] = []
        for event in worker.events():
            events.append(event)
            if lost_at is None and isinstance(event, p.StepFinished) and event.node == 2:
                ray_head.kill()  # the whole cluster goes away, Ray workers included
                lost_at = time.monotonic()
        outcome = worker.wait()
    assert lost_at is not None, [e for e in events if isinstance(e, p.RunFailed)]
    assert time.monotonic() - lost_at < 120
    assert outcome.status in ("failed", "crashed", "exited") and outcome.resumable, outcome
    if outcome.status == "failed":
        assert "Lost the Ray cluster" in outcome.error or "lost the worker or node" in outcome.error
    with open_store(tmp_path / "w.sqlite") as store:
        mark_interrupted_runs(store)
        run = get_run(store, outcome.run_id)
        assert run.status in ("failed", "interrupted") and run.variants == 3
    before = _variants(tmp_path, run.id)

    release.touch()
    events = []
    result = run_recipe(None, db_url_or_path=tmp_path / "w.sqlite", resume_run=run.id, emit=events.append)
    assert isinstance(result, p.RunFinished), result
    after = _variants(tmp_path, run.id)
    assert [v.id for v in after[:3]] == [v.id for v in before]  # nothing recorded was lost or redone
    assert [v.label for v in after] == ["baseline", "test.scale", "test.slow(seconds=0.1)", "test.slow(seconds=300)"]
    assert after[3].parent_id == after[1].id
    assert [e.cached for e in events if isinstance(e, p.StepFinished)] == [True, True, True, False]
