"""Compression Workbench engine: models, tasks, steps, artifacts, measurement, store. Never imports Qt."""

__version__ = "0.1.0"
