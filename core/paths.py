"""Where the workbench keeps its database and artifacts by default.

The base folder is the platform's application-data folder (platformdirs), overridable by
``WORKBENCH_HOME`` (tests set it so no test touches the developer's data). The database file is
overridable on its own by ``WORKBENCH_DB`` and by the ``--db`` flag of the CLI. Artifacts live
beside the database, never inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "workbench"
DB_NAME = "workbench.sqlite"


def home() -> Path:
    """The base folder for the database and artifacts."""
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_db(override: str | os.PathLike[str] | None = None) -> Path:
    """The database file: the explicit override, else ``WORKBENCH_DB``, else ``home()/workbench.sqlite``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("WORKBENCH_DB")
    if env:
        return Path(env).expanduser()
    return home() / DB_NAME


def default_artifacts(db: str | os.PathLike[str] | None = None) -> Path:
    """The artifact folder: ``artifacts/`` beside the database file (large files stay out of SQLite)."""
    return default_db(db).parent / "artifacts"
