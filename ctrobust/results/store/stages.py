"""AutoAttack's stages of a final cell not finished yet: kept after each of its attacks, so an interrupted run
resumes at the next attack, and dropped once the cell is stored whole."""

from __future__ import annotations

from typing import Any

from ctrobust.identity import identity_key
from ctrobust.results.store.artifacts import DamagedArtifact, pack, unpack
from ctrobust.results.store.database import StoreFile, log


class StageRows(StoreFile):
    """A final cell's AutoAttack state between its attacks (in the artifacts table)."""

    STAGE_PREFIX = "autoattack-stage/"

    def put_stage(self, identity: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Keep a final cell's AutoAttack run after one of its attacks (replacing the previous stage), so an
        interrupted run resumes at the next attack."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?)",
                             (self.STAGE_PREFIX + identity_key(identity), pack(arrays)))

    def get_stage(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        if not self._exists():
            return None
        row = self._db.execute("SELECT data FROM artifacts WHERE key = ?",
                               (self.STAGE_PREFIX + identity_key(identity),)).fetchone()
        if row is None:
            return None
        try:
            return unpack(row[0])
        except DamagedArtifact as exc:
            log.warning("warning: a stored AutoAttack stage is damaged (%s): that cell's AutoAttack starts over", exc)
            return None

    def drop_stage(self, identity: dict[str, Any]) -> None:
        """The cell is stored whole: its stages are no longer needed."""
        with self._transaction():
            self._db.execute("DELETE FROM artifacts WHERE key = ?", (self.STAGE_PREFIX + identity_key(identity),))
