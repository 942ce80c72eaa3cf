"""measure.backends in the window (issue 15): the Recipe tab chooses the backends (one undoable edit),
the results table gets a p50 column per backend and the fastest backend, and the latency chart
groups its bars by backend. Rows are what core.store computes from stored metrics."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from core.store.rows import RunMeta, VariantInfo, build_row

# variant -> backend -> (p50, low, high); dynamic int8 could not be exported (torch only).
TIMES = {
    1: {"torch": (170.0, 165.0, 176.0), "onnxruntime": (120.0, 118.0, 123.0), "openvino": (93.0, 90.0, 95.0)},
    2: {"torch": (94.0, 92.0, 97.0)},
    3: {"openvino": (58.0, 57.0, 60.0)},
}


def _rows() -> list[dict[str, Any]]:
    run = RunMeta(1, "all-MiniLM-L6-v2", "sst2", "accuracy")
    infos = []
    for vid, label in ((1, "baseline"), (2, "quantize.dynamic_int8"), (3, "quantize.static_int8")):
        metrics: dict[str, float | None] = {"accuracy": 0.85, "artifact_bytes": 9e7 / vid}
        for backend, (p50, low, high) in TIMES[vid].items():
            metrics |= {f"latency_p50_ms_{backend}": p50, f"latency_p50_ms_{backend}_ci95_low": low,
                        f"latency_p50_ms_{backend}_ci95_high": high}
        metrics["latency_p50"] = TIMES[vid].get("torch", TIMES[vid].get("openvino"))[0]  # type: ignore[index]
        infos.append(VariantInfo(id=vid, run_id=1, parent_id=None if vid == 1 else 1, step_index=int(vid > 1),
                                 step_id=label, label=label, config={}, cached=False, cached_from_id=None,
                                 seconds=1.0, flags=[], artifact_path=None, artifact_bytes=None, metrics=metrics))
    return [build_row(v, run, infos[0]).to_dict() for v in infos]


def test_rows_name_the_fastest_backend() -> None:
    rows = _rows()
    assert [r["fastest_backend"] for r in rows] == ["openvino", "torch", "openvino"]
    assert rows[0]["backend_latency"]["onnxruntime"] == [120.0, 118.0, 123.0]


def test_the_table_has_a_p50_column_per_backend_and_the_fastest(qtbot) -> None:  # type: ignore[no-untyped-def]
    from workbench.results_model import ResultsModel

    model = ResultsModel()
    model.set_rows(_rows())
    titles = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    for backend in ("torch", "onnxruntime", "openvino"):
        assert f"p50 ms {backend}" in titles
    assert "Fastest backend" in titles

    def cell(row: int, title: str, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return model.data(model.index(row, titles.index(title)), role)

    assert cell(0, "p50 ms openvino") == "93.00" and cell(0, "Fastest backend") == "openvino"
    assert cell(1, "p50 ms openvino") == "—"  # not timed there
    assert cell(1, "p50 ms torch", Qt.ItemDataRole.UserRole) == 94.0  # sorts on the number
    assert "[90.00, 95.00]" in cell(0, "p50 ms openvino", Qt.ItemDataRole.ToolTipRole)
    # Rows without backends keep the plain table.
    plain = [{k: v for k, v in r.items() if k not in ("backend_latency", "fastest_backend")} for r in _rows()]
    model.set_rows(plain)
    assert not any(str(model.headerData(c, Qt.Orientation.Horizontal)).startswith("p50 ms ")
                   for c in range(model.columnCount()))


def test_the_latency_chart_groups_bars_by_backend(qtbot) -> None:  # type: ignore[no-untyped-def]
    from workbench.charts import LatencyChart

    chart = LatencyChart()
    qtbot.addWidget(chart)
    rows = _rows()
    chart.update_rows(rows, [rows[0]])
    assert chart.backends == ["torch", "onnxruntime", "openvino"]
    for backend in chart.backends:
        xs, heights = chart.backend_bars[backend].opts["x"], chart.backend_bars[backend].opts["height"]
        expected = [(vid - 1, TIMES[vid][backend][0]) for vid in (1, 2, 3) if backend in TIMES[vid]]
        assert [round(x) for x in xs] == [i for i, _ in expected]  # each bar inside its variant's group
        assert list(heights) == [h for _, h in expected]
    # Bars of one variant sit side by side, in the legend's order.
    group = sorted((x, b) for x, b, r in chart.grouped if r["variant"] == 1)
    assert [b for _, b in group] == ["torch", "onnxruntime", "openvino"]
    # The tip of the fastest bar says so, with its interval.
    x = next(x for x, b, r in chart.grouped if r["variant"] == 1 and b == "openvino")
    text, vid = chart.tips.hit(chart.tips.scene_pos(x, 50.0)) or ("", None)
    assert vid == 1 and text.startswith("openvino (fastest): p50 93.00 ms [90.00, 95.00]")
    # Rows timed on torch only: the p50 / p90 bars again.
    plain = [{k: v for k, v in r.items() if k not in ("backend_latency", "fastest_backend")} for r in rows]
    chart.update_rows(plain, [])
    assert chart.backends == [] and list(chart.p50_bars.opts["height"]) == [170.0, 94.0, 58.0]
    assert all(len(b.opts["x"]) == 0 for b in chart.backend_bars.values())


def test_the_recipe_tab_chooses_the_backends(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel = window.recipe_panel
    window.side_tabs.setCurrentWidget(panel)
    assert window.document.recipe.measure.backends == ("torch",)
    assert panel.backend_boxes["torch"].isChecked() and not panel.backend_boxes["openvino"].isChecked()
    panel.backend_boxes["openvino"].click()
    assert window.document.recipe.measure.backends == ("torch", "openvino")
    assert window.document.recipe.measure.to_dict()["backends"] == ["torch", "openvino"]  # recorded with the run
    panel.backend_boxes["torch"].click()
    panel.backend_boxes["openvino"].click()  # the last one: refused, and said why
    assert window.document.recipe.measure.backends == ("openvino",)
    assert panel.backend_boxes["openvino"].isChecked() and not panel.backends_error.isHidden()
    window.undo.undo()
    assert window.document.recipe.measure.backends == ("torch", "openvino")
    assert panel.backend_boxes["torch"].isChecked()
