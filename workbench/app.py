"""Entry point of the ``workbench`` GUI script."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if "--worker" in argv[1:]:  # frozen builds start their worker through the same executable
        from core.run.worker import main as worker_main

        return int(worker_main() or 0)
    from PySide6.QtWidgets import QApplication

    from workbench._refcount_guard import guard_none_refcount
    from workbench.icons import icon

    guard_none_refcount()
    from workbench.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Compression Workbench")
    app.setOrganizationName("compression-workbench")
    app.setWindowIcon(icon("workbench"))
    window = MainWindow()
    window.show()
    if "--smoke" in argv[1:]:  # packaging check: the window can be built, then quit with 0
        app.processEvents()
        print(f"smoke: constructed '{window.windowTitle()}'", flush=True)
        window.close()
        return 0
    for arg in argv[1:]:
        if arg.endswith((".yaml", ".yml", ".json")):
            from pathlib import Path

            window.open_path(Path(arg))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
