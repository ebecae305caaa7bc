"""The results store: an SQLite file with one row per evaluated cell and one per finished run.

Why a database and not JSON files: a sweep must survive Ctrl-C and kill -9 without losing or
duplicating work, and two processes may write to one store. Each cell is committed in its own
transaction under a primary key derived from everything that determines its numbers (model,
data indices, threat, eps, attack and library version, beta, split, seed), so a rerun finds it
and computes nothing twice. WAL mode and a busy timeout let several writers share the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctrobust.cell import Scored
from ctrobust.errors import CtrobustError

if TYPE_CHECKING:
    from ctrobust.result import RunResult

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


def identity_key(identity: dict[str, Any]) -> str:
    """A stable key for a JSON-able identity: sorted keys, floats as written by json."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def indices_digest(indices: list[int]) -> str:
    """Short digest of a split's indices, so two splits with equal n but other points differ."""
    return hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()[:16]


def resolve_store_path(path: str | os.PathLike[str] | None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("CTROBUST_STORE")
    return Path(env) if env else DEFAULT_STORE


class Store:
    """One SQLite store. Open with :func:`open_store`; safe to use from several processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        if str(path) == ":memory:" or path.exists():
            self._connect()
        else:  # created by the first write, so a run refused on bad input leaves no empty store behind
            from ctrobust.outputs import check_output_file

            check_output_file(path, "the store")

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        try:
            if str(path) != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
            self._conn = db
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            with self._transaction():
                for statement in _statements():
                    db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            found = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            self._conn = None
            raise CtrobustError(
                f"Cannot use {path} as a ctrobust store ({exc}); pass another --store or move that file away."
            ) from None
        except OSError as exc:
            self._conn = None
            raise CtrobustError(f"Cannot create the store {path} ({exc.strerror or exc}); pass another --store.") from None
        if found is None or int(found[0]) != SCHEMA_VERSION:
            raise CtrobustError(f"{path} has store schema {found and found[0]}, this ctrobust reads {SCHEMA_VERSION}.")
        return db

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # cells -----------------------------------------------------------------------------------

    def get_cell(self, identity: dict[str, Any]) -> Scored | None:
        if not self._exists():
            return None
        row = self._db.execute(
            "SELECT clean_accuracy, robust_accuracy, summary, per_example FROM cells WHERE key = ?",
            (identity_key(identity),),
        ).fetchone()
        if row is None:
            return None
        art = self._db.execute("SELECT data FROM artifacts WHERE key = ?", (identity_key(identity),)).fetchone()
        return Scored(row[0], row[1], json.loads(row[2]), json.loads(row[3]), _unpack(art[0]) if art else None)

    def put_cell(self, identity: dict[str, Any], cell: Scored, meta: dict[str, Any]) -> bool:
        """Store a cell unless one with this identity is there; True when this call added it."""
        values = (
            identity_key(identity), json.dumps(identity, sort_keys=True),
            identity["model"], identity["dataset"], identity["threat"], identity.get("eps"),
            json.dumps(identity["attack"], sort_keys=True), identity.get("library_version"),
            identity["beta"], identity["split"], identity["seed"], identity["n"],
            cell.clean_accuracy, cell.robust_accuracy, json.dumps(cell.summary), json.dumps(cell.per_example),
            meta.get("seconds"), json.dumps(meta.get("versions")), meta.get("device"), meta.get("git_commit"),
            _now(),
        )
        with self._transaction():
            cur = self._db.execute(f"INSERT OR IGNORE INTO cells VALUES ({','.join('?' * len(values))})", values)
            if cell.adversarial is not None:
                self._db.execute("INSERT OR IGNORE INTO artifacts VALUES (?, ?)",
                                 (identity_key(identity), _pack(cell.adversarial)))
        return cur.rowcount == 1

    def put_cell_rows(self, rows: list[dict[str, Any]]) -> int:
        """Store cells as returned by :meth:`cell_rows` of another store (a worker's); returns how many were new."""
        added = 0
        with self._transaction():
            for row in rows:
                names = list(row)
                cur = self._db.execute(
                    f"INSERT OR IGNORE INTO cells ({','.join(names)}) VALUES ({','.join('?' * len(names))})",
                    [row[n] for n in names],
                )
                added += cur.rowcount
        return added

    def put_failure(self, identity: dict[str, Any], unit: str, error: str, executor: str) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
                             (identity_key(identity), unit, error, executor, _now()))

    def failures(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT unit, error, executor, created FROM failures ORDER BY created")
        return [dict(zip(("unit", "error", "executor", "created"), row)) for row in cur.fetchall()]

    def count_cells(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM cells").fetchone()[0])

    def cell_rows(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT * FROM cells ORDER BY created, key")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    # runs ------------------------------------------------------------------------------------

    def count_runs(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def get_run(self, identity: dict[str, Any]) -> RunResult | None:
        if not self._exists():
            return None
        row = self._db.execute("SELECT result, command FROM runs WHERE key = ?", (identity_key(identity),)).fetchone()
        return _run_result(row[0], row[1]) if row else None

    def put_run(self, result: RunResult) -> bool:
        """Store a finished run under its identity (with the command that made it) unless it is there already."""
        values = (
            identity_key(result.identity), json.dumps(result.identity, sort_keys=True),
            result.model, result.dataset, result.threat.value, result.protocol.value, result.attack,
            result.seed, result.n_examples, result.beta, result.base.robust_accuracy, result.ct.robust_accuracy,
            json.dumps(result.to_dict()), result.command, _now(),
        )
        with self._transaction():
            cur = self._db.execute(f"INSERT OR IGNORE INTO runs VALUES ({','.join('?' * len(values))})", values)
        return cur.rowcount == 1

    def runs(self) -> list[RunResult]:
        """Every finished run, with the command that made it, oldest first."""
        if not self._exists():
            return []
        rows = self._db.execute("SELECT result, command FROM runs ORDER BY created, key").fetchall()
        return [_run_result(result, command) for result, command in rows]


    # AutoAttack stages of a final cell not finished yet -------------------------------------------

    STAGE_PREFIX = "autoattack-stage/"

    def put_stage(self, identity: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Keep a final cell's AutoAttack run after one of its attacks (replacing the previous stage), so an
        interrupted run resumes at the next attack."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?)",
                             (self.STAGE_PREFIX + identity_key(identity), _pack(arrays)))

    def get_stage(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        if not self._exists():
            return None
        row = self._db.execute("SELECT data FROM artifacts WHERE key = ?",
                               (self.STAGE_PREFIX + identity_key(identity),)).fetchone()
        return _unpack(row[0]) if row else None

    def drop_stage(self, identity: dict[str, Any]) -> None:
        """The cell is stored whole: its stages are no longer needed."""
        with self._transaction():
            self._db.execute("DELETE FROM artifacts WHERE key = ?", (self.STAGE_PREFIX + identity_key(identity),))

    # attack audits (ctrobust audit-attack) ---------------------------------------------------------

    AUDIT_PREFIX = "attack-audit/"

    def put_audit(self, run_id: str, settings: dict[str, Any], audit: dict[str, Any]) -> None:
        """Store one audit of a run (JSON, in the artifacts table); the same settings replace an older one."""
        key = f"{self.AUDIT_PREFIX}{run_id}/{identity_key(settings)[:16]}"
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?)",
                             (key, json.dumps(audit, sort_keys=True).encode()))

    def audits(self, run_id: str) -> list[dict[str, Any]]:
        """Every stored audit of a run."""
        if not self._exists():
            return []
        rows = self._db.execute("SELECT data FROM artifacts WHERE key LIKE ? ORDER BY key",
                                (f"{self.AUDIT_PREFIX}{run_id}/%",)).fetchall()
        return [json.loads(bytes(row[0]).decode()) for row in rows]


def _run_result(text: str, command: str | None) -> RunResult:
    from ctrobust.result import RunResult

    data = json.loads(text)
    return RunResult.from_dict({**data, "command": command or data.get("command")})


def _pack(arrays: dict[str, Any]) -> bytes:
    """Arrays as a compressed .npz blob (the base model's adversarial examples, AutoAttack's stages)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _unpack(blob: bytes) -> dict[str, Any]:
    import io

    import numpy as np

    with np.load(io.BytesIO(blob)) as data:
        return {name: data[name] for name in data.files}


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    return Store(resolve_store_path(path))


def memory_store() -> Store:
    """A store that lives in memory: what a remote worker fills and sends back to the driver."""
    return Store(Path(":memory:"))


def existing_store(path: str | os.PathLike[str] | None = None) -> Store:
    """Open a store that must exist already (for commands that only read it)."""
    resolved = resolve_store_path(path)
    if not resolved.is_file():
        raise CtrobustError(
            f"No results store at {resolved}: run `ctrobust eval` or `ctrobust reproduce` first, or pass --store."
        )
    return Store(resolved)


def select_runs(store: Store, model: str | None = None, dataset: str | None = None,
                threat: str | None = None) -> list[RunResult]:
    """Finished runs, optionally only those of one model / dataset / threat; an error when none match."""
    from ctrobust.threats import parse_threat

    wanted_threat = parse_threat(threat) if threat else None
    runs = [r for r in store.runs()
            if (model is None or r.model == model) and (dataset is None or r.dataset == dataset)
            and (wanted_threat is None or r.threat is wanted_threat)]
    if not runs:
        filters = ", ".join(f"{k}={v}" for k, v in (("model", model), ("dataset", dataset), ("threat", threat)) if v)
        raise CtrobustError(f"No finished runs in {store.path}" + (f" with {filters}" if filters else "")
                            + ": run `ctrobust eval` or `ctrobust reproduce` first.")
    return runs
