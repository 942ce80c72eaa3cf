"""Workbench tests: a tiny test step in the registry, and a window on fresh settings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.params import StepConfig, param
from core.state import FLOAT, TRAINABLE
from core.steps.base import Step, is_registered, register


@dataclass(frozen=True)
class ScaleConfig(StepConfig):
    amount: float = param(0.5, label="Amount", help="Fraction of weights to touch", min=0.0, max=1.0, unit="")
    rounds: int = param(2, label="Rounds", min=1, max=10)
    mode: str = param("l1", label="Mode", choices=("l1", "l2", "random"))
    parts: tuple[str, ...] = param(("attention", "ffn"), label="Parts", choices=("attention", "ffn", "embeddings"))
    keep_bias: bool = param(True, label="Keep bias")

    def validate(self) -> None:
        from core.errors import ConfigError

        if self.mode == "random" and self.amount > 0.9:
            raise ConfigError("Amount (amount) must be <= 0.9 with random mode", field="amount")


@dataclass(frozen=True)
class QuantConfig(StepConfig):
    bits: int = param(8, label="Bits", min=2, max=16, unit="bit")


class ScaleStep(Step):
    """A declaration only: GUI tests never apply it."""

    id = "wbtest.scale"
    title = "Test scale"
    category = "Pruning"
    description = "Test step for the workbench tests"
    config_cls = ScaleConfig


class FreezeStep(Step):
    id = "wbtest.freeze"
    title = "Test freeze"
    category = "Quantization"
    description = "Removes trainability, like int8 does"
    config_cls = QuantConfig
    requires = frozenset({FLOAT})
    removes = frozenset({FLOAT, TRAINABLE})
    adds = frozenset({"int8"})


class TrainStep(Step):
    id = "wbtest.train"
    title = "Test train"
    category = "Training"
    config_cls = QuantConfig
    requires = frozenset({FLOAT, TRAINABLE})


for _cls in (ScaleStep, FreezeStep, TrainStep):
    if not is_registered(_cls.id):
        register(_cls)


@pytest.fixture(scope="session", autouse=True)
def _none_refcount_guard() -> None:
    """As workbench.app.main does before any window: see workbench/_refcount_guard.py."""
    from workbench._refcount_guard import guard_none_refcount

    guard_none_refcount()


@pytest.fixture(scope="session", autouse=True)
def _gc_on_gui_thread(qapp) -> None:  # type: ignore[no-untyped-def]
    """As every MainWindow does: see workbench/gc_on_gui_thread.py (widgets collected on a pool thread hung a test)."""
    from workbench import gc_on_gui_thread

    gc_on_gui_thread.install()


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    from workbench.main_window import MainWindow

    w = MainWindow(load_initial=False)
    # pytest-qt closes widgets before fixture finalizers run: mark clean and stop any run first, so
    # closeEvent never opens its modal question (a test that failed mid-run hung there, waiting for a click).
    qtbot.addWidget(w, before_close_func=_quietly_closable)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.run_panel.client.kill()


def _quietly_closable(w) -> None:  # type: ignore[no-untyped-def]
    w.undo.setClean()
    w.run_panel.client.kill()


@pytest.fixture
def results(window, qtbot):  # type: ignore[no-untyped-def]
    """The results view over tests/workbench/results_data.py's runs (9 variants), loaded."""
    from tests.workbench.results_data import fill_database

    ids = fill_database(window.settings.db_path())
    view = window.results
    window.tabs.setCurrentWidget(view)
    view.refresh()
    assert view.wait_loaded()
    qtbot.waitUntil(lambda: len(view.rows) == 9, timeout=10_000)
    view.ids = ids  # run -> variant ids, in RUNS order
    return view
