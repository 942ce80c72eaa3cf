"""The worker process and its client: a clean JSON-lines event stream despite stray prints, the
baseline + step variants committed, the cache, cancel, and the escalation to terminate/kill."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from core import protocol as p
from core.protocol import decode
from core.run.process import WorkerProcess, run_worker
from core.store import list_runs, open_store, run_variants
from tests.core.fakes import WORKER_COMMAND, tiny_recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _request(tmp_path: Path, recipe: dict[str, Any], **extra: Any) -> p.RunRequest:
    return p.RunRequest(recipe=recipe, db=str(tmp_path / "w.sqlite"), artifacts=str(tmp_path / "artifacts"), **extra)


def test_worker_runs_a_recipe_and_keeps_the_event_stream_clean(tiny: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": 0.5}},
                                {"step": "test.slow", "config": {"seconds": 0.2, "chatter": True}}])
    events: list[Any] = []
    stderr: list[str] = []
    outcome = run_worker(_request(tmp_path, recipe), on_event=events.append, command=WORKER_COMMAND,
                         on_stderr=stderr.append)
    assert outcome.ok, outcome.message()
    assert outcome.exit_code == 0 and outcome.status == "finished"
    assert isinstance(events[0], p.RunStarted) and isinstance(events[-1], p.RunFinished)
    # Every stdout line decoded: an unreadable one would have become a warning Log.
    assert not [e for e in events if isinstance(e, p.Log) and "unreadable worker output" in e.message]
    finished = [e for e in events if isinstance(e, p.StepFinished)]
    assert [e.index for e in finished] == [0, 1, 2]
    assert any(isinstance(e, p.Progress) for e in events)
    # Each finished variant arrives with its results row: the window shows it without a query.
    row = finished[1].row
    assert row["variant"] == finished[1].variant_id and row["metric_name"] == "accuracy"
    assert row["size_mb"] > 0 and row["latency_p50_ms"] > 0 and row["params"] > 0
    # The tiny model's fresh head was never trained: flagged, and no yardstick for "% of reference".
    assert finished[0].row["flags"][0]["code"] == "untrained_head" and finished[0].row["pct_baseline"] is None
    # The step's print() and raw write to fd 1 went to stderr, not into the events.
    assert any("stray print from a step" in line for line in stderr)
    assert any("stray bytes on fd 1" in line for line in stderr)

    store = open_store(tmp_path / "w.sqlite")
    (run,) = list_runs(store)
    assert run.status == "finished" and run.id == outcome.run_id
    variants = run_variants(store, run.id)
    assert [v.step_id for v in variants] == ["baseline", "test.scale", "test.slow"]
    assert all(Path(v.artifact_path, "manifest.json").is_file() for v in variants)


def _run_here(tmp_path: Path, recipe: dict[str, Any], events: list[Any] | None = None) -> Any:
    """The runner in this process (the worker adds only the process boundary, tested above)."""
    from core.run.runner import run_recipe

    sink = events if events is not None else []
    return run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "artifacts",
                      emit=sink.append)


def _finished(events: list[Any]) -> list[p.StepFinished]:
    return [e for e in events if isinstance(e, p.StepFinished)]


def test_rerun_reuses_the_cache_and_a_changed_step_recomputes(tiny: Path, tmp_path: Path) -> None:
    chain = [{"step": "test.scale", "config": {"factor": 0.5}}, {"step": "test.scale", "config": {"factor": 2.0}}]
    first = _run_here(tmp_path, tiny_recipe(tiny, chain))
    assert isinstance(first, p.RunFinished), first
    chain[1]["config"]["factor"] = 3.0
    events: list[Any] = []
    second = _run_here(tmp_path, tiny_recipe(tiny, chain), events)
    assert isinstance(second, p.RunFinished), second
    cached = [e.cached for e in _finished(events)]
    assert cached == [True, True, False]
    store = open_store(tmp_path / "w.sqlite")
    old, new = run_variants(store, first.run_id), run_variants(store, second.run_id)
    assert [v.cached for v in new] == [True, True, False]
    assert new[1].cached_from_id == old[1].id and new[1].artifact_path == old[1].artifact_path
    assert new[1].metrics == old[1].metrics
    assert new[2].artifact_path != old[2].artifact_path
    # A different seed is a different experiment: nothing is reused.
    events.clear()
    third = _run_here(tmp_path, {**tiny_recipe(tiny, chain), "seed": 1}, events)
    assert isinstance(third, p.RunFinished)
    assert [e.cached for e in _finished(events)] == [False, False, False]


def test_cached_prefix_gives_the_same_model_as_recomputing(tiny: Path, tmp_path: Path) -> None:
    """Reuse loads the stored artifact; the next step on it must equal a cold run of the whole chain."""
    from core.artifacts import load_artifact

    chain = [{"step": "test.scale", "config": {"factor": 0.5}}]
    assert isinstance(_run_here(tmp_path / "a", tiny_recipe(tiny, chain)), p.RunFinished)
    longer = [*chain, {"step": "test.scale", "config": {"factor": 3.0}}]
    warm = _run_here(tmp_path / "a", tiny_recipe(tiny, longer))
    cold = _run_here(tmp_path / "b", tiny_recipe(tiny, longer))
    warm_v = run_variants(open_store(tmp_path / "a" / "w.sqlite"), warm.run_id)[-1]
    cold_v = run_variants(open_store(tmp_path / "b" / "w.sqlite"), cold.run_id)[-1]
    a = load_artifact(Path(warm_v.artifact_path)).model.state_dict()
    b = load_artifact(Path(cold_v.artifact_path)).model.state_dict()
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_sweep_runs_the_shared_prefix_once(tiny: Path, tmp_path: Path) -> None:
    chain = [{"step": "test.scale", "config": {"factor": 0.5}}, {"step": "test.scale", "config": {"factor": [1.5, 2.0]}}]
    events: list[Any] = []
    outcome = _run_here(tmp_path, tiny_recipe(tiny, chain), events)
    assert isinstance(outcome, p.RunFinished), outcome
    store = open_store(tmp_path / "w.sqlite")
    variants = run_variants(store, outcome.run_id)
    assert [v.label for v in variants] == ["baseline", "test.scale", "test.scale(factor=1.5)", "test.scale(factor=2.0)"]
    assert variants[2].parent_id == variants[1].id and variants[3].parent_id == variants[1].id
    assert events[0].variants == 4
    assert variants[2].config["factor"] == 1.5 and variants[3].config["factor"] == 2.0
    # Swept values are stored as values (not only in the label) and reach rows and events alike.
    assert [v.swept for v in variants] == [{}, {}, {"factor": 1.5}, {"factor": 2.0}]
    assert [e.row["swept"] for e in _finished(events)] == [{}, {}, {"factor": 1.5}, {"factor": 2.0}]


def test_sibling_branches_never_start_from_a_model_a_sibling_changed(tiny: Path, tmp_path: Path) -> None:
    """test.scale (like quantize.linear_nbit) changes its input in place: the second branch of a sweep
    must still start from its parent as saved, and equal the same chain run without a sweep."""
    from core.artifacts import load_artifact

    swept = _run_here(tmp_path / "a", tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": 0.5}},
                                                          {"step": "test.scale", "config": {"factor": [2.0, 3.0]}}]))
    single = _run_here(tmp_path / "b", tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": 0.5}},
                                                           {"step": "test.scale", "config": {"factor": 3.0}}]))
    first = run_variants(open_store(tmp_path / "a" / "w.sqlite"), swept.run_id)[-1]
    second = run_variants(open_store(tmp_path / "b" / "w.sqlite"), single.run_id)[-1]
    assert first.label == "test.scale(factor=3.0)"
    a = load_artifact(Path(first.artifact_path)).model.state_dict()
    b = load_artifact(Path(second.artifact_path)).model.state_dict()
    assert all((a[k] == b[k]).all() for k in a)


def test_a_branch_cached_before_the_sweep_fix_is_made_again(tiny: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Before 0d659fc every branch of a sweep got its parent's model in memory, so a step that changes its
    input in place (test.scale, quantize.linear_nbit) fed the next branch its own output. Those cached
    variants must not be served today: the key says how a step's input was made (STEP_INPUT_VERSION)."""
    from core.artifacts import load_artifact
    from core.run import keys
    from core.run.runner import Runner

    def visit_before_the_fix(self: Any, node: Any, parent: Any, key: str, state: Any) -> bool:
        done, new_state = self.produce(node, parent, key, state)
        for child in node.children:
            self.visit(child, done, self.child_key(key, child.step), new_state)
        return False

    chain = [{"step": "test.scale", "config": {"factor": 0.5}}, {"step": "test.scale", "config": {"factor": [2.0, 3.0]}}]
    with monkeypatch.context() as old:
        old.setattr(Runner, "visit", visit_before_the_fix)
        old.setattr(keys, "STEP_INPUT_VERSION", getattr(keys, "STEP_INPUT_VERSION", 2) - 1, raising=False)
        _run_here(tmp_path / "a", tiny_recipe(tiny, chain))
    db = open_store(tmp_path / "a" / "w.sqlite")
    stale = run_variants(db, 1)[-1]
    assert stale.label == "test.scale(factor=3.0)"  # 2.0 then 3.0 on one model: the stale entry is wrong
    again = run_variants(db, _run_here(tmp_path / "a", tiny_recipe(tiny, chain)).run_id)[-1]
    single = _run_here(tmp_path / "b", tiny_recipe(tiny, [chain[0], {"step": "test.scale", "config": {"factor": 3.0}}]))
    right = run_variants(open_store(tmp_path / "b" / "w.sqlite"), single.run_id)[-1]
    a = load_artifact(Path(again.artifact_path)).model.state_dict()
    b = load_artifact(Path(right.artifact_path)).model.state_dict()
    s = load_artifact(Path(stale.artifact_path)).model.state_dict()
    assert not all((s[k] == b[k]).all() for k in s)  # the old runner really made a different model
    assert again.cached_from_id is None
    assert all((a[k] == b[k]).all() for k in a)


