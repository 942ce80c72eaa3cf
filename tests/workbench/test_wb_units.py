"""Pure helpers of the workbench, checked against references."""

from __future__ import annotations

import random
import sys

import pytest


def _dominated(i: int, pts: list[tuple[float, float]]) -> bool:
    x, y = pts[i]
    return any((a <= x and b >= y) and (a < x or b > y) for j, (a, b) in enumerate(pts) if j != i)


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_brute_force_dominance(seed: int) -> None:
    from core.store.pareto import pareto_front

    rng = random.Random(seed)
    pts = [(round(rng.uniform(1, 100), 1), round(rng.uniform(0.5, 0.95), 3)) for _ in range(200)]
    expected = {i for i in range(len(pts)) if not _dominated(i, pts)}
    got = pareto_front(pts)
    assert {pts[i] for i in got} == {pts[i] for i in expected}
    xs = [pts[i][0] for i in got]
    assert xs == sorted(xs)  # drawn left to right


def test_parse_values_refuses_non_numbers() -> None:
    from core.errors import ConfigError
    from workbench.step_editor import parse_values

    assert parse_values("1, 2;3", "int") == [1, 2, 3]
    assert parse_values("0.5, 1e-3", "float") == [0.5, 0.001]
    with pytest.raises(ConfigError, match="'1.5' is not an integer"):
        parse_values("1, 1.5", "int")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python 3.12+: nothing to guard")
def test_void_qt_calls_no_longer_run_none_down() -> None:
    """PySide6 6.12 + CPython 3.11 lose a None reference per void call; the guard neutralises it."""
    from PySide6.QtCore import QObject

    from workbench._refcount_guard import guard_none_refcount, leaks_none

    leaked = leaks_none()
    assert guard_none_refcount() == leaked  # applied exactly when the binding has the bug
    obj = QObject()
    for _ in range(1000):
        obj.setObjectName("x")
    if leaked:  # a whole session's worth of void calls can no longer reach zero
        assert sys.getrefcount(None) > 2**39
        assert sys.getrefcount(True) > 2**39 and sys.getrefcount(False) > 2**39  # pyqtgraph items lose bools


def test_warm_up_runs_the_queries_and_leaves_no_database_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from workbench import store_client

    queried: list[Path] = []
    real = store_client.results
    monkeypatch.setattr(store_client, "results", lambda db: queried.append(Path(db)) or real(db))
    before = dict(store_client._STORES)
    store_client.warm_up()
    (scratch,) = queried
    assert before == store_client._STORES  # the scratch store was closed and forgotten
    assert not scratch.parent.exists()  # and its folder removed


def test_closing_the_results_view_while_its_query_runs_is_quiet(qtbot, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    import shiboken6
    from PySide6.QtCore import QThreadPool

    from workbench import results
    from workbench.settings import Settings

    started, release = threading.Event(), threading.Event()

    def slow_results(db, run_ids=None):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(10)
        return [], None

    monkeypatch.setattr(results.store_client, "results", slow_results)
    view = results.ResultsView(Settings(tmp_path / "s.ini"))
    view.refresh()
    assert started.wait(10)
    shiboken6.delete(view)  # the window closes while the query is in flight
    release.set()
    assert QThreadPool.globalInstance().waitForDone(10_000)
    # pytest-qt fails the test if the pool thread raised ("Signal source has been deleted")


def test_where_to_run_dialog_saves_a_checked_setting_and_gives_the_request_fields(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.protocol import RunRequest
    from workbench.execution import ExecutionDialog, describe, request_fields
    from workbench.settings import Settings

    settings = Settings(tmp_path / "s.ini")
    assert request_fields(settings, "/art") == {"artifacts": "/art"} and describe(settings) == "on this machine"
    dialog = ExecutionDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.local.isChecked() and not dialog.address.isEnabled()
    dialog.cluster.setChecked(True)
    dialog.address.setText("head-node")  # no port: refused, named, nothing saved
    dialog.accept()
    assert "give 'auto' or the head's HOST:PORT" in dialog.problem.text() and request_fields(settings, "/a") == {"artifacts": "/a"}
    dialog.address.setText("10.0.0.5:6379")
    dialog.shared.setText("relative/dir")
    dialog.accept()
    assert "absolute path" in dialog.problem.text()
    dialog.shared.setText("/mnt/shared/wb")
    dialog.accept()
    fields = request_fields(settings, "/art")
    assert fields == {"artifacts": "/mnt/shared/wb", "ray": "10.0.0.5:6379", "shared_artifacts": True}
    request = RunRequest(recipe=None, db="/db", resume_run=1, **fields)
    assert request.ray == "10.0.0.5:6379" and describe(settings) == "sweep branches on the Ray cluster 10.0.0.5:6379"
    again = ExecutionDialog(settings)  # reopened: shows what was saved
    qtbot.addWidget(again)
    assert again.cluster.isChecked() and again.address.text() == "10.0.0.5:6379"
    again.local.setChecked(True)
    again.accept()
    assert request_fields(settings, "/art") == {"artifacts": "/art"}


def test_a_run_s_title_tells_runs_of_one_recipe_apart() -> None:
    """The run filter listed "Run 2: packaged:all-MiniLM-L6-v2 · sst2" for every run of the same recipe,
    with no date and no sign that run 2 was cancelled."""
    import re

    from workbench.results import run_title

    cancelled = run_title(2, {"recipe_name": "SST-2 quick", "task": "sst2", "created_at": "2026-12-05T00:21:07",
                              "status": "cancelled", "tags": ["try"]})
    assert re.fullmatch(r"Run 2: SST-2 quick · sst2 · 2026-12-0[45] \d\d:\d\d · cancelled \[try\]", cancelled)
    finished = run_title(3, {"name": "mine", "task": "sst2", "created_at": "2026-12-05T00:30:00", "status": "finished"})
    assert re.fullmatch(r"Run 3: mine · sst2 · 2026-12-0[45] \d\d:\d\d", finished)
    assert run_title(4, None, {"model": "m", "task": "t"}) == "Run 4: m · t"
    assert run_title(5, {"task": "t", "created_at": "not a time"}) == "Run 5: t"
