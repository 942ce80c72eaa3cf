"""The results database: setup pragmas, refusing files it cannot read (left byte-identical),
migrations, concurrent writers in separate processes, and the query/export functions."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

import core.store.db as db
from core.store import (
    SCHEMA_VERSION,
    StoreError,
    export_table,
    get_run,
    get_variants,
    list_runs,
    mark_interrupted_runs,
    open_store,
    result_rows,
    results_table,
    run_variants,
    variant_metrics,
    variants_of_model,
)
from core.store.record import MetricValue, RunIdentity, add_variant, create_run, finish_run

ROOT = Path(__file__).resolve().parents[2]


def _ident(model: str = "packaged:all-MiniLM-L6-v2", seed: int = 0) -> RunIdentity:
    return RunIdentity(model_ref=model, model_kind="packaged", model_hash="m" * 64, task="sst2", data_hash="d" * 64,
                       recipe_json=json.dumps({"seed": seed}), recipe_name="test", seed=seed,
                       primary_metric="accuracy", environment={"cpu": "test"})


def _metrics(acc: float, nbytes: int, p50: float) -> list[MetricValue]:
    return [
        MetricValue("accuracy", acc, "", "dev"),
        MetricValue("params", 1000.0, "count"),
        MetricValue("nonzero_params", 700.0, "count"),
        MetricValue("artifact_bytes", float(nbytes), "bytes"),
        MetricValue("latency_p50", p50, "ms"),
        MetricValue("latency_p90", p50 * 1.2, "ms"),
    ]


def _fill(store: db.Store, tmp: Path) -> tuple[int, list[int]]:
    ctx = create_run(store, _ident(), tmp / "artifacts")
    ids: list[int] = []
    parent = None
    for i, (acc, nbytes, p50) in enumerate([(0.90, 4000, 10.0), (0.88, 2000, 8.0), (0.85, 1000, 5.0)]):
        vid = add_variant(store, run_id=ctx.run_id, parent_id=parent, step_index=i, step_id="baseline" if i == 0 else "s",
                          label=f"v{i}", config={"i": i}, cache_key=f"k{i}", metrics=_metrics(acc, nbytes, p50),
                          artifact_path=tmp / f"a{i}", artifact_bytes=nbytes, seconds=1.0)
        ids.append(vid)
        parent = vid
    finish_run(store, ctx.run_id, "finished")
    return ctx.run_id, ids


def test_new_database_has_schema_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.sqlite"
    store = open_store(path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA user_version").scalar() == SCHEMA_VERSION
    store.close()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"models", "datasets", "recipes", "runs", "variants", "metrics", "artifacts", "environments"} <= tables


def test_default_location_follows_workbench_home_and_db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.paths import default_artifacts, default_db

    assert default_db() == Path(os.environ["WORKBENCH_HOME"]) / "workbench.sqlite"
    monkeypatch.setenv("WORKBENCH_DB", str(tmp_path / "x.sqlite"))
    assert default_db() == tmp_path / "x.sqlite"
    assert default_artifacts() == tmp_path / "artifacts"
    assert default_db(tmp_path / "flag.sqlite") == tmp_path / "flag.sqlite"


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    with pytest.raises(Exception, match="FOREIGN KEY"):
        add_variant(store, run_id=999, parent_id=None, step_index=0, step_id="baseline", label="x", config={},
                    cache_key="k", metrics=[], artifact_path=tmp_path, artifact_bytes=0, seconds=0.0)


def _refused(path: Path, needle: str) -> None:
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        open_store(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert path.read_bytes() == before
    assert not Path(str(path) + "-wal").exists()


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    open_store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    _refused(path, "newer workbench")


def test_corrupt_files_are_refused_and_left_untouched(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(os.urandom(8192))
    _refused(garbage, "not a workbench results database")

    damaged = tmp_path / "damaged.sqlite"
    open_store(damaged).close()
    with sqlite3.connect(damaged) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    data = bytearray(damaged.read_bytes())
    data[100:] = os.urandom(len(data) - 100)  # keep the header, destroy the pages
    damaged.write_bytes(bytes(data))
    _refused(damaged, "damaged")

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    _refused(other, "not a workbench one")


def test_older_schema_is_migrated_after_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.sqlite"
    store = open_store(path)
    _fill(store, tmp_path)
    store.close()

    def add_notes(conn: object) -> None:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN extra TEXT")  # type: ignore[attr-defined]

    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(db.MIGRATIONS, SCHEMA_VERSION + 1, add_notes)
    store = open_store(path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA user_version").scalar() == SCHEMA_VERSION + 1
        columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(runs)")}
    assert "extra" in columns
    assert len(list_runs(store)) == 1  # data kept
    store.close()
    backup = tmp_path / f"w.sqlite.v{SCHEMA_VERSION}.bak"
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_the_backup_holds_what_only_the_wal_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the main file alone would miss the last commits: they sit in the -wal while any
    connection keeps the database open (here one that never checkpoints)."""
    path = tmp_path / "w.sqlite"
    store = open_store(path)
    _fill(store, tmp_path)
    store.close()
    with closing(sqlite3.connect(path)) as holder:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        with holder:
            holder.execute("UPDATE runs SET name = 'only in the wal'")
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 0
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)) as main_file_only:
            assert main_file_only.execute("SELECT name FROM runs").fetchall() != [("only in the wal",)]

        monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
        monkeypatch.setitem(db.MIGRATIONS, SCHEMA_VERSION + 1, lambda conn: None)
        open_store(path).close()
    with closing(sqlite3.connect(tmp_path / f"w.sqlite.v{SCHEMA_VERSION}.bak")) as backup:
        assert backup.execute("SELECT name FROM runs").fetchall() == [("only in the wal",)]


