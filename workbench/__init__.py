"""The PySide6 workbench. Talks to the engine only through core's torch-free modules and the worker process."""
