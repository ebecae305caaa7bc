"""The store's file: an SQLite database in WAL mode, opened to write (created by the first write) or to read
only, its schema, and one transaction per write.

Why a database and not JSON files: a sweep must survive Ctrl-C and kill -9 without losing or duplicating
work, and two processes may write to one store. Each cell is committed in its own transaction under a
primary key derived from everything that determines its numbers, so a rerun finds it and computes nothing
twice. WAL mode and a busy timeout let several writers share the file.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctrobust.errors import CtrobustError

log = logging.getLogger("ctrobust")

DEFAULT_STORE = Path("reports") / "ctrobust.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    model TEXT NOT NULL, dataset TEXT NOT NULL, threat TEXT NOT NULL, eps REAL,
    attack TEXT NOT NULL, attack_version TEXT, beta REAL NOT NULL, split TEXT NOT NULL,
    seed INTEGER NOT NULL, n INTEGER NOT NULL,
    clean_accuracy REAL NOT NULL, robust_accuracy REAL NOT NULL,
    summary TEXT NOT NULL, per_example TEXT NOT NULL,
    seconds REAL, versions TEXT, device TEXT, git_commit TEXT, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    model TEXT NOT NULL, dataset TEXT NOT NULL, threat TEXT NOT NULL, protocol TEXT NOT NULL,
    attack TEXT NOT NULL, seed INTEGER NOT NULL, n_examples INTEGER NOT NULL, beta REAL NOT NULL,
    base_robust REAL NOT NULL, ct_robust REAL NOT NULL,
    result TEXT NOT NULL, command TEXT, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    run_key TEXT NOT NULL, unit TEXT NOT NULL, error TEXT NOT NULL, executor TEXT, created TEXT NOT NULL
);
"""


def resolve_store_path(path: str | os.PathLike[str] | None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("CTROBUST_STORE")
    return Path(env) if env else DEFAULT_STORE


class StoreFile:
    """The connection to one store file and its transactions; the rows it holds are read and written by the
    tables' classes that :class:`ctrobust.results.store.Store` joins."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self._damaged: set[str] = set()  # keys of cells and artifacts read and found damaged: replaced when written
        if str(path) == ":memory:" or path.exists():
            self._connect()
        else:  # created by the first write, so a run refused on bad input leaves no empty store behind
            from ctrobust.outputs import check_output_file

            check_output_file(path, "the store")

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        try:
            db = self._open_read_only() if self.read_only else self._open_for_writing()
            found = _schema_version(db, path)
        except sqlite3.DatabaseError as exc:
            self._conn = None
            what = "read" if self.read_only else "use"
            raise CtrobustError(
                f"Cannot {what} {path} as a ctrobust store ({exc}); pass another --store or move that file away."
            ) from None
        except OSError as exc:
            self._conn = None
            raise CtrobustError(f"Cannot create the store {path} ({exc.strerror or exc}); pass another --store.") from None
        if found != SCHEMA_VERSION:
            self.close()
            raise CtrobustError(f"{path} has store schema {found}, this ctrobust reads {SCHEMA_VERSION}.")
        return db

    def _open_for_writing(self) -> sqlite3.Connection:
        path = self.path
        if str(path) != ":memory:":
            if path.exists() and path.stat().st_size > 0:
                _refuse_foreign(path)  # before anything is written to it
            path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 60.0
        for attempt in itertools.count():
            db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
            self._conn = db
            try:
                db.execute("PRAGMA busy_timeout = 60000")
                # Two processes creating one store at once: switching a new file to WAL takes an exclusive lock
                # for which SQLite does not wait (busy_timeout does not apply), so the loser tries again.
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                with self._transaction():
                    for statement in _statements():
                        db.execute(statement)
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                self._conn = None
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(min(0.01 * 2**attempt, 0.5))
        raise AssertionError("unreachable")

    def _open_read_only(self) -> sqlite3.Connection:
        """Nothing is created or converted. With a writer's log beside it (-wal), the file is opened read-only
        to see what the writer committed; without one there is nothing but the file, which is then opened as
        immutable (SQLite's read-only opening would leave -wal and -shm files beside it, and fails on read-only
        media)."""
        path = self.path
        if path.stat().st_size == 0:
            raise CtrobustError(f"{path} is an empty file, not a ctrobust store: pass the store a run wrote (--store).")
        _refuse_foreign(path)
        wal = path.with_name(path.name + "-wal").exists()
        for flags in (("mode=ro", "immutable=1") if wal else ("immutable=1",)):
            db = sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True, timeout=60.0, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout = 60000")
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                db.close()
                continue
            self._conn = db
            return db
        raise CtrobustError(f"Cannot read the store {path}: SQLite cannot open it even as immutable.")

    @property
    def _db(self) -> sqlite3.Connection:
        return self._conn if self._conn is not None else self._connect()

    def _exists(self) -> bool:
        """Whether there is anything to read (a store not yet written holds nothing)."""
        return self._conn is not None or self.path.exists()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException as exc:
            if db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                raise CtrobustError(
                    f"the disk holding the store {self.path} is full; every cell finished before is kept in it: "
                    "free space and run the same command again to go on."
                ) from None
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> StoreFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _schema_version(db: sqlite3.Connection, path: Path) -> int | str | None:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        return repr(row[0])


def _refuse_foreign(path: Path) -> None:
    """An SQLite file that another application owns (or any other file) is refused untouched."""
    with path.open("rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise CtrobustError(f"{path} is not an SQLite file, so not a ctrobust store: pass another --store.")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        meta = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if "meta" in tables else None
    except sqlite3.DatabaseError:
        return  # damaged: opening it says so in one line
    finally:
        db.close()
    if tables and (meta is None or not {"cells", "runs"} <= tables):
        shown = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
        raise CtrobustError(f"{path} is an SQLite database of another application (tables: {shown}), not a ctrobust "
                            "store: it was left untouched; pass another --store.")


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