def test_two_processes_writing_at_once_never_see_database_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    open_store(path).close()
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from core.store import open_store
        from core.store.record import RunIdentity, MetricValue, create_run, add_variant, finish_run
        store = open_store({str(path)!r})
        for i in range(40):
            ident = RunIdentity("m", "local", "h", "sst2", "d", json.dumps({{"i": i, "p": sys.argv[1]}}), "r", i, {{}})
            ctx = create_run(store, ident, Path({str(tmp_path)!r}))
            vid = add_variant(store, run_id=ctx.run_id, parent_id=None, step_index=0, step_id="baseline", label="b",
                              config={{}}, cache_key=f"{{sys.argv[1]}}{{i}}",
                              metrics=[MetricValue("accuracy", 0.5, "", "dev")] * 5,
                              artifact_path=Path("x"), artifact_bytes=1, seconds=0.0)
            finish_run(store, ctx.run_id, "finished")
        print("ok")
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, tag], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for tag in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
        assert out.strip() == "ok"
    store = open_store(path)
    runs = list_runs(store)
    assert len(runs) == 80 and {r.status for r in runs} == {"finished"}
    assert all(r.variants == 1 for r in runs)


def test_a_long_lived_store_sees_what_other_processes_commit_after_reopening_the_file(tmp_path: Path) -> None:
    """Opening a second store on the file in this process must not drop this process's SQLite locks: a writer
    exiting then thought it was the last user, deleted the -wal under our open connection, and every later
    read of the long-lived store returned that old snapshot (the window's sensitivity view showed no new map)."""
    path = tmp_path / "w.sqlite"
    long_lived = open_store(path)
    assert list_runs(long_lived) == []
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from core.store import open_store
        from core.store.record import RunIdentity, create_run
        with open_store({str(path)!r}) as store:
            create_run(store, RunIdentity("m", "local", "h", "sst2", "d", json.dumps({{"p": sys.argv[1]}}), "r", 0, {{}}),
                       Path({str(tmp_path)!r}))
        """
    )
    for writer in range(1, 4):
        open_store(path).close()  # e.g. a dialog reading the same database
        subprocess.run([sys.executable, "-c", script, str(writer)], check=True, timeout=120)
        assert len(list_runs(long_lived)) == writer
    long_lived.close()


def test_a_schema_1_database_gains_swept_values_and_primary_metric(tmp_path: Path) -> None:
    """Schema 2 keeps swept values as JSON; a v1 file's rows get them from their labels, once."""
    path = tmp_path / "w.sqlite"
    store = open_store(path)
    run_id, ids = _fill(store, tmp_path)
    store.close()
    _downgrade(path, 1)  # a schema-1 file, as an older workbench wrote it
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE variants SET label = 'prune.global_magnitude(amount=0.3, bits=8)' WHERE id = ?", (ids[2],))
        conn.execute("UPDATE variants SET flag = 'not smaller on disk: grew by 4 bytes' WHERE id = ?", (ids[1],))
    store = open_store(path)
    variants = run_variants(store, run_id)
    assert [v.swept for v in variants] == [{}, {}, {"amount": 0.3, "bits": 8}]
    assert get_run(store, run_id).primary_metric is None
    (row,) = result_rows(store, variant_ids=[ids[2]])
    assert row.metric_name == "accuracy" and row.swept == {"amount": 0.3, "bits": 8}  # falls back to the task metric
    assert (tmp_path / "w.sqlite.v1.bak").is_file()
    # Schema 3: the one size flag became a list of flags; the seed comes from the run.
    assert [v.flags for v in variants] == [[], [{"code": "not_smaller", "text": "not smaller on disk: grew by 4 bytes"}], []]
    assert {v.seed for v in variants} == {0}


