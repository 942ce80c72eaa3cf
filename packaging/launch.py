"""Entry script of the frozen bundle: the GUI, or the worker when started with ``--worker``.

workbench.app.main dispatches ``--worker`` to core.run.worker before any Qt is imported, so the
bundle's one executable serves both processes (a frozen build has no ``python -m core.run.worker``).
"""

import multiprocessing
import sys

from workbench.app import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch/datasets helpers may spawn processes of this executable
    sys.exit(main())
