"""Cells in the store: one row per evaluated (model, data, threat, attack, beta, split, seed), with its
per-point outcomes and, for the base model's final cell, its adversarial examples."""

from __future__ import annotations

import json
from typing import Any

from ctrobust.cell import Scored
from ctrobust.identity import identity_key
from ctrobust.results.consistency import cell_problem
from ctrobust.results.store.artifacts import DamagedArtifact, pack, unpack
from ctrobust.results.store.database import StoreFile, log, now


class CellRows(StoreFile):
    """Cells: read (checked, a damaged one recomputed), written once, copied from a worker's store."""

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
                adversarial = unpack(art[0])
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
            now(),
        )
        verb = "REPLACE" if key in self._damaged else "IGNORE"
        with self._transaction():
            cur = self._db.execute(f"INSERT OR {verb} INTO cells VALUES ({','.join('?' * len(values))})", values)
            if cell.adversarial is not None:
                self._db.execute(f"INSERT OR {verb} INTO artifacts VALUES (?, ?)", (key, pack(cell.adversarial)))
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

    def count_cells(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM cells").fetchone()[0])

    def cell_rows(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT * FROM cells ORDER BY created, key")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