def _downgrade(path: Path, version: int) -> None:
    """Rewrite a current database file as the given older schema wrote it."""
    with sqlite3.connect(path) as conn:
        if version < 6:
            conn.execute("ALTER TABLE variants DROP COLUMN environment_id")
        if version < 5:
            for column in ("name", "tags", "note"):
                conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        if version < 4:
            conn.execute("DROP TABLE sensitivity")
            conn.execute("DROP TABLE sensitivity_maps")
        if version < 3:
            conn.execute("ALTER TABLE variants ADD COLUMN flag TEXT")
            for column in ("flags", "seed", "node"):
                conn.execute(f"ALTER TABLE variants DROP COLUMN {column}")
            conn.execute("DROP TABLE predictions")
        if version < 2:
            conn.execute("ALTER TABLE variants DROP COLUMN swept")
            conn.execute("ALTER TABLE runs DROP COLUMN primary_metric")
        conn.execute(f"PRAGMA user_version={version}")


def test_a_schema_5_database_gets_each_variant_timed_on_its_runs_machine(tmp_path: Path) -> None:
    """Schema 6 records the machine of every variant; before it, a run's worker made them all: the
    migration gives them the fingerprint machine_fingerprint() gives on that machine."""
    from core.measure import machine_fingerprint
    from core.store.record import RunIdentity

    path = tmp_path / "w.sqlite"
    store = open_store(path)
    env = {**machine_fingerprint(), "threads": 2, "seed": 0, "workbench": "0.1.0"}
    del env["host"]
    ident = RunIdentity(model_ref="m", model_kind="local", model_hash="h", task="sst2", data_hash="d",
                        recipe_json="{}", recipe_name="", seed=0, primary_metric="accuracy", environment=env)
    ctx = create_run(store, ident, tmp_path / "artifacts")
    ids = [add_variant(store, run_id=ctx.run_id, parent_id=None, step_index=i, step_id="s", label=f"v{i}", config={},
                       cache_key=f"k{i}", metrics=_metrics(0.9, 100, 5.0), artifact_path=tmp_path / f"a{i}",
                       artifact_bytes=100, seconds=1.0) for i in range(2)]
    store.close()
    _downgrade(path, 5)
    store = open_store(path)
    variants = run_variants(store, ctx.run_id)
    here = machine_fingerprint()
    from core.store.record import sha256_text

    assert {v.machine for v in variants} == {sha256_text(json.dumps(here, sort_keys=True))}
    assert variants[0].machine_label.startswith(here["host"])
    assert [v.id for v in variants] == ids
    assert (tmp_path / "w.sqlite.v5.bak").is_file()


