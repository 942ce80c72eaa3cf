"""The faults issue 6 lists, each with real processes and real files: kill -9 mid-step then resume,
two runs at once on one database, corrupt and newer-schema databases, an unwritable artifact folder,
and broken recipes (nothing runs)."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from core import protocol as p
from core.cli import main
from core.recipe import Recipe, save_recipe
from core.run import process as worker_client
from core.run.process import WorkerProcess, run_worker
from core.store import SCHEMA_VERSION, get_run, list_runs, open_store, run_variants
from tests.core.fakes import WORKER_COMMAND, tiny_recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _request(tmp_path: Path, recipe: dict[str, Any], artifacts: Path | None = None) -> p.RunRequest:
    return p.RunRequest(recipe=recipe, db=str(tmp_path / "w.sqlite"), artifacts=str(artifacts or tmp_path / "artifacts"))


def test_kill_9_mid_step_keeps_finished_steps_and_resume_completes(tiny: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    recipe = tiny_recipe(tiny, [
        {"step": "test.scale", "config": {"factor": 0.5}},
        {"step": "test.slow", "config": {"seconds": 120, "chatter": False, "release_file": str(release)}},
        {"step": "test.scale", "config": {"factor": 2.0}},
    ])
    worker = WorkerProcess(_request(tmp_path, recipe), command=WORKER_COMMAND)
    run_id = None
    for event in worker.events():
        if isinstance(event, p.RunStarted):
            run_id = event.run_id
        if isinstance(event, p.Progress) and event.index == 2:  # inside the slow step
            os.kill(worker.pid, signal.SIGKILL)
    outcome = worker.wait()
    assert outcome.status == "crashed" and outcome.signal_name == "SIGKILL" and outcome.run_id == run_id
    assert "stopped by SIGKILL" in outcome.message() and outcome.resumable

    store = open_store(tmp_path / "w.sqlite")
    assert get_run(store, run_id).status == "running"  # nobody has looked yet
    from core.store import mark_interrupted_runs

    assert mark_interrupted_runs(store) == [run_id]
    run = get_run(store, run_id)
    assert run.status == "interrupted" and run.variants == 2
    before = [v.id for v in run_variants(store, run_id)]

    release.touch()  # the slow step now finishes at once
    from core.run.runner import run_recipe

    events: list[Any] = []
    result = run_recipe(None, db_url_or_path=tmp_path / "w.sqlite", resume_run=run_id, emit=events.append)
    assert isinstance(result, p.RunFinished), result
    run = get_run(store, run_id)
    assert run.status == "finished" and run.attempts == 2 and run.variants == 4
    variants = run_variants(store, run_id)
    assert [v.id for v in variants[:2]] == before  # finished steps kept, not redone
    assert [v.step_id for v in variants] == ["baseline", "test.scale", "test.slow", "test.scale"]
    assert [e.cached for e in events if isinstance(e, p.StepFinished)] == [True, True, False, False]
    assert variants[2].parent_id == variants[1].id and variants[3].parent_id == variants[2].id


def test_two_runs_at_once_on_one_database(tiny: Path, tmp_path: Path) -> None:
    outcomes: dict[int, Any] = {}
    stderr: list[str] = []

    def go(seed: int) -> None:
        recipe = {**tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": 0.5}},
                                       {"step": "test.scale", "config": {"factor": 1.5}}]), "seed": seed}
        outcomes[seed] = run_worker(_request(tmp_path, recipe), command=WORKER_COMMAND, on_stderr=stderr.append)

    threads = [threading.Thread(target=go, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(o.ok for o in outcomes.values()), [o.message() for o in outcomes.values()]
    assert not [line for line in stderr if "locked" in line]
    runs = list_runs(open_store(tmp_path / "w.sqlite"))
    assert sorted(r.seed for r in runs) == [1, 2]
    assert all(r.status == "finished" and r.variants == 3 for r in runs)


def _write_recipe(tiny: Path, tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    save_recipe(Recipe.from_dict(tiny_recipe(tiny, [{"step": "test.scale"}])), path)
    return path


@pytest.mark.parametrize("damage", ["corrupt", "newer"])
def test_unusable_database_is_reported_and_left_byte_identical(
    tiny: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "w.sqlite"
    if damage == "corrupt":
        open_store(db).close()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
        data = bytearray(db.read_bytes())
        data[200:4096] = b"\xff" * (4096 - 200)
        db.write_bytes(bytes(data))
    else:
        open_store(db).close()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    before = db.read_bytes()
    started: list[bool] = []
    monkeypatch.setattr(worker_client, "run_worker", lambda *a, **k: started.append(True))
    for argv in (["run", str(_write_recipe(tiny, tmp_path))], ["runs"], ["show", "1"], ["export", "--format", "csv"]):
        assert main([*argv, "--db", str(db)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(db) in err and "Traceback" not in err
        assert ("damaged" in err) if damage == "corrupt" else ("newer workbench" in err)
    assert db.read_bytes() == before
    assert started == []  # no worker was started


def test_unwritable_artifact_folder_fails_the_run_clearly(tiny: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # works even as root, where chmod would not stop writes
    request = _request(tmp_path, tiny_recipe(tiny, [{"step": "test.scale"}]), artifacts=blocker / "art")
    outcome = run_worker(request, command=WORKER_COMMAND)
    assert outcome.exit_code == 1 and outcome.status == "failed"
    assert "Cannot write artifacts to" in outcome.message() and str(blocker) in outcome.message()
    assert "--artifacts" in outcome.message()
    (run,) = list_runs(open_store(tmp_path / "w.sqlite"))
    assert run.status == "failed" and run.error_kind == "ArtifactError" and run.variants == 0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model: {model}\ntask: sst2\nchain:\n  - step: no.such.step\n", "unknown step 'no.such.step'"),
        ("model: {model}\ntask: sst2\nchain:\n  - step: test.scale\n    config: {{factor: lots}}\n",
         "step 1 (test.scale), field 'factor': Factor (factor) must be a number, got the text 'lots'"),
        ("model: {model}\ntask: sst2\nchain:\n  - step: test.scale\n   config: [\n", "YAML syntax error"),
    ],
)
def test_broken_recipe_is_a_clear_error_and_nothing_runs(
    tiny: Path, tmp_path: Path, text: str, needle: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text.format(model=tiny), encoding="utf-8")
    started: list[bool] = []
    monkeypatch.setattr(worker_client, "run_worker", lambda *a, **k: started.append(True))
    db = tmp_path / "w.sqlite"
    assert main(["run", str(path), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert started == [] and not db.exists()


# --- kill -9 at every phase (issue 16) -----------------------------------------------------------

# baseline, scale, finetune, scale: nodes 000..003 (the number each artifact folder starts with)
_PHASE_CHAIN = [
    {"step": "test.scale", "config": {"factor": 0.5}},
    {"step": "finetune", "config": {"epochs": 1.0, "batch_size": 8, "train_size": 32, "max_length": 16}},
    {"step": "test.scale", "config": {"factor": 2.0}},
]
# phase -> (where the worker pauses to be killed, variants finished by then)
_PHASES = {
    "baseline": ("load:000", 0),  # loading the model, nothing recorded yet
    "training": (None, 2),  # killed at the first training-loss curve point of the finetune step
    "saving": ("save:003", 3),  # the weights of the last variant written to its .partial folder
    "evaluating": ("evaluate:001", 1),  # the first variant saved and half evaluated, its row not written
}


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(db: Path, run_id: int) -> list[tuple[Any, ...]]:
    """What a finished variant is: its row, metrics and the bytes of its weights."""
    store = open_store(db)
    return [(v.id, v.step_id, sorted(v.metrics.items()), _sha(Path(v.artifact_path) / "model.safetensors"))
            for v in run_variants(store, run_id)]


def _whole_and_clean(db: Path, run_id: int) -> None:
    """The run folder holds exactly the variants' folders, each a whole artifact; no scratch, no .partial."""
    from core.artifacts import is_complete_artifact

    store = open_store(db)
    folders = {Path(v.artifact_path) for v in run_variants(store, run_id)}
    run_folder = next(iter(folders)).parent
    assert set(run_folder.iterdir()) == folders
    assert all(is_complete_artifact(f) for f in folders)


