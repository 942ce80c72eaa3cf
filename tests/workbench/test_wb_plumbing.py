"""Shared window plumbing. workbench.background: results come back on the GUI thread, and closing the owner
while a job runs neither delivers to a dead widget nor frees the signal's sender under the pool thread (a
crash). workbench.exports: the format menu and a write that names what went wrong."""

from __future__ import annotations

import threading

import shiboken6
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QWidget

from workbench import background


def test_the_result_arrives_on_the_gui_thread(qtbot) -> None:
    owner = QWidget()
    got: list[tuple[int, bool]] = []
    background.run_in_background(owner, lambda: 41 + 1,
                                 lambda r: got.append((r, QThread.currentThread() == owner.thread())))
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    assert got == [(42, True)]
    errors: list[str] = []
    background.run_in_background(owner, lambda: 1 / 0, lambda r: None, errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert errors == ["division by zero"]


def test_closing_the_owner_mid_job_keeps_the_sender_alive_and_drops_the_result(qtbot) -> None:
    owner = QWidget()
    release = threading.Event()
    got: list[object] = []
    before = set(background._pending)  # other tests' jobs may still be in flight
    background.run_in_background(owner, lambda: release.wait(10) and "late", got.append)
    (sink,) = background._pending - before
    shiboken6.delete(owner)  # the dialog closed while its query runs
    assert shiboken6.isValid(sink), "the sink must not die with its owner while a pool thread may emit through it"
    release.set()
    qtbot.waitUntil(lambda: sink not in background._pending, timeout=5000)
    qtbot.wait(50)
    assert got == []


def test_an_export_menu_lists_its_formats_and_a_refused_write_names_the_file(qtbot, tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from workbench.exports import TEXT_FORMATS, export_button, write_text

    owner = QWidget()
    qtbot.addWidget(owner)
    chosen: list[str] = []
    button = export_button(owner, "Export", [(f"{name}…", lambda f=fmt: chosen.append(f))
                                             for fmt, (name, _ext) in TEXT_FORMATS.items()])
    actions = button.menu().actions()
    assert [a.text() for a in actions] == ["CSV…", "Markdown…", "JSON…"]
    actions[2].trigger()
    assert chosen == ["json"]
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    assert write_text(owner, tmp_path / "ok.csv", "a,b\n") and (tmp_path / "ok.csv").read_text() == "a,b\n"
    missing = tmp_path / "no-such-folder" / "x.csv"
    assert not write_text(owner, missing, "a,b\n")
    assert shown == [f"Cannot write {missing}: No such file or directory"]


def test_garbage_cycles_are_collected_on_the_gui_thread_only(qtbot) -> None:
    """A pool thread that triggered the collector freed widgets there and deadlocked with the GUI thread."""
    import gc
    import weakref

    from workbench import gc_on_gui_thread

    assert gc_on_gui_thread.installed() and not gc.isenabled()

    class Node:
        pass

    where: list[bool] = []
    cycle = Node()
    cycle.me = cycle  # type: ignore[attr-defined]
    weakref.finalize(cycle, lambda: where.append(threading.current_thread() is threading.main_thread()))
    del cycle
    owner = QWidget()
    # Enough live allocations in a pool thread to pass the first threshold there: no collection may run in it.
    done: list[object] = []
    background.run_in_background(owner, lambda: [[] for _ in range(3 * gc.get_threshold()[0])], done.append)
    qtbot.waitUntil(lambda: bool(done) and bool(where), timeout=10_000)
    assert where == [True]
