"""Arrays kept in the store (the base model's adversarial examples, AutoAttack's unfinished stages) as
compressed blobs behind their checksum, and the audits of runs (``ctrobust audit-attack``) as JSON."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ctrobust.identity import identity_key
from ctrobust.results.store.database import StoreFile, first_line, log


class DamagedArtifact(Exception):
    """A stored blob whose checksum or contents are wrong."""


_MAGIC = b"ctrobust-npz/sha256\n"


def pack(arrays: dict[str, Any]) -> bytes:
    """Arrays as a compressed .npz blob behind its SHA-256 (the base model's adversarial examples,
    AutoAttack's stages), so damage is found before the arrays are used."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    return _MAGIC + hashlib.sha256(data).digest() + data


def unpack(blob: bytes) -> dict[str, Any]:
    """The arrays of a blob from :func:`pack` (or an older one without a checksum); DamagedArtifact otherwise."""
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
        raise DamagedArtifact(first_line(exc)) from None


class AuditRows(StoreFile):
    """The audits of stored runs, one per run and settings."""

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
                log.warning("warning: the stored audit %s is unreadable (%s): left out", key, first_line(exc))
                continue
            if isinstance(audit, dict):
                out.append(audit)
        return out