def _wait_for(condition: Any, what: str, timeout: float = 180) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(_PHASES))
def test_kill_9_at_each_phase_then_resume_keeps_finished_variants(tiny: Path, tmp_path: Path, phase: str) -> None:
    from core.run.runner import run_recipe
    from core.store import mark_interrupted_runs
    from tests.core.fakes import PAUSE_ENV

    pause, finished = _PHASES[phase]
    marker = tmp_path / "paused"
    env = {PAUSE_ENV: f"{pause}:{marker}"} if pause else {}
    worker = WorkerProcess(_request(tmp_path, tiny_recipe(tiny, _PHASE_CHAIN)), command=WORKER_COMMAND, env=env)
    events: list[Any] = []
    reader = threading.Thread(target=lambda: [events.append(e) for e in worker.events()], daemon=True)
    reader.start()
    if pause:
        _wait_for(marker.exists, f"the worker to pause at {pause}")
    else:
        _wait_for(lambda: any(isinstance(e, p.Curve) and e.index == 2 for e in events), "a training curve point")
    os.kill(worker.pid, signal.SIGKILL)
    outcome = worker.wait()
    reader.join(timeout=30)
    assert outcome.status == "crashed" and outcome.signal_name == "SIGKILL" and outcome.resumable
    run_id = outcome.run_id
    assert run_id is not None
    db = tmp_path / "w.sqlite"
    assert mark_interrupted_runs(open_store(db)) == [run_id]
    before = _snapshot(db, run_id)
    assert len(before) == finished
    run_folder = tmp_path / "artifacts" / f"run-{run_id:05d}"
    if phase == "saving":  # proof the kill came mid-save: weights written, no manifest, not renamed
        (partial,) = run_folder.glob("003-*.partial")
        assert (partial / "model.safetensors").is_file() and not (partial / "manifest.json").exists()
    if phase == "evaluating":  # saved whole but never recorded: must be redone, not taken as a result
        (saved,) = run_folder.glob("001-*")
        assert (saved / "manifest.json").is_file()

    result = run_recipe(None, db_url_or_path=db, resume_run=run_id)
    assert isinstance(result, p.RunFinished), result
    run = get_run(open_store(db), run_id)
    assert run.status == "finished" and run.attempts == 2 and run.variants == 4
    after = _snapshot(db, run_id)
    assert after[:finished] == before  # finished variants kept as they were: rows, metrics, weights
    assert [v[1] for v in after] == ["baseline", "test.scale", "finetune", "test.scale"]
    _whole_and_clean(db, run_id)


