"""The results store: an SQLite file with one row per evaluated cell and one per finished run.

Why a database and not JSON files: a sweep must survive Ctrl-C and kill -9 without losing or
duplicating work, and two processes may write to one store. Each cell is committed in its own
transaction under a primary key derived from everything that determines its numbers (model,
data indices, threat, eps, attack and library version, beta, split, seed), so a rerun finds it
and computes nothing twice. WAL mode and a busy timeout let several writers share the file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctrobust.cell import Scored
from ctrobust.errors import CtrobustError
from ctrobust.identity import identity_key
from ctrobust.results.consistency import cell_problem, run_problem

log = logging.getLogger("ctrobust")

if TYPE_CHECKING:
    from ctrobust.results.result import RunResult

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


class Store:
    """One SQLite store. Open with :func:`open_store` (to write) or :func:`existing_store` (to read only);
    safe to use from several processes."""

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # cells -----------------------------------------------------------------------------------

    def get_cell(self, identity: dict[str, Any]) -> Scored | None:
        """The stored cell of this identity; None when there is none or it is damaged (then a warning says
        so, and storing the recomputed cell replaces it)."""
        if not self._exists():
            return None
        key = identity_key(identity)
        row = self._db.execute(
            "SELECT clean_accuracy, robust_accuracy, summary, per_example FROM cells WHERE key = ?", (key,),
        ).fetchone()
        if row is None:
            return None
        try:
            summary, per_example = json.loads(row[2]), json.loads(row[3])
        except (TypeError, ValueError):
            summary, per_example = None, None
        problem = cell_problem(int(identity["n"]), row[0], row[1], per_example) if isinstance(
            row[0], float | int) and isinstance(row[1], float | int) else "its accuracies are not numbers"
        if problem is not None or not isinstance(summary, dict):
            log.warning("warning: the stored cell %s (beta %s, %s split) is damaged (%s): recomputing it",
                        key[:12], identity.get("beta"), identity.get("split"), problem or "its summary is unreadable")
            self._damaged.add(key)
            return None
        art = self._db.execute("SELECT data FROM artifacts WHERE key = ?", (key,)).fetchone()
        adversarial = None
        if art is not None:
            try:
                adversarial = _unpack(art[0])
            except DamagedArtifact as exc:
                log.warning("warning: the stored adversarial examples of cell %s are damaged (%s): recomputing them",
                            key[:12], exc)
                self._damaged.add(key)
                return None
        return Scored(per_example, summary, adversarial)

    def put_cell(self, identity: dict[str, Any], cell: Scored, meta: dict[str, Any]) -> bool:
        """Store a cell unless one with this identity is there (a damaged one is replaced); True when this
        call added it."""
        key = identity_key(identity)
        values = (
            key, json.dumps(identity, sort_keys=True),
            identity["model"], identity["dataset"], identity["threat"], identity.get("eps"),
            json.dumps(identity["attack"], sort_keys=True), identity.get("library_version"),
            identity["beta"], identity["split"], identity["seed"], identity["n"],
            cell.clean_accuracy, cell.robust_accuracy, json.dumps(cell.summary), json.dumps(cell.per_example),
            meta.get("seconds"), json.dumps(meta.get("versions")), meta.get("device"), meta.get("git_commit"),
            _now(),
        )
        verb = "REPLACE" if key in self._damaged else "IGNORE"
        with self._transaction():
            cur = self._db.execute(f"INSERT OR {verb} INTO cells VALUES ({','.join('?' * len(values))})", values)
            if cell.adversarial is not None:
                self._db.execute(f"INSERT OR {verb} INTO artifacts VALUES (?, ?)", (key, _pack(cell.adversarial)))
        self._damaged.discard(key)
        return cur.rowcount == 1

    def mark_damaged(self, identity: dict[str, Any]) -> None:
        """A stored cell (or its adversarial examples) that failed a check made by its reader: replaced when it
        is stored again."""
        self._damaged.add(identity_key(identity))

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
        """The stored run of this identity, if there is one and it passes its checks."""
        if not self._exists():
            return None
        row = self._db.execute("SELECT key, result, command, base_robust, ct_robust FROM runs WHERE key = ?",
                               (identity_key(identity),)).fetchone()
        return self._checked_run(row) if row else None

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
        """Every finished run that passes its checks, with the command that made it, oldest first; each row
        that fails is named in one warning and left out."""
        if not self._exists():
            return []
        rows = self._db.execute("SELECT key, result, command, base_robust, ct_robust FROM runs "
                                "ORDER BY created, key").fetchall()
        return [run for run in (self._checked_run(row) for row in rows) if run is not None]

    def _checked_run(self, row: tuple[Any, ...]) -> RunResult | None:
        key, text, command, base_robust, ct_robust = row
        try:
            run = _run_result(text, command)
        except Exception as exc:  # noqa: BLE001 - any damage to the JSON; named in one line below
            log.warning("warning: run row %s of %s is left out: its result is unreadable (%s)", str(key)[:12],
                        self.path, _first_line(exc))
            return None
        columns = (base_robust, ct_robust) if isinstance(base_robust, float | int) and isinstance(
            ct_robust, float | int) else (float("nan"), float("nan"))
        cells = {arm: self._cell_outcomes(cell_key) for arm, cell_key in run.final_cells.items()}
        try:
            problem = run_problem(run, columns, cells)
        except Exception as exc:  # noqa: BLE001 - outcomes of the wrong shape or type
            problem = f"its outcomes are malformed ({_first_line(exc)})"
        if problem is not None:
            log.warning("warning: run %s (%s, %s) in %s is left out: %s", run.run_id or str(key)[:12], run.model,
                        run.threat.value, self.path, problem)
            return None
        return run

    def _cell_outcomes(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT per_example FROM cells WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            outcomes = json.loads(row[0])
        except (TypeError, ValueError):
            return {"clean": None}
        return outcomes if isinstance(outcomes, dict) else {"clean": None}


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
        if row is None:
            return None
        try:
            return _unpack(row[0])
        except DamagedArtifact as exc:
            log.warning("warning: a stored AutoAttack stage is damaged (%s): that cell's AutoAttack starts over", exc)
            return None

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
        rows = self._db.execute("SELECT key, data FROM artifacts WHERE key LIKE ? ORDER BY key",
                                (f"{self.AUDIT_PREFIX}{run_id}/%",)).fetchall()
        out = []
        for key, data in rows:
            try:
                audit = json.loads(bytes(data).decode())
            except (TypeError, ValueError) as exc:
                log.warning("warning: the stored audit %s is unreadable (%s): left out", key, _first_line(exc))
                continue
            if isinstance(audit, dict):
                out.append(audit)
        return out


def _run_result(text: str, command: str | None) -> RunResult:
    from ctrobust.results.result import RunResult

    data = json.loads(text)
    return RunResult.from_dict({**data, "command": command or data.get("command")})


class DamagedArtifact(Exception):
    """A stored blob whose checksum or contents are wrong."""


_MAGIC = b"ctrobust-npz/sha256\n"


def _pack(arrays: dict[str, Any]) -> bytes:
    """Arrays as a compressed .npz blob behind its SHA-256 (the base model's adversarial examples,
    AutoAttack's stages), so damage is found before the arrays are used."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    return _MAGIC + hashlib.sha256(data).digest() + data


def _unpack(blob: bytes) -> dict[str, Any]:
    """The arrays of a blob from :func:`_pack` (or an older one without a checksum); DamagedArtifact otherwise."""
    import io

    import numpy as np

    blob = bytes(blob)
    if blob.startswith(_MAGIC):
        digest, blob = blob[len(_MAGIC): len(_MAGIC) + 32], blob[len(_MAGIC) + 32:]
        if hashlib.sha256(blob).digest() != digest:
            raise DamagedArtifact("its checksum does not match")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:  # noqa: BLE001 - zip, npz and pickle errors alike: the blob is damaged
        raise DamagedArtifact(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    return Store(resolve_store_path(path))


def memory_store() -> Store:
    """A store that lives in memory: what a remote worker fills and sends back to the driver."""
    return Store(Path(":memory:"))


def existing_store(path: str | os.PathLike[str] | None = None, read_only: bool = True) -> Store:
    """Open a store that must exist already; read-only (nothing created or converted) unless told otherwise."""
    resolved = resolve_store_path(path)
    if not resolved.is_file():
        raise CtrobustError(
            f"No results store at {resolved}: run `ctrobust eval` or `ctrobust reproduce` first, or pass --store."
        )
    return Store(resolved, read_only=read_only)


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
