"""Run management in the store and the CLI: labels, disk use, deleting a run with its artifacts
(refused while it runs), collecting orphan artifacts; and the schema-3 migration that adds labels."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from core.cli import main
from core.store import (
    StoreError,
    collect_garbage,
    delete_run,
    get_run,
    list_runs,
    open_store,
    result_rows,
    run_dependents,
    run_disk_usage,
    set_run_labels,
)
from core.store.db import Store
from core.store.record import MetricValue, RunIdentity, add_variant, create_run, finish_run


def _ident(seed: int) -> RunIdentity:
    return RunIdentity(model_ref="packaged:m", model_kind="packaged", model_hash="m" * 64, task="sst2",
                       data_hash="d" * 64, recipe_json=json.dumps({"seed": seed}), recipe_name="recipe",
                       seed=seed, primary_metric="accuracy")


def _artifact(folder: Path, nbytes: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * nbytes)
    (folder / "manifest.json").write_text("{}")
    return folder


def _run(store: Store, root: Path, seed: int, sizes: list[int], *, finish: bool = True,
         reuse: Path | None = None) -> tuple[int, list[int]]:
    """A run with one variant folder per size; ``reuse`` makes its last variant a cached copy of that folder."""
    ctx = create_run(store, _ident(seed), root)
    ids, parent = [], None
    for i, nbytes in enumerate(sizes):
        folder = reuse if reuse is not None and i == len(sizes) - 1 else _artifact(
            ctx.artifacts_dir / f"{i:03d}-step", nbytes)
        parent = add_variant(store, run_id=ctx.run_id, parent_id=parent, step_index=i, step_id="s", label=f"v{i}",
                             config={}, cache_key=f"k{seed}-{i}", metrics=[MetricValue("accuracy", 0.5, "", "dev")],
                             artifact_path=folder, artifact_bytes=nbytes, seconds=1.0)
        ids.append(parent)
    if finish:
        finish_run(store, ctx.run_id, "finished")
    return ctx.run_id, ids


def _bytes(nbytes: int) -> int:
    return nbytes + 2  # the manifest's "{}"


def test_runs_get_a_name_tags_and_a_note(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    run_id, _ = _run(store, tmp_path / "artifacts", 0, [10])
    assert (get_run(store, run_id).name, get_run(store, run_id).tags) == ("", ())
    assert get_run(store, run_id).title == "recipe"  # the recipe's name until the user names the run
    set_run_labels(store, run_id, name="  first   try ", tags="int8, small,int8, ", note="kept for the paper\n")
    run = get_run(store, run_id)
    assert (run.name, run.tags, run.note, run.title) == ("first try", ("int8", "small"), "kept for the paper",
                                                         "first try")
    set_run_labels(store, run_id, note="")  # None leaves the others as they are
    assert get_run(store, run_id).tags == ("int8", "small") and get_run(store, run_id).note == ""
    assert list_runs(store)[0].to_dict()["tags"] == ["int8", "small"]
    with pytest.raises(StoreError, match="longer than 40 characters"):
        set_run_labels(store, run_id, tags=["x" * 41])
    with pytest.raises(StoreError, match="No run 99"):
        set_run_labels(store, 99, name="n")


def test_disk_use_counts_each_runs_own_folder(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    first, _ = _run(store, tmp_path / "artifacts", 0, [1000, 500])
    reused = Path(store.path.parent / "artifacts" / f"run-{first:05d}" / "001-step")
    second, _ = _run(store, tmp_path / "artifacts", 1, [300, 0], reuse=reused)  # its 2nd variant is a cached copy
    assert run_disk_usage(store) == {first: _bytes(1000) + _bytes(500), second: _bytes(300)}
    assert run_disk_usage(store, [second]) == {second: _bytes(300)}


def test_deleting_a_run_removes_its_rows_and_folder_and_is_refused_while_it_runs(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    keep, _ = _run(store, tmp_path / "artifacts", 0, [100])
    running, _ = _run(store, tmp_path / "artifacts", 1, [200, 300], finish=False)  # this process is its worker
    folder = Path(get_run(store, running).artifacts_dir)
    with pytest.raises(StoreError, match=f"Run {running} is running .*cancel it or let it finish"):
        delete_run(store, running)
    assert folder.is_dir() and get_run(store, running).variants == 2  # nothing touched
    finish_run(store, running, "cancelled")
    report = delete_run(store, running)
    assert (report.variants, report.bytes_freed, report.dependents) == (2, _bytes(200) + _bytes(300), ())
    assert not folder.exists()
    assert [r.id for r in list_runs(store)] == [keep]
    assert {r.run for r in result_rows(store)} == {keep}
    with sqlite3.connect(store.path) as conn:  # metrics and artifact rows went with their variants
        assert conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 1
    with pytest.raises(StoreError, match=f"No run {running}"):
        delete_run(store, running)


def test_deleting_a_run_whose_variants_other_runs_reused_needs_force(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    first, _ = _run(store, tmp_path / "artifacts", 0, [100, 50])
    shared = Path(get_run(store, first).artifacts_dir) / "001-step"
    second, second_ids = _run(store, tmp_path / "artifacts", 1, [100, 0], reuse=shared)
    assert run_dependents(store, first) == [second] and run_dependents(store, second) == []
    with pytest.raises(StoreError, match=f"Runs {second} reused variants of run {first}.*--force"):
        delete_run(store, first)
    assert shared.is_dir()
    report = delete_run(store, first, force=True)
    assert report.dependents == (second,) and not shared.exists()
    rows = result_rows(store, run_ids=[second])
    assert [r.variant for r in rows] == second_ids and rows[1].metric == 0.5  # the numbers stay


def test_garbage_collection_removes_only_what_no_run_refers_to(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = open_store(tmp_path / "w.sqlite")
    done, _ = _run(store, root, 0, [100])
    running, _ = _run(store, root, 1, [100], finish=False)
    done_dir, running_dir = (Path(get_run(store, r).artifacts_dir) for r in (done, running))
    killed_step = _artifact(done_dir / "001-step-killed", 400)  # saved, never recorded
    (done_dir / "scratch" / "001").mkdir(parents=True)  # an old empty scratch folder
    in_flight = _artifact(running_dir / "001-step-saving", 50)  # the running run's next artifact
    orphan = _artifact(root / "run-00099" / "000-baseline", 70)  # a run folder whose run is gone
    _artifact(root / "not-ours", 10)  # the user's own folder beside ours
    dry = collect_garbage(store, dry_run=True)
    assert sorted(dry.removed) == sorted(map(str, [killed_step, done_dir / "scratch", orphan.parent]))
    assert dry.bytes_freed == _bytes(400) + _bytes(70) and killed_step.exists() and orphan.exists()
    report = collect_garbage(store)
    assert report.removed == dry.removed and report.skipped_running == [running]
    assert not killed_step.exists() and not (done_dir / "scratch").exists() and not orphan.parent.exists()
    assert in_flight.exists() and (root / "not-ours").exists()
    assert (done_dir / "000-step").is_dir()  # a recorded artifact stays
    assert collect_garbage(store).removed == []  # nothing left to collect


def test_a_schema_4_database_gains_run_labels(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    store = open_store(path)
    run_id, _ = _run(store, tmp_path / "artifacts", 0, [10])
    store.close()
    with sqlite3.connect(path) as conn:  # as a schema-4 workbench wrote it
        conn.execute("ALTER TABLE variants DROP COLUMN environment_id")  # schema 6's
        for column in ("name", "tags", "note"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        conn.execute("PRAGMA user_version=4")
    store = open_store(path)
    run = get_run(store, run_id)
    assert (run.name, run.tags, run.note, run.variants) == ("", (), "", 1)
    set_run_labels(store, run_id, name="migrated", tags=["old"])
    assert get_run(store, run_id).tags == ("old",)
    assert (tmp_path / "w.sqlite.v4.bak").is_file()


def test_cli_lists_disk_use_labels_deletes_and_collects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "w.sqlite"
    store = open_store(db)
    first, _ = _run(store, tmp_path / "artifacts", 0, [1_500_000])
    running, _ = _run(store, tmp_path / "artifacts", 1, [500_000], finish=False)
    _artifact(tmp_path / "artifacts" / "run-00042" / "000-baseline", 250_000)
    assert main(["label", str(first), "--name", "baseline check", "--tags", "a,b", "--db", str(db)]) == 0
    assert "name 'baseline check', tags [a, b]" in capsys.readouterr().out
    assert main(["runs", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert "disk_mb" in header and "tags" in header
    assert "1.5" in lines[2] and "baseline check" in lines[2] and "a,b" in lines[2]  # newest first: run 2 above
    assert lines[-1] == "2.0 MB of artifacts in 2 run(s)"
    assert main(["delete", str(running), "--db", str(db)]) == 2
    assert f"Run {running} is running" in capsys.readouterr().err
    assert main(["gc", "--dry-run", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "run-00042" in out and f"running run(s) {running}" in out
    assert (tmp_path / "artifacts" / "run-00042").exists()
    assert main(["gc", "--db", str(db)]) == 0
    assert "removed 1 item(s), 0.3 MB" in capsys.readouterr().out
    assert not (tmp_path / "artifacts" / "run-00042").exists()
    assert main(["delete", str(first), "--db", str(db)]) == 0
    assert "deleted with 1 variant(s); 1.5 MB freed" in capsys.readouterr().out
    assert [r.id for r in list_runs(open_store(db))] == [running]