def _sitecustomize(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python processes (the CLI and its worker) register the test steps."""
    root = Path(__file__).resolve().parents[2]
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.path.insert(0, {str(root)!r})\nimport tests.core.fakes\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root)])}


@pytest.mark.slow
def test_kill_9_of_the_cli_leaves_the_run_resumable(tiny: Path, tmp_path: Path) -> None:
    """The worker notices its client is gone (end of stdin), stops at the next safe point and leaves
    the run resumable, even while its step keeps printing to the dead pipes."""
    import subprocess
    import sys

    from core.run.runner import run_recipe
    from core.store.record import pid_alive, process_start

    release = tmp_path / "release"
    chain = [{"step": "test.scale", "config": {"factor": 0.5}},
             {"step": "test.slow", "config": {"seconds": 300, "release_file": str(release), "chatter_every": 0.1}},
             {"step": "test.scale", "config": {"factor": 2.0}}]
    path = tmp_path / "recipe.yaml"
    save_recipe(Recipe.from_dict(tiny_recipe(tiny, chain)), path)
    db = tmp_path / "w.sqlite"
    cli = subprocess.Popen([sys.executable, "-m", "core.cli", "run", str(path), "--db", str(db)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_sitecustomize(tmp_path))
    assert cli.stderr is not None
    for line in cli.stderr:  # one line per step when stderr is not a terminal
        if "test.slow ..." in line:
            break
    else:
        raise AssertionError(f"the CLI ended early: {cli.wait()}")
    (run,) = list_runs(open_store(db))
    started = process_start(run.pid)  # type: ignore[arg-type]
    assert run.status == "running" and pid_alive(run.pid, started, None)
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    _wait_for(lambda: not pid_alive(run.pid, started, None), "the orphaned worker to stop", timeout=60)
    run = get_run(open_store(db), run.id)
    assert run.status == "cancelled", (run.status, run.error)  # resumable, not failed by a broken pipe
    before = _snapshot(db, run.id)
    assert [v[1] for v in before] == ["baseline", "test.scale"]

    release.touch()
    result = run_recipe(None, db_url_or_path=db, resume_run=run.id)
    assert isinstance(result, p.RunFinished), result
    after = _snapshot(db, run.id)
    assert after[:2] == before and len(after) == 4
    _whole_and_clean(db, run.id)
