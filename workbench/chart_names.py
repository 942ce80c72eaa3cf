"""The result charts' names and titles, importable without pyqtgraph (the export menu is built
before the charts are): the tabs, the export menu and the exported files use the same words."""

CHARTS = {
    "scatter": "Metric vs size",
    "latency": "Latency",
    "steps": "After each step",
    "sweeps": "Sweeps",
    "curves": "Training curves",
}