def test_distillation_gets_a_separate_teacher_and_step_failures_are_recorded(tiny: Path, tmp_path: Path) -> None:
    ok = _run_here(tmp_path, tiny_recipe(tiny, [{"step": "test.train"}, {"step": "test.distil"}]))
    assert isinstance(ok, p.RunFinished), ok
    (_, _, distil) = run_variants(open_store(tmp_path / "w.sqlite"), ok.run_id)
    from core.store.db import open_store as _open

    with _open(tmp_path / "w.sqlite").read() as session:
        from core.store import schema

        assert '"teacher_layers": 2' in session.get(schema.Variant, distil.id).info
    events: list[Any] = []
    bad = _run_here(tmp_path, tiny_recipe(tiny, [{"step": "test.fail", "config": {"message": "kaput"}}]), events)
    assert isinstance(bad, p.RunFailed) and "kaput" in bad.error
    assert events[-1] == bad and bad.index == 1
    (run,) = [r for r in list_runs(open_store(tmp_path / "w.sqlite")) if r.id == bad.run_id]
    assert run.status == "failed" and "kaput" in (run.error or "") and run.variants == 1


def test_bad_request_fails_cleanly(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(WORKER_COMMAND, input="not json\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stdout.splitlines()
    event = decode(line)
    assert isinstance(event, p.RunFailed) and "Bad request" in event.error


def test_invalid_recipe_fails_before_a_run_is_recorded(tiny: Path, tmp_path: Path) -> None:
    events: list[Any] = []
    recipe = tiny_recipe(tiny, [{"step": "no.such.step"}])
    outcome = run_worker(_request(tmp_path, recipe), on_event=events.append, command=WORKER_COMMAND)
    assert outcome.exit_code == 1 and outcome.status == "failed" and outcome.run_id is None
    assert "unknown step 'no.such.step'" in outcome.message()
    assert list_runs(open_store(tmp_path / "w.sqlite")) == []


def test_cancel_message_stops_the_run_at_a_safe_point(tiny: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": 60, "chatter": False}}])
    cancel = threading.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, p.StepStarted) and event.step == "test.slow":
            cancel.set()

    outcome = run_worker(_request(tmp_path, recipe), on_event=on_event, cancel=cancel, command=WORKER_COMMAND,
                         terminate_after=30)
    assert outcome.status == "cancelled" and outcome.exit_code == 3 and outcome.signal_name == ""
    store = open_store(tmp_path / "w.sqlite")
    (run,) = list_runs(store)
    assert run.status == "cancelled" and run.variants == 1  # the baseline was kept


def test_cancel_escalates_to_terminate_then_kill() -> None:
    stubborn = [sys.executable, "-c",
                "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " sys.stdin.readline(); print('ready', flush=True); time.sleep(60)"]
    worker = WorkerProcess(p.RunRequest(), command=stubborn, terminate_after=0.3, kill_after=0.3)
    stream = worker.events()
    first = next(stream)  # 'ready' is not a protocol line: reported, not crashing the client
    assert isinstance(first, p.Log) and "unreadable worker output" in first.message
    worker.cancel()
    outcome = worker.wait()
    assert worker.escalated == "kill" and outcome.signal_name == "SIGKILL"
    assert outcome.status == "cancelled"  # the user asked: a kill on the way is no crash
    assert "cancelled" in outcome.message()


def test_terminate_marks_the_run_interrupted(tiny: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": 60, "chatter": False}}])
    worker = WorkerProcess(_request(tmp_path, recipe), command=WORKER_COMMAND)
    for event in worker.events():
        if isinstance(event, p.StepStarted) and event.step == "test.slow":
            worker.proc.terminate()
    outcome = worker.wait()
    assert outcome.exit_code == 4 and outcome.status == "cancelled" and outcome.resumable
    (run,) = list_runs(open_store(tmp_path / "w.sqlite"))
    assert run.status == "interrupted" and run.variants == 1


def test_cache_keys_are_the_same_in_every_process(tiny: Path) -> None:
    """Keys must not depend on the process (no object addresses), or a worker could never reuse."""
    import json
    import subprocess

    from core.recipe import Recipe
    from core.run.keys import cache_keys

    recipe = tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": [0.5, 2.0]}}, {"step": "test.train"}])
    here = cache_keys(Recipe.from_dict(recipe))
    code = ("import json, sys; import tests.core.fakes; from core.recipe import Recipe;"
            " from core.run.keys import cache_keys; print(json.dumps(cache_keys(Recipe.from_dict(json.loads(sys.argv[1])))))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, json.dumps(recipe)], capture_output=True, text=True, check=True,
                         cwd=root)
    assert json.loads(out.stdout) == here
    assert len(set(here)) == len(here) == 5
    other = cache_keys(Recipe.from_dict({**recipe, "seed": 1}))
    assert not set(other) & set(here)


def test_the_first_task_s_data_is_in_the_finetune_key(tiny: Path, tmp_path: Path) -> None:
    """``first_on_task`` trains on another task's rows: a change to them makes the variant again."""
    import dataclasses

    from core.recipe import Recipe
    from core.run.keys import cache_keys
    from core.tasks import get_task, register_task

    def keys_for(task: str, config: dict[str, str]) -> list[str]:
        return cache_keys(Recipe.from_dict({**tiny_recipe(tiny, [{"step": "finetune", "config": config}]), "task": task}))

    qnli, qnli_file = get_task("qnli"), tmp_path / "qnli.tsv"
    register_task(dataclasses.replace(qnli, data_files=(qnli_file,)), replace=True)  # QNLI's rows read from this file
    try:
        qnli_file.write_text("one version of the rows")
        before = {(t, c): keys_for(t, {"first_on_task": c}) for t in ("rte", "sst2") for c in ("auto", "none")}
        qnli_file.write_text("another version of the rows")
        after = {(t, c): keys_for(t, {"first_on_task": c}) for t in ("rte", "sst2") for c in ("auto", "none")}
    finally:
        register_task(qnli, replace=True)
    assert after[("rte", "auto")][0] == before[("rte", "auto")][0]  # the baseline does not read QNLI
    assert after[("rte", "auto")][1] != before[("rte", "auto")][1]  # auto: QNLI before RTE
    assert after[("rte", "none")] == before[("rte", "none")]
    assert after[("sst2", "auto")] == before[("sst2", "auto")]  # auto: nothing before SST-2


def test_a_model_named_by_a_step_field_is_in_its_key_by_content(tiny: Path, tmp_path: Path) -> None:
    """Retraining the masked-LM model into the same folder makes the augmented variant again."""
    from core.recipe import Recipe
    from core.run.keys import cache_keys

    mlm = tmp_path / "mlm"
    mlm.mkdir()
    recipe = Recipe.from_dict(tiny_recipe(tiny, [{"step": "augment.tinybert", "config": {"mlm_model": str(mlm)}}]))
    (mlm / "model.safetensors").write_bytes(b"weights, first training")
    first = cache_keys(recipe)
    assert cache_keys(recipe) == first
    (mlm / "model.safetensors").write_bytes(b"weights, second training")
    second = cache_keys(recipe)
    assert second[0] == first[0] and second[1] != first[1]


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_a_background_request_lowers_the_worker_priority_so_the_window_keeps_the_cpu(tiny: Path, tmp_path: Path) -> None:
    from core.run.worker import BACKGROUND_NICENESS

    recipe = tiny_recipe(tiny, [{"step": "test.slow", "config": {"seconds": 30, "release_file": str(tmp_path / "go")}}])
    seen: dict[str, int] = {}
    for background in (False, True):
        worker = WorkerProcess(_request(tmp_path, recipe, background=background), command=WORKER_COMMAND)
        for event in worker.events():
            if isinstance(event, p.StepStarted) and event.index == 1:
                seen[str(background)] = os.getpriority(os.PRIO_PROCESS, worker.pid)
                (tmp_path / "go").touch()
        (tmp_path / "go").unlink()
        assert worker.wait().exit_code == 0
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert seen == {"False": mine, "True": min(mine + BACKGROUND_NICENESS, 19)}


def test_a_chain_with_the_torchao_int8_backend_runs_and_is_measured(tiny: Path, tmp_path: Path) -> None:
    outcome = _run_here(tmp_path, tiny_recipe(tiny, [{"step": "quantize.dynamic_int8", "config": {"backend": "torchao"}}]))
    assert isinstance(outcome, p.RunFinished), outcome
    store = open_store(tmp_path / "w.sqlite")
    base, q = run_variants(store, outcome.run_id)
    assert q.artifact_bytes < 0.5 * base.artifact_bytes  # int8 weights and embeddings on disk
    assert q.metrics["latency_p50"] > 0 and q.metrics["params"] > 0 and "accuracy" in q.metrics


def test_training_curves_stream_as_events_and_stay_with_the_variant(tiny: Path, tmp_path: Path) -> None:
    from core.store import variant_info

    events: list[Any] = []
    outcome = _run_here(tmp_path, tiny_recipe(tiny, [{"step": "finetune", "config": {
        "epochs": 1.0, "train_size": 80, "batch_size": 8, "max_length": 16,
        "early_stopping": False}}]), events)  # every step runs: 80 rows / 8 = 10 steps
    assert isinstance(outcome, p.RunFinished), outcome
    curves = [e for e in events if isinstance(e, p.Curve)]
    losses = [(e.step, e.value) for e in curves if e.series == "loss"]
    assert [s for s, _ in losses] == list(range(1, 11)) and all(v > 0 for _, v in losses)
    lrs = [e.value for e in curves if e.series == "lr"]
    assert lrs[0] < max(lrs) and lrs[-1] < lrs[1] / 5  # warm-up, then linear decay towards zero
    (_, tuned) = run_variants(open_store(tmp_path / "w.sqlite"), outcome.run_id)
    stored = variant_info(open_store(tmp_path / "w.sqlite"), tuned.id)["curves"]
    assert stored == {"Training": {"loss": [list(x) for x in losses], "lr": [[e.step, e.value] for e in curves
                                                                              if e.series == "lr"]}}
