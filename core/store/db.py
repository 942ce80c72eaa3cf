"""Opening the results database: checks first, then SQLAlchemy with WAL, foreign keys, busy timeout.

The schema version lives in ``PRAGMA user_version`` (as qutebrowser does). Before anything can
write, the file is inspected read-only: a file that is not SQLite, is damaged, or was written by a
newer schema is refused with a :class:`StoreError` naming it, and is left byte-for-byte untouched.
Older schemas are migrated one version at a time, each in its own transaction, after a backup copy.

The inspection opens the file ``immutable`` when no ``-wal`` file is beside it (then no other
connection has it open): SQLite creates nothing beside a file it refuses, and a healthy file on
read-only media can be read. Such a file opens as a read-only :class:`Store`; writing to it is
refused with a message saying why.

Write transactions start with ``BEGIN IMMEDIATE`` so two processes writing at once queue on the
busy timeout instead of failing with "database is locked" on a lock upgrade; a lock held longer
than the timeout becomes a :class:`StoreError` that says who holds it, when that can be known.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from core.errors import WorkbenchError
from core.store.schema import Base

SCHEMA_VERSION = 6
BUSY_TIMEOUT_MS = 60_000  # the default; open_store(busy_timeout_ms=...) changes it per store
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


def _v3_flags_seeds_predictions(conn: Connection) -> None:
    """Variants get a list of flags (the single size flag becomes one), their seed and tree node;
    per-example predictions get their own table."""
    import json

    conn.exec_driver_sql("ALTER TABLE variants ADD COLUMN flags TEXT DEFAULT '[]'")
    conn.exec_driver_sql("ALTER TABLE variants ADD COLUMN seed INTEGER")
    conn.exec_driver_sql("ALTER TABLE variants ADD COLUMN node INTEGER")
    conn.exec_driver_sql("UPDATE variants SET seed = (SELECT runs.seed FROM runs WHERE runs.id = variants.run_id)")
    for vid, flag in conn.exec_driver_sql("SELECT id, flag FROM variants WHERE flag IS NOT NULL").all():
        conn.exec_driver_sql("UPDATE variants SET flags = ? WHERE id = ?",
                             (json.dumps([{"code": "not_smaller", "text": flag}]), vid))
    if sqlite3.sqlite_version_info >= (3, 35):  # older SQLite keeps the column, unread
        conn.exec_driver_sql("ALTER TABLE variants DROP COLUMN flag")
    conn.exec_driver_sql(
        "CREATE TABLE predictions (id INTEGER NOT NULL PRIMARY KEY, variant_id INTEGER NOT NULL "
        "REFERENCES variants (id) ON DELETE CASCADE, split VARCHAR NOT NULL, body TEXT NOT NULL)")
    conn.exec_driver_sql("CREATE INDEX ix_predictions_variant_id ON predictions (variant_id)")


def _v4_sensitivity(conn: Connection) -> None:
    """Sensitivity maps (core.analysis) and their cells get their own tables."""
    conn.exec_driver_sql(
        "CREATE TABLE sensitivity_maps (id INTEGER NOT NULL PRIMARY KEY, variant_id INTEGER NOT NULL REFERENCES "
        "variants (id) ON DELETE CASCADE, metric VARCHAR NOT NULL, base_metric FLOAT, examples INTEGER NOT NULL, "
        "seed INTEGER NOT NULL, grouping VARCHAR NOT NULL, transforms TEXT NOT NULL, status VARCHAR NOT NULL, "
        "body TEXT NOT NULL, seconds FLOAT, created_at DATETIME NOT NULL)")
    conn.exec_driver_sql("CREATE INDEX ix_sensitivity_maps_variant_id ON sensitivity_maps (variant_id)")
    conn.exec_driver_sql(
        "CREATE TABLE sensitivity (id INTEGER NOT NULL PRIMARY KEY, map_id INTEGER NOT NULL REFERENCES "
        "sensitivity_maps (id) ON DELETE CASCADE, variant_id INTEGER NOT NULL REFERENCES variants (id) ON DELETE "
        "CASCADE, transform VARCHAR NOT NULL, layer VARCHAR NOT NULL, position INTEGER NOT NULL, metric FLOAT, "
        "delta FLOAT, ci_low FLOAT, ci_high FLOAT, examples INTEGER NOT NULL, seed INTEGER NOT NULL, "
        "created_at DATETIME NOT NULL)")
    conn.exec_driver_sql("CREATE INDEX ix_sensitivity_map_id ON sensitivity (map_id)")


def _v5_run_labels(conn: Connection) -> None:
    """Runs get the user's labels: a name, tags (JSON list) and a note; empty for older runs."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN name VARCHAR NOT NULL DEFAULT ''")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''")


