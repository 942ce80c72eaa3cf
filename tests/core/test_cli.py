"""workbench-cli end to end: run a recipe through the worker, then list, show, compare and export;
user errors are one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.recipe import Recipe, save_recipe
from core.run import session
from tests.core.fakes import WORKER_COMMAND, tiny_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def finished_db(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run through `workbench-cli run` (one worker process), shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("cli")
    recipe = Recipe.from_dict(tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": [0.5, 2.0]}}],
                                          name="cli test"))
    save_recipe(recipe, folder / "recipe.yaml")
    mp = pytest.MonkeyPatch()
    mp.setattr(session, "worker_command", lambda: WORKER_COMMAND)
    try:
        code = main(["run", str(folder / "recipe.yaml"), "--db", str(folder / "w.sqlite")])
    finally:
        mp.undo()
    assert code == 0
    return folder / "w.sqlite"


def test_run_records_variants_and_artifacts_beside_the_db(finished_db: Path) -> None:
    from core.store import list_runs, open_store, run_variants

    (run,) = list_runs(open_store(finished_db))
    assert run.status == "finished" and run.variants == 3 and run.recipe_name == "cli test"
    for v in run_variants(open_store(finished_db), run.id):
        assert Path(v.artifact_path).parent.parent == finished_db.parent / "artifacts"


def test_runs_show_and_compare(finished_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", str(finished_db)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["run", "status", "task"]
    assert "finished" in out and "sst2" in out
    assert main(["show", "1", "--db", str(finished_db)]) == 0
    out = capsys.readouterr().out
    assert "run 1: finished" in out and "test.scale(factor=2.0)" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("variant "))
    base = lines[lines.index(header) + 1]
    assert "[95% CI]" in header and "flags" in header
    assert base.split()[:2] == ["1", "baseline"] and "untrained head" in base and "[" in base  # value [low, high]
    assert "measured on 8 dev examples; latency batch 2 x seq 8, 1 thread(s), 2 repeats" in out
    assert "variant 1: untrained head: the task head was never trained" in out
    assert main(["compare", "2", "3", "--format", "json", "--db", str(finished_db)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in data["rows"]] == [2, 3]
    assert data["rows"][0]["label"] == "test.scale(factor=0.5)"


@pytest.mark.parametrize("fmt", ["csv", "markdown", "latex", "json"])
def test_export_writes_the_same_table_as_the_store(finished_db: Path, tmp_path: Path, fmt: str) -> None:
    from core.store import export_table, open_store, results_table

    out = tmp_path / f"table.{fmt}"
    assert main(["export", "--format", fmt, "--run", "1", "-o", str(out), "--db", str(finished_db)]) == 0
    text = out.read_text()
    assert text == export_table(results_table(open_store(finished_db), run_ids=[1]), fmt)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["label"] for r in rows] == ["baseline", "test.scale(factor=0.5)", "test.scale(factor=2.0)"]
        assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)


def test_steps_tasks_and_validate(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["steps"]) == 0
    assert "test.scale" in capsys.readouterr().out
    assert main(["tasks"]) == 0
    assert "sst2" in capsys.readouterr().out
    bad = Recipe.from_dict(tiny_recipe(tiny, [{"step": "test.freeze"}, {"step": "test.train"},
                                              {"step": "test.scale", "config": {"factor": -1.0}}]))
    save_recipe(bad, tmp_path / "bad.json")
    assert main(["validate", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "step 2 (test.train)" in err[0] and "step 3 (test.scale), field 'factor'" in err[1]


def test_user_errors_are_one_line_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "w.sqlite"
    assert main(["show", "999", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No results database" in err
    from core.store import open_store

    open_store(db).close()
    assert main(["show", "999", "--db", str(db)]) == 2
    assert "No run 999" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml"), "--db", str(db)]) == 2
    assert "Cannot read recipe" in capsys.readouterr().err


def test_console_script_module_runs_without_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"definitely not sqlite" * 100)
    proc = subprocess.run([sys.executable, "-m", "core.cli", "runs", "--db", str(garbage)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("workbench-cli: error: ") and "Traceback" not in proc.stderr
    assert str(garbage) in proc.stderr


def test_evaluate_prints_the_task_metric(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tiny), "--task", "sst2", "--limit", "8", "--batch-size", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["examples"] == 8 and 0.0 <= data["accuracy"] <= 1.0 and data["task"] == "sst2"
