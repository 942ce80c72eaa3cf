"""Opening the results database: checks first, then SQLAlchemy with WAL, foreign keys, busy timeout.

The schema version lives in ``PRAGMA user_version`` (as qutebrowser does). Before anything can
write, the file is inspected read-only: a file that is not SQLite, is damaged, or was written by a
newer schema is refused with a :class:`StoreError` naming it, and is left byte-for-byte untouched.
Older schemas are migrated one version at a time, each in its own transaction, after a backup copy.

Write transactions start with ``BEGIN IMMEDIATE`` so two processes writing at once queue on the
busy timeout instead of failing with "database is locked" on a lock upgrade.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from core.errors import WorkbenchError
from core.store.schema import Base

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 60_000
_SQLITE_HEADER = b"SQLite format 3\x00"
_OUR_TABLES = {"runs", "variants", "metrics"}


class StoreError(WorkbenchError):
    """The results database cannot be used (corrupt, newer schema, unwritable). Names the file."""


def _v2_swept_and_primary_metric(conn: Connection) -> None:
    """Variants keep their swept values as JSON (not only inside a label); runs their task's primary
    metric. Older rows get their swept values from the label the runner wrote, parsed this once."""
    import json

    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN primary_metric VARCHAR")
    conn.exec_driver_sql("ALTER TABLE variants ADD COLUMN swept TEXT DEFAULT '{}'")
    for vid, label in conn.exec_driver_sql("SELECT id, label FROM variants WHERE label LIKE '%(%=%)'").all():
        values = {}
        for part in label[label.index("(") + 1 : -1].split(","):
            name, _, text = part.partition("=")
            try:
                values[name.strip()] = json.loads(text.strip())
            except ValueError:
                values[name.strip()] = text.strip()
        conn.exec_driver_sql("UPDATE variants SET swept = ? WHERE id = ?", (json.dumps(values), vid))


def _v3_run_labels(conn: Connection) -> None:
    """Runs get the user's labels: a name, tags (JSON list) and a note; empty for older runs."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN name VARCHAR NOT NULL DEFAULT ''")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''")


# version reached -> function bringing the previous version to it. Append, never edit. A new file is
# created at SCHEMA_VERSION directly from the declarative schema.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_swept_and_primary_metric, 3: _v3_run_labels}


def _inspect(path: Path) -> tuple[int, set[str]]:
    """(user_version, table names) read without writing; StoreError when not a usable SQLite file."""
    try:
        with path.open("rb") as fh:
            header = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"Cannot read the results database {path}: {exc.strerror or exc}") from None
    if header != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a workbench results database (not an SQLite file, or damaged); "
            "it was left untouched. Choose another file with --db or WORKBENCH_DB."
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the results database {path}: {exc}") from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version <= SCHEMA_VERSION:
            result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(result)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is damaged and cannot be read ({exc}); it was left untouched. "
            "Restore a backup or choose another file with --db."
        ) from None
    finally:
        conn.close()
    return version, tables


def _check(path: Path) -> int:
    """The schema version found in ``path`` (0: new or empty file). Raises before any write."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    version, tables = _inspect(path)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer workbench (schema {version}; this version reads up to "
            f"{SCHEMA_VERSION}). It was left untouched: upgrade the workbench or choose another file with --db."
        )
    if version == 0 and tables:
        raise StoreError(
            f"{path} is an SQLite database but not a workbench one (tables: {', '.join(sorted(tables)[:5])}); "
            "it was left untouched. Choose another file with --db."
        )
    if version > 0 and not tables >= _OUR_TABLES:
        raise StoreError(f"{path} claims schema {version} but lacks workbench tables; it was left untouched.")
    return version


def _setup_engine(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Store:
    """An open results database. Use :meth:`write` for one short write transaction, :meth:`read` to query."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._writer = engine.execution_options(sqlite_immediate=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction (BEGIN IMMEDIATE), committed on exit, rolled back on error."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: str | Path | None = None, *, create: bool = True) -> Store:
    """Open (and create or migrate) the database at ``path`` (default: core.paths.default_db())."""
    from core.paths import default_db

    path = default_db(path)
    found = _check(path)
    if found == 0 and not create and not path.exists():
        raise StoreError(f"No results database at {path}; run a recipe first or pass --db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the folder for the results database {path}: {exc.strerror or exc}") from None
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    _setup_engine(engine)
    store = Store(path, engine)
    if found < SCHEMA_VERSION:
        try:
            _migrate(store, found)
        except StoreError:
            engine.dispose()
            raise
        except Exception as exc:
            engine.dispose()
            raise StoreError(f"Cannot prepare the results database {path}: {exc}") from exc
    return store


def _migrate(store: Store, found: int) -> None:
    if found == 0:
        with store.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if (conn.exec_driver_sql("PRAGMA user_version").scalar() or 0) == 0:  # nobody created it meanwhile
                Base.metadata.create_all(conn)
                conn.exec_driver_sql(f"PRAGMA user_version={SCHEMA_VERSION}")
        return
    backup = store.path.with_name(f"{store.path.name}.v{found}.bak")  # keep the old file first
    shutil.copy2(store.path, backup)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with store.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            current = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
            if current >= version:  # another process migrated meanwhile
                continue
            MIGRATIONS[version](conn)
            conn.exec_driver_sql(f"PRAGMA user_version={version}")