def _v6_variant_machines(conn: Connection) -> None:
    """Variants record the machine they were made and timed on (a run's variants may come from
    several Ray nodes). Older variants were all made by their run's worker: their fingerprint is
    the run's environment without the run's own fields, plus the run's host, which is exactly what
    core.measure.machine_fingerprint gives on that machine."""
    import hashlib
    import json
    from datetime import datetime, timezone

    conn.exec_driver_sql("ALTER TABLE variants ADD COLUMN environment_id INTEGER")
    runs = conn.exec_driver_sql(
        "SELECT r.id, r.host, e.body FROM runs r JOIN environments e ON e.id = r.environment_id").all()
    created = datetime.now(timezone.utc).replace(tzinfo=None)
    for run_id, host, body in runs:
        env = {k: v for k, v in json.loads(body).items() if k not in ("threads", "seed", "workbench")}
        env["host"] = host
        text = json.dumps(env, sort_keys=True)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        found = conn.exec_driver_sql("SELECT id FROM environments WHERE content_hash = ?", (digest,)).scalar()
        if found is None:
            conn.exec_driver_sql("INSERT INTO environments (content_hash, body, created_at) VALUES (?, ?, ?)",
                                 (digest, text, created))
            found = conn.exec_driver_sql("SELECT id FROM environments WHERE content_hash = ?", (digest,)).scalar()
        conn.exec_driver_sql("UPDATE variants SET environment_id = ? WHERE run_id = ?", (found, run_id))


# version reached -> function bringing the previous version to it. Append, never edit. A new file is
# created at SCHEMA_VERSION directly from the declarative schema.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _v2_swept_and_primary_metric,
    3: _v3_flags_seeds_predictions,
    4: _v4_sensitivity,
    5: _v5_run_labels,
    6: _v6_variant_machines,
}


def _wal_exists(path: Path) -> bool:
    return Path(f"{path}-wal").exists()


def _ro_uri(path: Path) -> str:
    """A read-only URI; ``immutable`` (no locks, no -wal/-shm created) when no other connection is open."""
    return f"{path.resolve().as_uri()}?mode=ro" + ("" if _wal_exists(path) else "&immutable=1")


def read_only_reason(path: Path) -> str | None:
    """Why SQLite could not write ``path`` (or the journal files beside it), or None when it can."""
    folder = path.parent if path.parent.exists() else None
    probe = path if path.exists() else folder
    try:
        if probe is not None and os.statvfs(probe).f_flag & os.ST_RDONLY:
            return "it is on read-only media"
    except OSError:
        pass
    # effective ids: what the file system will check when SQLite opens the file
    effective = os.access in os.supports_effective_ids
    if path.exists() and not os.access(path, os.W_OK, effective_ids=effective):
        return "the file is read-only"
    if folder is not None and not os.access(folder, os.W_OK, effective_ids=effective):
        return "its folder is read-only (SQLite writes journal files beside the database)"
    return None