def test_latencies_from_two_machines_are_flagged_and_retiming_clears_the_flag(tmp_path: Path) -> None:
    from core.store import variant_info
    from core.store.record import replace_latency

    here = {"host": "desk", "cpu_model": "Slow CPU", "cores": 2}
    there = {"host": "node-7", "cpu_model": "Fast CPU", "cores": 64}
    store = open_store(tmp_path / "w.sqlite")
    ctx = create_run(store, _ident(), tmp_path / "artifacts")
    base = add_variant(store, run_id=ctx.run_id, parent_id=None, step_index=0, step_id="baseline", label="baseline",
                       config={}, cache_key="k0", metrics=_metrics(0.9, 4000, 10.0), artifact_path=tmp_path / "a0",
                       artifact_bytes=4000, seconds=1.0, machine=here)
    kids = [add_variant(store, run_id=ctx.run_id, parent_id=base, step_index=1, step_id="s", label=f"s{i}", config={},
                        cache_key=f"k{i}", metrics=_metrics(0.88, 2000, 4.0), artifact_path=tmp_path / f"a{i}",
                        artifact_bytes=2000, seconds=1.0, machine=machine) for i, machine in ((1, here), (2, there))]
    rows = result_rows(store, run_ids=[ctx.run_id])
    assert [r.flag_codes for r in rows] == [[], [], ["timed_elsewhere"]]
    assert "node-7 (Fast CPU, 64 cores)" in rows[2].flags[0]["text"] and "desk (Slow CPU" in rows[2].flags[0]["text"]
    assert [r.machine for r in rows] == ["desk (Slow CPU, 2 cores)"] * 2 + ["node-7 (Fast CPU, 64 cores)"]
    assert rows[2].speedup == pytest.approx(2.5)

    timed_again = [MetricValue("latency_p50", 8.0, "ms"), MetricValue("latency_p90", 9.0, "ms")]
    replace_latency(store, kids[1], timed_again, here, {"retimed": {"latency_p50": 4.0}})
    rows = result_rows(store, run_ids=[ctx.run_id])
    assert [r.flag_codes for r in rows] == [[], [], []]
    assert rows[2].latency_p50_ms == 8.0 and rows[2].latency_p90_ms == 9.0 and rows[2].speedup == pytest.approx(1.25)
    assert run_variants(store, ctx.run_id)[2].metrics["accuracy"] == pytest.approx(0.88)  # only latency replaced
    assert variant_info(store, kids[1])["retimed"] == {"latency_p50": 4.0}


