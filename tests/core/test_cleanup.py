"""Clean-up (issue 16): a run leaves only its variants' folders, and a folder that is not a whole
saved variant is never taken for one. Killed steps at every phase are in test_faults.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import protocol as p
from core.run.runner import run_recipe
from core.store import list_runs, open_store, run_variants
from tests.core.fakes import tiny_recipe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _run(tiny: Path, tmp_path: Path, chain: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
    events: list[Any] = []
    result = run_recipe(tiny_recipe(tiny, chain), db_url_or_path=tmp_path / "w.sqlite",
                        artifacts_dir=tmp_path / "artifacts", emit=events.append)
    return result, events


def _run_folder(tmp_path: Path) -> Path:
    (run,) = [r for r in list_runs(open_store(tmp_path / "w.sqlite"))][:1]
    return tmp_path / "artifacts" / f"run-{run.id:05d}"


@pytest.mark.parametrize("last", ["test.slow", "test.fail"])
def test_a_run_leaves_only_its_variant_folders(tiny: Path, tmp_path: Path, last: str) -> None:
    """Finished or failed, no scratch/ folder and no .partial folder stays behind."""
    chain = [{"step": "test.scale", "config": {"factor": [0.5, 2.0]}},
             {"step": last, "config": {"seconds": 0.1, "chatter": False} if last == "test.slow" else {}}]
    result, _ = _run(tiny, tmp_path, chain)
    assert isinstance(result, p.RunFinished if last == "test.slow" else p.RunFailed)
    folder = _run_folder(tmp_path)
    variants = run_variants(open_store(tmp_path / "w.sqlite"), int(folder.name.removeprefix("run-")))
    assert sorted(x.name for x in folder.iterdir()) == sorted(Path(v.artifact_path).name for v in variants)
    assert len(variants) == (5 if last == "test.slow" else 2)  # depth first: the failure stops the walk
    assert not list(tmp_path.rglob("scratch")) and not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize("damage", ["weights deleted", "weights truncated", "manifest deleted"])
def test_a_cached_variant_whose_folder_is_not_whole_is_recomputed(tiny: Path, tmp_path: Path, damage: str) -> None:
    """A folder missing its weights (an interrupted deletion, a hand-edited folder) is not a result."""
    chain = [{"step": "test.scale", "config": {"factor": 0.5}}, {"step": "test.scale", "config": {"factor": 2.0}}]
    first, _ = _run(tiny, tmp_path, chain)
    assert isinstance(first, p.RunFinished)
    store = open_store(tmp_path / "w.sqlite")
    scaled = Path(run_variants(store, first.run_id)[1].artifact_path)
    if damage == "weights deleted":
        (scaled / "model.safetensors").unlink()
    elif damage == "weights truncated":
        weights = scaled / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-64])
    else:
        (scaled / "manifest.json").unlink()
    second, events = _run(tiny, tmp_path, chain)
    assert isinstance(second, p.RunFinished), second
    cached = [e.cached for e in events if isinstance(e, p.StepFinished)]
    assert cached == [True, False, True]  # the damaged variant is redone; its child's folder is whole
    from core.artifacts import is_complete_artifact

    assert all(is_complete_artifact(Path(v.artifact_path)) for v in run_variants(store, second.run_id))


def test_resuming_a_run_whose_finished_variant_lost_its_folder_makes_it_again(tiny: Path, tmp_path: Path) -> None:
    import shutil

    recipe = tiny_recipe(tiny, [{"step": "test.scale", "config": {"factor": 0.5}},
                                {"step": "test.fail", "config": {"message": "kaput"}}])
    first = run_recipe(recipe, db_url_or_path=tmp_path / "w.sqlite", artifacts_dir=tmp_path / "a")
    assert isinstance(first, p.RunFailed)
    store = open_store(tmp_path / "w.sqlite")
    _, scaled = run_variants(store, first.run_id)
    shutil.rmtree(scaled.artifact_path)  # deleted by hand between the failure and the resume
    events: list[Any] = []
    again = run_recipe(None, db_url_or_path=tmp_path / "w.sqlite", resume_run=first.run_id, emit=events.append)
    assert isinstance(again, p.RunFailed) and "kaput" in again.error  # it got past the lost variant
    assert any(isinstance(e, p.Log) and "is gone or damaged; making it again" in e.message for e in events)
    remade = run_variants(store, first.run_id)[-1]
    assert remade.step_id == "test.scale" and Path(remade.artifact_path, "manifest.json").is_file()