def _inspect(path: Path, timeout_s: float) -> tuple[int, set[str]]:
    """(user_version, table names) read without writing; StoreError when not a usable SQLite file.

    Only SQLite opens the file: closing any other descriptor of it (a header read with open()) would drop
    every POSIX lock this process holds on it, so another process could delete the -wal/-shm files under
    a connection we keep open, which from then on reads a stale snapshot ("How To Corrupt An SQLite
    Database File", 2.2)."""
    effective = os.access in os.supports_effective_ids
    problem = ("Is a directory" if path.is_dir()
               else None if os.access(path, os.R_OK, effective_ids=effective) else "Permission denied")
    if problem:
        raise StoreError(f"Cannot read the results database {path}: {problem}; "
                         "choose a database file with --db or WORKBENCH_DB")
    immutable = not _wal_exists(path)
    try:
        return _read_schema(path, _ro_uri(path), timeout_s)
    except sqlite3.OperationalError as exc:
        if _is_locked(exc):
            raise StoreError(_locked_message(path, timeout_s)) from None
        reason = read_only_reason(path)
        if reason is not None:  # SQLite could not create the files it needs beside the database
            raise StoreError(
                f"Cannot read the results database {path}: {reason} and SQLite needs to write beside it ({exc}). "
                "Copy it to a writable folder, or choose another file with --db or WORKBENCH_DB."
            ) from None
        first: sqlite3.DatabaseError = exc
    except sqlite3.DatabaseError as exc:
        if _not_sqlite(exc):
            raise _not_ours(path) from None
        first = exc
    if immutable and read_only_reason(path) is None:
        # An immutable read takes no lock: a process that opened the file meanwhile and wrote to it
        # could make pages look damaged. Confirm with a locking read, then remove the -wal/-shm that
        # read created (nobody can be using a file that is damaged).
        created = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm") if not Path(f"{path}{suffix}").exists()]
        try:
            return _read_schema(path, f"{path.resolve().as_uri()}?mode=ro", timeout_s)
        except sqlite3.DatabaseError as exc:
            if _is_locked(exc):
                raise StoreError(_locked_message(path, timeout_s)) from None
            first = exc
            for leftover in created:
                leftover.unlink(missing_ok=True)
    raise _damaged(path, first) from None