def test_queries_return_plain_rows_with_metrics(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    run_id, ids = _fill(store, tmp_path)
    (run,) = list_runs(store)
    assert (run.id, run.status, run.variants, run.task, run.recipe_name) == (run_id, "finished", 3, "sst2", "test")
    assert get_run(store, run_id) == run
    assert list_runs(store, model="packaged:all-MiniLM-L6-v2") == [run]
    assert list_runs(store, model="other") == []
    variants = run_variants(store, run_id)
    assert [v.id for v in variants] == ids
    assert [v.parent_id for v in variants] == [None, ids[0], ids[1]]
    assert variants[1].metrics["accuracy"] == pytest.approx(0.88)
    assert variants[1].units["artifact_bytes"] == "bytes"
    assert variants[1].task_metrics == {"accuracy": pytest.approx(0.88)}
    assert variants[2].config == {"i": 2}
    assert [v.id for v in variants_of_model(store, "packaged:all-MiniLM-L6-v2")] == ids
    assert get_variants(store, [ids[2], ids[0]])[0].id == ids[0]
    metric_rows = variant_metrics(store, [ids[0]])[ids[0]]
    assert {m.name for m in metric_rows} >= {"accuracy", "latency_p50"}
    assert next(m for m in metric_rows if m.name == "accuracy").split == "dev"
    with pytest.raises(StoreError, match="No run 999"):
        get_run(store, 999)
    with pytest.raises(StoreError, match="No variant 999"):
        get_variants(store, [999])


def test_results_table_ratios_and_all_export_formats(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    run_id, ids = _fill(store, tmp_path)
    table = results_table(store, run_ids=[run_id])
    assert [r["variant"] for r in table.rows] == ids
    last = table.rows[2]
    assert last["size_ratio"] == pytest.approx(4000 / 1000)
    assert last["speedup"] == pytest.approx(10.0 / 5.0)
    assert last["size_mb"] == pytest.approx(1000 / 1e6)
    assert last["accuracy"] == pytest.approx(0.85)
    assert table.columns.index("accuracy") < table.columns.index("params")
    # The primary metric and "% of baseline" are computed once here, so every export has them.
    assert last["metric_name"] == "accuracy" and last["metric"] == pytest.approx(0.85)
    assert last["pct_baseline"] == pytest.approx(100 * 0.85 / 0.90)
    assert last["pct_smaller"] == pytest.approx(75.0) and table.units["pct_baseline"] == "%"
    # Comparing chosen variants still measures ratios against their run's baseline.
    picked = results_table(store, variant_ids=[ids[2]])
    assert picked.rows[0]["size_ratio"] == pytest.approx(4.0)

    rows = list(csv.DictReader(io.StringIO(export_table(table, "csv"))))
    assert [int(r["variant"]) for r in rows] == ids
    assert float(rows[2]["speedup"]) == pytest.approx(2.0)
    data = json.loads(export_table(table, "json"))
    assert data["columns"] == table.columns and data["rows"][2]["accuracy"] == pytest.approx(0.85)
    md = export_table(table, "markdown").splitlines()
    assert len(md) == 2 + 3 and md[0].startswith("| run | variant |") and "0.85" in md[4]
    tex = export_table(table, "latex")
    # Shrunk to the page when wider (a comparison has some 40 columns), numbers right-aligned, packages named.
    assert tex.splitlines()[0].startswith("% needs \\usepackage{booktabs,graphicx}")
    assert tex.splitlines()[1] == "\\noindent\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%"  # shrink only
    assert tex.rstrip().endswith("\\end{tabular}%\n}")
    align = tex.splitlines()[2].removeprefix("\\begin{tabular}{").removesuffix("}")
    assert len(align) == len(table.columns)
    assert align[table.columns.index("speedup")] == "r" and align[table.columns.index("label")] == "l"
    assert "size\\_ratio" in tex and "size_ratio" not in tex.replace("size\\_ratio", "")
    assert tex.count("\\\\") == 1 + 3
    with pytest.raises(StoreError, match="Unknown export format"):
        export_table(table, "xlsx")


def test_runs_with_a_dead_worker_become_interrupted(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.sqlite")
    alive = create_run(store, _ident(seed=1), tmp_path)  # owned by this (live) process
    dead = create_run(store, _ident(seed=2), tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with store.write() as session:
        from core.store import schema

        session.get(schema.Run, dead.run_id).pid = child.pid
    assert mark_interrupted_runs(store) == [dead.run_id]
    assert get_run(store, dead.run_id).status == "interrupted"
    assert get_run(store, alive.run_id).status == "running"


def test_only_failed_cancelled_or_interrupted_runs_can_be_resumed(tmp_path: Path) -> None:
    from core.store.record import claim_run_for_resume

    store = open_store(tmp_path / "w.sqlite")
    run_id, _ = _fill(store, tmp_path)
    with pytest.raises(StoreError, match=f"Run {run_id} is finished"):
        claim_run_for_resume(store, run_id, {})
    with pytest.raises(StoreError, match="No run 42"):
        claim_run_for_resume(store, 42, {})
    finish_run(store, run_id, "failed", "boom", "RuntimeError")
    ctx, recipe_json = claim_run_for_resume(store, run_id, {"cpu": "other"})
    run = get_run(store, run_id)
    assert (run.status, run.attempts, run.error, run.pid) == ("running", 2, None, os.getpid())
    assert json.loads(recipe_json) == {"seed": 0} and ctx.run_id == run_id


# --- read-only media, a lock held too long, refusals that create nothing -------------------------------

@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` and its files read-only for this process, as on read-only media. Permissions do not
    bind root, so as root the block runs with the effective uid/gid of 'nobody' (restored after)."""
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    root = os.geteuid() == 0
    try:
        if root:
            os.setegid(65534)
            os.seteuid(65534)
        yield
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
        for p, mode in modes.items():
            p.chmod(mode)


def _shared_folder() -> Path:
    """A folder an unprivileged uid can reach (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-ro-"))
    folder.chmod(0o755)
    return folder


def test_a_healthy_database_on_read_only_media_is_read_and_called_read_only(tmp_path: Path) -> None:
    folder = _shared_folder() / "media"
    folder.mkdir()
    path = folder / "w.sqlite"
    try:
        with open_store(path) as store:
            run_id, _ = _fill(store, tmp_path)
        before = path.read_bytes()
        with _read_only(folder):
            for create in (False, True):
                with open_store(path, create=create) as store:
                    assert store.read_only and "read-only" in store.read_only
                    (run,) = list_runs(store)
                    assert (run.id, run.variants) == (run_id, 3)
                    assert len(run_variants(store, run_id)) == 3
                    with pytest.raises(StoreError) as info:
                        create_run(store, _ident(seed=5), tmp_path)
                    message = str(info.value)
                    assert str(path) in message and "read-only" in message and "--db" in message
                    assert "damaged" not in message and "Restore a backup" not in message
        assert path.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["w.sqlite"]
    finally:
        shutil.rmtree(folder.parent)


def _hold_write_lock(path: Path) -> subprocess.Popen[str]:
    """Another process that takes the write lock of ``path`` and keeps it until its stdin closes."""
    script = textwrap.dedent(
        f"""
        import sqlite3, sys
        conn = sqlite3.connect({str(path)!r}, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _assert_lock_explained(message: str, path: Path, holder: subprocess.Popen[str]) -> None:
    assert str(path) in message and "locked" in message and "0.2 s" in message
    assert f"PID {holder.pid}" in message  # who holds it: /proc says so on Linux
    assert "Wait" in message and "--db" in message
    assert "sqlite:///" not in message and "OperationalError" not in message and "sqlalche.me" not in message


def test_a_write_lock_held_past_the_timeout_is_explained_in_words(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    open_store(path).close()
    holder = _hold_write_lock(path)
    try:
        store = open_store(path, busy_timeout_ms=200)
        list_runs(store)  # readers are not blocked (WAL)
        with pytest.raises(StoreError) as info:
            create_run(store, _ident(), tmp_path)
        _assert_lock_explained(str(info.value), path, holder)
        store.close()
    finally:
        holder.communicate("")
    with open_store(path, busy_timeout_ms=200) as store:  # once released, writing works again
        create_run(store, _ident(), tmp_path)


def test_a_new_database_locked_while_being_created_is_explained_in_words(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    holder = _hold_write_lock(path)  # creates the (empty) file and locks it
    try:
        with pytest.raises(StoreError) as info:
            open_store(path, busy_timeout_ms=200)
        _assert_lock_explained(str(info.value), path, holder)
    finally:
        holder.communicate("")


def test_a_new_database_locked_for_a_moment_while_being_created_waits_for_the_lock(tmp_path: Path) -> None:
    # SQLite refuses the switch to WAL at once (no busy handler) while another connection holds the
    # write lock of a new file: two runs starting together on one new database failed this way.
    path = tmp_path / "new.sqlite"
    holder = _hold_write_lock(path)
    release = threading.Timer(0.5, holder.communicate, args=("",))
    release.start()
    try:
        with open_store(path, busy_timeout_ms=20_000) as store:
            assert list_runs(store) == []
            create_run(store, _ident(), tmp_path)
        assert holder.poll() is not None  # it did wait for the holder to let go
    finally:
        release.join()


def _wal_database(path: Path) -> Path:
    """A workbench database as the workbench leaves it: WAL mode, no -wal/-shm once closed."""
    open_store(path).close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return path


def test_refusing_a_newer_or_damaged_wal_database_creates_nothing_beside_it(tmp_path: Path) -> None:
    newer = _wal_database(tmp_path / "newer" / "w.sqlite")
    with closing(sqlite3.connect(newer)) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    damaged = _wal_database(tmp_path / "damaged" / "w.sqlite")
    data = bytearray(damaged.read_bytes())
    data[100:] = os.urandom(len(data) - 100)  # the header (WAL mode included) stays, the pages are destroyed
    damaged.write_bytes(bytes(data))
    for path, needle in ((newer, "newer workbench"), (damaged, "damaged")):
        _refused(path, needle)
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no -wal, no -shm


def test_damage_seen_by_the_lock_free_read_is_confirmed_before_refusing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first look takes no lock; a writer that opened the file meanwhile can make pages look torn.
    Only a second, locking read decides that the file is damaged."""
    path = _wal_database(tmp_path / "w.sqlite")
    real = db._read_schema
    uris: list[str] = []

    def torn_once(p: Path, uri: str, timeout_s: float) -> tuple[int, set[str]]:
        uris.append(uri)
        if len(uris) == 1:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(p, uri, timeout_s)

    monkeypatch.setattr(db, "_read_schema", torn_once)
    open_store(path).close()
    assert "immutable=1" in uris[0] and "immutable" not in uris[1]


def test_a_schema_3_database_gains_the_sensitivity_tables(tmp_path: Path) -> None:
    """Schema 4 (issue 18): sensitivity maps and cells; the rows already there are untouched."""
    from core.store.analysis import (
        SensitivityCell,
        add_sensitivity_cell,
        create_sensitivity_map,
        sensitivity_maps,
    )

    path = tmp_path / "w.sqlite"
    store = open_store(path)
    run_id, ids = _fill(store, tmp_path)
    before = run_variants(store, run_id)
    store.close()
    _downgrade(path, 3)
    store = open_store(path)
    # untouched but for schema 6, which gives each variant its run's machine
    after = [dataclasses.replace(v, machine=None, machine_label=None) for v in run_variants(store, run_id)]
    assert after == before and (tmp_path / "w.sqlite.v3.bak").is_file()
    map_id = create_sensitivity_map(store, variant_id=ids[0], metric="accuracy", base_metric=0.9, examples=10, seed=0,
                                    grouping="layer", transforms=["nbit:4"], body={"parts": ["layer 0"]})
    add_sensitivity_cell(store, map_id, SensitivityCell("nbit:4", "layer 0", 0, 0.8, -0.1, -0.2, 0.0, 10, 0))
    (m,) = sensitivity_maps(store, ids[0])
    assert m.status == "running" and m.cells[0].delta == pytest.approx(-0.1)  # this process is alive
    store.close()


def test_a_speed_up_carries_bounds_from_both_p50_intervals_and_says_when_it_is_noise(tmp_path: Path) -> None:
    """A newcomer saw one model at 1.43x in one run and 7.22x in another, both bare numbers."""
    store = open_store(tmp_path / "w.sqlite")
    ctx = create_run(store, _ident(), tmp_path / "artifacts")

    def timed(p50: float, low: float, high: float) -> list[MetricValue]:
        return [*_metrics(0.9, 1000, p50), MetricValue("latency_p50_ci95_low", low, "ms"),
                MetricValue("latency_p50_ci95_high", high, "ms")]

    base = add_variant(store, run_id=ctx.run_id, parent_id=None, step_index=0, step_id="baseline", label="baseline",
                       config={}, cache_key="k0", metrics=timed(10.0, 9.0, 12.0), artifact_path=tmp_path / "a0",
                       artifact_bytes=1000, seconds=1.0)
    for i, (p50, low, high) in enumerate([(5.0, 4.5, 5.5), (9.0, 8.0, 11.0)], start=1):
        add_variant(store, run_id=ctx.run_id, parent_id=base, step_index=1, step_id="s", label=f"s{i}", config={},
                    cache_key=f"k{i}", metrics=timed(p50, low, high), artifact_path=tmp_path / f"a{i}",
                    artifact_bytes=1000, seconds=1.0)
    rows = result_rows(store, run_ids=[ctx.run_id])
    assert (rows[0].speedup_ci_low, rows[0].speedup_ci_high) == (None, None)  # the reference itself
    assert rows[1].speedup == pytest.approx(2.0)
    assert (rows[1].speedup_ci_low, rows[1].speedup_ci_high) == (pytest.approx(9.0 / 5.5), pytest.approx(12.0 / 4.5))
    assert rows[2].speedup_ci_low == pytest.approx(9.0 / 11.0) and rows[2].speedup_ci_low < 1.0 < rows[2].speedup_ci_high  # noise
    table = results_table(store, run_ids=[ctx.run_id])
    assert table.columns.index("speedup_ci_low") == table.columns.index("speedup") + 1
    assert table.rows[1]["speedup_ci_high"] == pytest.approx(12.0 / 4.5) and table.units["speedup_ci_low"] == "x"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: texlive-latex-recommended)")
def test_the_latex_export_compiles_and_a_wide_table_fits_the_line(tmp_path: Path) -> None:
    """The exported tabular, pasted into a document with the packages its comment names: no error,
    and a 40-column table shrunk to the line (no overfull box), a small one left at its size."""
    from core.store.queries import Table

    small = Table(columns=["label", "accuracy", "flag"], rows=[{"label": "a_b & c %", "accuracy": 0.85, "flag": True}])
    wide = Table(columns=[f"col_{i}" for i in range(40)], rows=[{f"col_{i}": 123456.789 for i in range(40)}])
    exported = export_table(small, "latex")
    tabular = "\n".join(line for line in exported.splitlines() if "tabular" in line or "rule" in line or "&" in line)
    # The small table in a box as exported and bare: the same width (never enlarged).
    measured = (f"\\setbox0\\hbox{{{exported.rstrip()}}}\\setbox1\\hbox{{{tabular.replace('tabular}%', 'tabular}')}}}"
                "\\typeout{WIDTHS \\the\\wd0 \\space\\the\\wd1}\n")
    body = measured + exported + "\n" + export_table(wide, "latex")
    (tmp_path / "t.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
                                    + body + "\\end{document}\n", encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = (tmp_path / "t.log").read_text(encoding="latin-1")
    assert done.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log
    boxed, bare = (float(w.removesuffix("pt")) for w in log.split("WIDTHS ", 1)[1].split()[:2])
    assert abs(boxed - bare) < 0.05 and bare > 50, (boxed, bare)  # graphicx's scale factor rounds at 1e-5
