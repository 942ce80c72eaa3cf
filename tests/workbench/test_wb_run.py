"""Runs through the real worker process (`python -m core.run.worker`) on a tiny model: the table and
charts update, cancel stops the run, a killed worker is reported and the run can be resumed."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from core import protocol as p
from core.recipe import Chain, ChainEntry, MeasureSettings, Recipe

MEASURE = {"eval_limit": 32, "eval_batch_size": 16, "max_length": 32, "latency_batch_size": 2,
           "latency_seq_len": 16, "latency_warmup": 1, "latency_repeats": 3, "threads": 1}
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import tiny_bert_folder  # torch here is the test process, not the GUI's

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny"))


def _doc(tiny: Path, amounts: list[float] | float = 0.3) -> Recipe:
    return Recipe(model=str(tiny), task="sst2", measure=MeasureSettings(**MEASURE), chain=Chain((
        ChainEntry.default("prune.global_magnitude").with_value("amount", amounts),
        ChainEntry.default("quantize.dynamic_int8"),
    )))


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(str(a[2])))
    return shown


def test_two_step_chain_runs_in_the_worker_and_fills_table_and_charts(window, qtbot, tiny, warnings) -> None:
    window.set_document(_doc(tiny))
    assert window.validate() == []
    live: list[dict] = []
    window.run_panel.rowAdded.connect(live.append)
    with qtbot.waitSignal(window.run_panel.runFinished, timeout=TIMEOUT_MS) as finished:
        assert not window.act_cancel.isEnabled()  # nothing to cancel yet
        window.run_panel.run_button.click()
        assert window.run_panel.is_running() and not window.run_panel.run_button.isEnabled()
        assert not window.act_run.isEnabled() and window.act_cancel.isEnabled()  # the toolbar agrees
    outcome = finished.args[0]
    assert outcome.ok, outcome.message()
    assert warnings == []
    assert window.act_run.isEnabled() and not window.act_cancel.isEnabled()
    # Each variant reached the table as its worker event arrived, with the row the store computes.
    assert [r["label"] for r in live] == ["baseline", "prune.global_magnitude", "quantize.dynamic_int8"]
    # Every variant row came back (queried off the GUI thread): baseline, pruned, pruned+int8.
    results = window.results
    qtbot.waitUntil(lambda: not results.loading and results.model.rowCount() == 3, timeout=30_000)
    assert results.model.rowCount() == 3
    labels = [r["label"] for r in results.rows]
    assert labels == ["baseline", "prune.global_magnitude", "quantize.dynamic_int8"]
    int8 = results.rows[2]
    assert int8["size_mb"] < results.rows[0]["size_mb"] and int8["pct_smaller"] > 0
    assert results.rows[1]["nonzero_params"] < results.rows[0]["nonzero_params"]
    assert live == results.rows  # the rows from events are the rows from the database
    assert results.rows[0]["metric_name"] == "accuracy" and results.rows[0]["pct_baseline"] is None  # untrained head
    assert [f["code"] for f in results.rows[0]["flags"]] == ["untrained_head"]
    # Progress rows all finished; the log saw metrics.
    assert [r.bar.value() for r in window.run_panel.rows.values()] == [1000, 1000, 1000]
    assert "accuracy" in window.run_panel.log.toPlainText()
    # Charts: shown on the Results tab, the scatter holds the 3 variants, the baseline is starred.
    window.tabs.setCurrentWidget(results)
    qtbot.waitUntil(lambda: results._charts is not None, timeout=5000)
    charts = results.charts
    points, front = charts.scatter._groups[("sst2", "accuracy")]
    assert len(points.data) == 3
    baseline = charts.scatter.baseline
    assert len(baseline.data) == 1 and baseline.data[0]["x"] == pytest.approx(results.rows[0]["size_mb"])
    # No step trains the packaged model's fresh head: every variant is at chance, crossed out, on no front.
    assert front.getData()[0] is None or len(front.getData()[0]) == 0
    assert len(charts.scatter.untrusted.data) == 3
    assert all("untrained_head" in [f["code"] for f in r["flags"]] for r in results.rows)
    # Sorting by MB on disk puts the int8 variant first.
    results.table.sortByColumn(7, Qt.SortOrder.AscendingOrder)
    assert "quantize.dynamic_int8" in results.proxy.index(0, 2).data()
    # Filter
    results.filter_edit.setText("int8")
    results._apply_filter()
    assert results.proxy.rowCount() == 1
    results.filter_edit.setText("")
    results._apply_filter()
    # Two selected variants: side-by-side comparison.
    assert results.wait_loaded()
    from PySide6.QtCore import QItemSelectionModel

    # Through the selection model (QTableView.selectRow depends on the keyboard modifier state,
    # which earlier key-click tests can leave behind on the offscreen platform).
    flags = QItemSelectionModel.SelectionFlag
    results.table.selectionModel().select(results.proxy.index(0, 0), flags.ClearAndSelect | flags.Rows)
    results.table.selectionModel().select(results.proxy.index(2, 0), flags.Select | flags.Rows)
    def compared() -> None:
        assert results.compare.columnCount() == 2 and not results.compare.isHidden(), (
            results.proxy.rowCount(), len(results.table.selectionModel().selectedRows()), results.isVisible(),
            results.loading)

    qtbot.waitUntil(compared, timeout=5000)
    # Exports: the store's exporter, the same text the CLI writes.
    out = Path(os.environ["WORKBENCH_HOME"])
    for fmt, ext in (("csv", "csv"), ("markdown", "md"), ("latex", "tex")):
        assert results.export_table_to(fmt, out / f"t.{ext}")
    csv_text = (out / "t.csv").read_text()
    assert csv_text.splitlines()[0].startswith("run,variant,parent,step,label")
    assert len(csv_text.splitlines()) == 4
    assert "\\toprule" in (out / "t.tex").read_text()
    for ext in ("png", "svg"):
        charts.export("scatter", out / f"scatter.{ext}")
        assert (out / f"scatter.{ext}").stat().st_size > 1000
    assert (out / "scatter.svg").read_text().lstrip().startswith("<?xml")
    # The same chain now says how long a run of it takes, by this run's own times.
    qtbot.waitUntil(lambda: "by earlier runs here" in window.chain_status.text(), timeout=10_000)
    assert window.chain_status.text().startswith("2 steps ready to run · 3 variants · about ")
    assert "3 of 3 variants" in window.chain_status.toolTip()


def test_cancel_stops_the_run_and_keeps_the_window_usable(window, qtbot, tiny, warnings) -> None:
    window.set_document(_doc(tiny, [0.1, 0.2, 0.3, 0.4]))
    panel = window.run_panel
    # A polite cancel waits for the step in flight; on this shared machine that can take a while,
    # so the terminate escalation is pushed out of the way here.
    panel.client.terminate_after_ms = 120_000
    with qtbot.waitSignal(panel.client.event, timeout=TIMEOUT_MS,
                          check_params_cb=lambda m: isinstance(m, p.StepStarted)):
        window.run()
    with qtbot.waitSignal(panel.runFinished, timeout=TIMEOUT_MS) as finished:
        window.act_cancel.trigger()
        assert panel.status.text() == "Cancelling…"
    outcome = finished.args[0]
    assert outcome.status == "cancelled", outcome.message()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert "cancelled" in panel.status.text()
    assert warnings == []  # a cancel is not an error
    from workbench import store_client

    (run,) = store_client.list_runs(window.settings.db_path())
    assert run["status"] == "cancelled"
    # "the run can be resumed", and the window offers it (it was offered only after a restart)
    assert "can be resumed" in panel.status.text()
    qtbot.waitUntil(lambda: not panel.resume_button.isHidden(), timeout=30_000)
    assert panel.resume_button.property("run_id") == outcome.run_id
    window.chain.add_step("quantize.dynamic_int8")  # still editable
    assert window.chain.rowCount() == 3


def test_killed_worker_is_reported_and_the_run_resumes(window, qtbot, tiny, warnings) -> None:
    window.set_document(_doc(tiny))
    panel = window.run_panel
    with qtbot.waitSignal(panel.client.event, timeout=TIMEOUT_MS,
                          check_params_cb=lambda m: isinstance(m, p.StepFinished)):
        window.run()
    with qtbot.waitSignal(panel.runFinished, timeout=30_000) as finished:
        os.kill(panel.client.pid(), signal.SIGKILL)  # like the kernel's OOM killer
    outcome = finished.args[0]
    assert outcome.status == "crashed" and outcome.signal_name == "SIGKILL"
    assert "SIGKILL" in panel.status.text() and "ran out of memory" in panel.status.text()
    assert len(warnings) == 1 and "stopped by SIGKILL" in warnings[0]
    assert panel.run_button.isEnabled()
    # The run is found interrupted (its worker is gone) and offered for resume.
    qtbot.waitUntil(lambda: not panel.resume_button.isHidden(), timeout=30_000)
    run_id = panel.resume_button.property("run_id")
    assert run_id == outcome.run_id
    with qtbot.waitSignal(panel.runFinished, timeout=TIMEOUT_MS) as resumed:
        panel.resume_button.click()
    assert resumed.args[0].ok, resumed.args[0].message()
    assert resumed.args[0].run_id == run_id
    qtbot.waitUntil(lambda: not window.results.loading and len(window.results.rows) >= 3, timeout=30_000)
    rows = [r for r in window.results.rows if r["run"] == run_id]
    # Every step of the chain has its variant in the resumed run.
    assert [r["step"] for r in rows] == [0, 1, 2], [(r["variant"], r["step"], r["cached"]) for r in rows]
    assert "already finished in this run" in panel.log.toPlainText()  # the baseline is reused, not redone


def test_resume_is_not_offered_while_another_run_runs(window, monkeypatch) -> None:
    """One run at a time: a Resume button left visible during a new run did nothing when clicked; it is
    hidden while a run runs, and its tip says it resumes the run's own recipe, not the editor's."""
    monkeypatch.setattr(window.results, "interrupted_run", lambda: 2)
    window._check_interrupted()
    button = window.run_panel.resume_button
    assert not button.isHidden() and "with the recipe it was started with" in button.toolTip()
    window.run_panel.busyChanged.emit(True)
    assert button.isHidden()


def test_a_custom_data_file_runs_from_the_window(window, qtbot, tiny, warnings, tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\n" + "".join(f"{'a good film' if i % 2 else 'a bad movie'},{i % 2}\n"
                                               for i in range(30)))
    window.set_document(Recipe(model=str(tiny), task="sst2", measure=MeasureSettings(**MEASURE),
                               chain=Chain((ChainEntry.default("prune.global_magnitude"),))))
    window.set_custom_data({"name": "reviews", "path": str(path), "text": "review", "text_pair": None,
                            "label": "stars", "kind": "classification"})
    assert window.validate() == []
    with qtbot.waitSignal(window.run_panel.runFinished, timeout=TIMEOUT_MS) as finished:
        window.run()
    assert finished.args[0].ok, finished.args[0].message()
    qtbot.waitUntil(lambda: not window.results.loading and any(r["task"] == "custom:reviews"
                                                                for r in window.results.rows), timeout=30_000)
    rows = [r for r in window.results.rows if r["task"] == "custom:reviews"]
    assert [r["label"] for r in rows] == ["baseline", "prune.global_magnitude"]
    assert all(r["metric_name"] == "accuracy" and 0 <= r["metric"] <= 1 for r in rows)
    assert warnings == []


def test_closing_during_a_run_asks_once_and_cancel_keeps_run_and_window(window, qtbot, tiny, warnings,
                                                                          monkeypatch) -> None:
    """Major 4: the worker was killed before the unsaved-changes question, whose Cancel then left
    the window open with its run dead, reported as 'stopped by SIGKILL (out of memory)'."""
    asked: list[str] = []
    answer = {"button": QMessageBox.StandardButton.Cancel}

    def exec_box(box) -> int:  # type: ignore[no-untyped-def]
        asked.append(box.text())
        box.button(answer["button"]).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_box)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(str(a[2])) or answer["button"])
    # Long enough to be still running at the second close: on an idle machine the tiny run finished first.
    doc = _doc(tiny, [0.1, 0.2, 0.3, 0.4])
    window.set_document(dataclasses.replace(doc, measure=dataclasses.replace(doc.measure, latency_repeats=3000)))
    panel = window.run_panel
    with qtbot.waitSignal(panel.client.event, timeout=TIMEOUT_MS,
                          check_params_cb=lambda m: isinstance(m, p.StepStarted)):
        window.run()
    window.chain.add_step("quantize.dynamic_int8")  # unsaved changes on top of the run
    window.close()
    assert len(asked) == 1, asked  # one question for both
    assert "is in progress" in asked[0] and "unsaved changes" in asked[0]
    assert window.isVisible() and panel.is_running()  # Cancel: nothing stopped, nothing lost
    assert not window.undo.isClean()
    # Discard and close: the worker is stopped, and that is reported as the user's stop.
    asked.clear()
    answer["button"] = QMessageBox.StandardButton.Discard
    with qtbot.waitSignal(panel.runFinished, timeout=30_000) as finished:
        window.close()
    assert len(asked) == 1 and not window.isVisible()
    outcome = finished.args[0]
    assert outcome.status == "cancelled", outcome.message()
    assert "SIGKILL" not in panel.status.text() and "memory" not in panel.status.text()
    assert warnings == []
    from workbench import store_client

    (run,) = store_client.list_runs(window.settings.db_path())
    assert run["status"] == "interrupted"  # the worker marked it itself: resumable, never left 'running'
    assert run["id"] == outcome.run_id


def test_a_worker_killed_on_close_leaves_its_run_interrupted_not_running(window, qtbot, tiny, monkeypatch) -> None:
    """On a starved machine the worker may not handle SIGTERM within the grace period and is killed
    before it marks its run; the window marks it as it closes, so the run is resumable at once."""
    asked: list[str] = []

    def discard(box) -> int:  # type: ignore[no-untyped-def]
        asked.append(box.text())
        box.button(QMessageBox.StandardButton.Discard).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", discard)
    window.set_document(_doc(tiny, [0.1, 0.2, 0.3, 0.4]))
    panel = window.run_panel
    with qtbot.waitSignal(panel.client.event, timeout=TIMEOUT_MS,
                          check_params_cb=lambda m: isinstance(m, p.StepStarted)):
        window.run()
    window.chain.add_step("quantize.dynamic_int8")  # unsaved changes: the question offers Discard
    monkeypatch.setattr(panel.client, "stop", panel.client.kill)  # SIGKILL at once: the worker marks nothing
    with qtbot.waitSignal(panel.runFinished, timeout=30_000):
        window.close()
    assert len(asked) == 1 and not window.isVisible()
    from workbench import store_client

    (run,) = store_client.list_runs(window.settings.db_path())
    assert run["status"] == "interrupted"