def _not_sqlite(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB or "not a database" in str(exc)


def _not_ours(path: Path) -> StoreError:
    return StoreError(
        f"{path} is not a workbench results database (not an SQLite file, or damaged); "
        "it was left untouched. Choose another file with --db or WORKBENCH_DB."
    )


def _read_schema(path: Path, uri: str, timeout_s: float) -> tuple[int, set[str]]:
    """(user_version, tables) through ``uri``, with a quick integrity check when the schema is ours to read."""
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the results database {path}: {exc}") from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version <= SCHEMA_VERSION:
            result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(result)
    finally:
        conn.close()
    return version, tables


def _damaged(path: Path, exc: Exception) -> StoreError:
    return StoreError(
        f"{path} is damaged and cannot be read ({exc}); it was left untouched. "
        "Restore a backup or choose another file with --db."
    )


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def lock_holders(path: Path) -> list[str]:
    """Other processes that have ``path`` (or its -wal/-shm) open, as "PID n (command)"; [] when unknowable.

    Linux only (reads /proc); processes of other users are not visible, which is fine: a workbench
    database is normally used by one user's programs.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    try:
        wanted = {os.path.realpath(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")}
    except OSError:
        return []
    holders = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (entry / "fd").iterdir()):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                command = " ".join(" ".join(a.decode(errors="replace") for a in argv if a).split())
                command = command if len(command) <= 100 else command[:99] + "…"
                holders.append(f"PID {entry.name} ({command})" if command else f"PID {entry.name}")
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return holders


def _locked_message(path: Path, timeout_s: float) -> str:
    holders = lock_holders(path)
    who = (
        f"it is held by {', '.join(holders)}" if holders
        else "another program (a running workbench or workbench-cli run) holds it"
    )
    return (
        f"The results database {path} stayed locked for writing for over {timeout_s:g} s: {who}. "
        "Wait for that run to finish (or stop it), then try again; or use another database file with --db."
    )


def _check(path: Path, timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> int:
    """The schema version found in ``path`` (0: new or empty file). Raises before any write."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    version, tables = _inspect(path, timeout_s)
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


def _switch_to_wal(cur: sqlite3.Cursor, timeout_s: float) -> None:
    """WAL mode, retried while another connection holds the file: SQLite answers a journal-mode change
    that meets a lock with SQLITE_BUSY at once, without calling the busy handler (two processes
    creating one new database at the same moment hit this)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _setup_engine(engine: Engine, busy_timeout_ms: int, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not read_only:  # a read-only connection keeps the file's journal mode and writes nothing
            _switch_to_wal(cur, busy_timeout_ms / 1000)
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Store:
    """An open results database. Use :meth:`write` for one short write transaction, :meth:`read` to query.

    ``read_only`` says why the database can only be read (e.g. "it is on read-only media"), or is None.
    """

    def __init__(self, path: Path, engine: Engine, *, read_only: str | None = None,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.engine = engine
        self.read_only = read_only
        self.busy_timeout_ms = busy_timeout_ms
        self._writer = engine.execution_options(sqlite_immediate=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction (BEGIN IMMEDIATE), committed on exit, rolled back on error."""
        if self.read_only:
            raise StoreError(
                f"The results database {self.path} can only be read: {self.read_only}. Results cannot be saved "
                "to it; copy it to a writable folder, or choose another file with --db or WORKBENCH_DB."
            )
        with self._translated(), Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._translated(), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """A lock held past the busy timeout, in words instead of SQLAlchemy's text with the URL."""
        try:
            yield
        except OperationalError as exc:
            if _is_locked(exc.orig if exc.orig is not None else exc):
                raise StoreError(_locked_message(self.path, self.busy_timeout_ms / 1000)) from None
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: str | Path | None = None, *, create: bool = True,
               busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Store:
    """Open (and create or migrate) the database at ``path`` (default: core.paths.default_db()).

    ``busy_timeout_ms``: how long a write waits for another process's write lock before giving up.
    A healthy database that cannot be written (read-only media, file or folder) opens read-only.
    """
    from core.paths import default_db

    path = default_db(path)
    timeout_s = busy_timeout_ms / 1000
    found = _check(path, timeout_s)
    if found == 0 and not create and not path.exists():
        raise StoreError(f"No results database at {path}; run a recipe first or pass --db")
    read_only = read_only_reason(path)
    if read_only is not None and not path.exists():
        raise StoreError(f"Cannot create the results database {path}: {read_only}. Choose another file with --db.")
    if read_only is not None:
        if found < SCHEMA_VERSION:
            what = "is empty" if found == 0 else f"has the older schema {found} and needs an upgrade"
            raise StoreError(
                f"The results database {path} {what}, but {read_only}. Copy it to a writable folder, "
                "or choose another file with --db or WORKBENCH_DB."
            )
        uri = _ro_uri(path)
        engine = create_engine("sqlite://", poolclass=QueuePool, creator=lambda: sqlite3.connect(
            uri, uri=True, timeout=timeout_s, check_same_thread=False))
        _setup_engine(engine, busy_timeout_ms, read_only=True)
        return Store(path, engine, read_only=read_only, busy_timeout_ms=busy_timeout_ms)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the folder for the results database {path}: {exc.strerror or exc}") from None
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": timeout_s})
    _setup_engine(engine, busy_timeout_ms, read_only=False)
    store = Store(path, engine, busy_timeout_ms=busy_timeout_ms)
    if found < SCHEMA_VERSION:
        try:
            _migrate(store, found)
        except StoreError:
            engine.dispose()
            raise
        except OperationalError as exc:
            engine.dispose()
            if _is_locked(exc.orig if exc.orig is not None else exc):
                raise StoreError(_locked_message(path, timeout_s)) from None
            raise StoreError(f"Cannot prepare the results database {path}: {exc.orig or exc}") from exc
        except Exception as exc:
            engine.dispose()
            raise StoreError(f"Cannot prepare the results database {path}: {exc}") from exc
    return store


def _backup(path: Path, to: Path, timeout_s: float) -> None:
    """A consistent copy through SQLite (what the -wal holds included). A file copy would miss the -wal,
    and closing its descriptor would drop this process's locks on the database (see _inspect)."""
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)
    target = sqlite3.connect(to, timeout=timeout_s)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _migrate(store: Store, found: int) -> None:
    if found == 0:
        with store.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            if (conn.exec_driver_sql("PRAGMA user_version").scalar() or 0) == 0:  # nobody created it meanwhile
                Base.metadata.create_all(conn)
                conn.exec_driver_sql(f"PRAGMA user_version={SCHEMA_VERSION}")
        return
    backup = store.path.with_name(f"{store.path.name}.v{found}.bak")  # keep the old file first
    _backup(store.path, backup, store.busy_timeout_ms / 1000)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with store.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            current = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
            if current >= version:  # another process migrated meanwhile
                continue
            MIGRATIONS[version](conn)
            conn.exec_driver_sql(f"PRAGMA user_version={version}")
