"""Finished runs in the store, each checked against its own numbers and its final cells when read; and the
units of a run that failed on an executor."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ctrobust.errors import CtrobustError
from ctrobust.identity import identity_key
from ctrobust.results.consistency import run_problem
from ctrobust.results.store.database import StoreFile, first_line, log, now

if TYPE_CHECKING:
    from ctrobust.results.result import RunResult


class RunRows(StoreFile):
    """Runs: stored once under their identity, read back only when they pass their checks."""

    def count_runs(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def get_run(self, identity: dict[str, Any]) -> RunResult | None:
        """The stored run of this identity, if there is one and it passes its checks."""
        if not self._exists():
            return None
        row = self._db.execute("SELECT key, result, command, base_robust, ct_robust FROM runs WHERE key = ?",
                               (identity_key(identity),)).fetchone()
        return self._checked_run(row) if row else None

    def put_run(self, result: RunResult, replace: bool = False) -> bool:
        """Store a finished run under its identity (with the command that made it) unless it is there already;
        ``replace``: over a stored one whose cells were found made by another model."""
        values = (
            identity_key(result.identity), json.dumps(result.identity, sort_keys=True),
            result.model, result.dataset, result.threat.value, result.protocol.value, result.attack,
            result.seed, result.n_examples, result.beta, result.base.robust_accuracy, result.ct.robust_accuracy,
            json.dumps(result.to_dict()), result.command, now(),
        )
        with self._transaction():
            verb = "REPLACE" if replace else "IGNORE"
            cur = self._db.execute(f"INSERT OR {verb} INTO runs VALUES ({','.join('?' * len(values))})", values)
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
                        self.path, first_line(exc))
            return None
        columns = (base_robust, ct_robust) if isinstance(base_robust, float | int) and isinstance(
            ct_robust, float | int) else (float("nan"), float("nan"))
        cells = {arm: self._cell_outcomes(cell_key) for arm, cell_key in run.final_cells.items()}
        try:
            problem = run_problem(run, columns, cells)
        except Exception as exc:  # noqa: BLE001 - outcomes of the wrong shape or type
            problem = f"its outcomes are malformed ({first_line(exc)})"
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

    def put_failure(self, identity: dict[str, Any], unit: str, error: str, executor: str) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
                             (identity_key(identity), unit, error, executor, now()))

    def failures(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT unit, error, executor, created FROM failures ORDER BY created")
        return [dict(zip(("unit", "error", "executor", "created"), row)) for row in cur.fetchall()]


def _run_result(text: str, command: str | None) -> RunResult:
    from ctrobust.results.result import RunResult

    data = json.loads(text)
    return RunResult.from_dict({**data, "command": command or data.get("command")})


def select_runs(store: RunRows, model: str | None = None, dataset: str | None = None,
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
