"""The final attack on both arms, AutoAttack one attack at a time, with a table that sharpens.

AutoAttack's first attack (APGD-CE) decides almost every point; the three after it run on the few
survivors and take most of the time. Run whole, arm after arm, the user sees no number until both
arms are done. Here each of AutoAttack's attacks runs on the original model and on CT before the
next one starts, and after each the points still robust give each arm's robust accuracy as an upper
bound (later attacks can only lower it) and the paired gain on the same points: printed, handed to
``on_provisional`` (``ctrobust.run`` passes it through for a notebook), and stored, so Ctrl-C keeps
every finished attack and the same command resumes at the next one. The final numbers are those of
one ``run_standard_evaluation`` call per arm (:mod:`ctrobust.attacks.staged`).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ctrobust.attacks.cost import TIME_FACTOR, autoattack_remaining
from ctrobust.attacks.evaluation import EvalResult, Prepared, prepare
from ctrobust.attacks.runners import autoattack_extra, count_classes
from ctrobust.attacks.spec import AttackSpec
from ctrobust.attacks.staged import StagedAutoAttack, StageState
from ctrobust.ct.arm import BASE_BETA, arm_label, is_base
from ctrobust.models.fingerprint import SplitBehaviour
from ctrobust.results.stats import PairedGain, paired_gain
from ctrobust.results.store import Store
from ctrobust.stages.progress import RunProgress, log
from ctrobust.threats import ThreatModel


@dataclass(frozen=True)
class Provisional:
    """Both arms after one of AutoAttack's attacks: robust accuracy as an upper bound, and the gain.

    ``final`` is True after the last attack: AutoAttack's own counts, before ctrobust's re-check of every
    adversarial example (a rejected one makes its point robust again, with a warning) and before the
    sanity checks (which can only lower them).
    """

    after: str  # the attack just finished, e.g. "apgd-ce"
    stage: int  # 1-based
    stages: int
    n: int
    robust: dict[float, int]  # beta -> points still robust (1.0: the original model)
    gain: PairedGain | None  # CT minus base on the same points; None with one arm

    @property
    def final(self) -> bool:
        return self.stage == self.stages

    def robust_accuracy(self, beta: float) -> float:
        return self.robust[beta] / self.n if self.n else 0.0

    @property
    def bound(self) -> str:
        return "AutoAttack's count" if self.final else "upper bound"

    def lines(self) -> list[str]:
        head = f"after {self.after.upper()} ({self.stage} of {self.stages} AutoAttack attacks; {self.bound}"
        head += ")" if self.final else ": the attacks still to run can only lower it)"
        out = [head]
        for beta in sorted(self.robust, reverse=True):
            name = arm_label(beta)
            out.append(f"  {name:<12} {100 * self.robust_accuracy(beta):6.2f}%  ({self.robust[beta]}/{self.n})")
        if self.gain is not None:
            out.append(f"  gain         {self.gain.describe()}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{arm_label(b, 'html')}</td>"
            f"<td>{100 * self.robust_accuracy(b):.2f}%</td><td>{self.robust[b]}/{self.n}</td></tr>"
            for b in sorted(self.robust, reverse=True))
        gain = f"<p>gain: {html.escape(self.gain.describe())}</p>" if self.gain is not None else ""
        return (f"<p>After {self.after.upper()} ({self.stage} of {self.stages}; {self.bound})</p>"
                f"<table><tr><th>arm</th><th>robust accuracy</th><th>points</th></tr>{rows}</table>{gain}")


OnProvisional = Callable[[Provisional], None]


@dataclass
class FinalArm:
    """One arm of the final attack: its beta, the model attacked, and the cell identity its stages are kept under."""

    beta: float
    model: nn.Module
    identity: dict[str, Any] | None
    cost: float = 1.0  # seconds per unit of this model relative to the original model (the bar's units)
    expected_survivors: int | None = None  # points the attacks after the first will see (estimate)
    behaviour: SplitBehaviour | None = None  # the model's on the points: a stored stage of another is not resumed


def staged_autoattack(arms: list[FinalArm], x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float,
                      spec: AttackSpec, seed: int, batch_size: int, device: torch.device, store: Store | None,
                      progress: RunProgress, on_provisional: OnProvisional | None = None) -> dict[float, EvalResult]:
    """AutoAttack on every arm, one attack at a time across arms; each arm's checked result by beta."""
    prepared: dict[float, Prepared] = {}
    runs: dict[float, StagedAutoAttack] = {}
    spent = {arm.beta: 0.0 for arm in arms}
    for arm in arms:
        start = time.perf_counter()
        with progress.meter.watching(arm.model):
            prepared[arm.beta] = p = prepare(arm.model, x, y, threat, eps, spec, seed, batch_size, device)
            stored = store.get_stage(arm.identity) if store is not None and arm.identity is not None else None
            state = _resumable(StageState.from_arrays(stored, p.x.device), arm, y) if stored is not None else None
            runs[arm.beta] = StagedAutoAttack(arm.model, p.x, p.y, eps, threat, count_classes(arm.model, p.x), seed,
                                              batch_size, spec.version, state)
            if state is not None:
                log.info("resuming %s's AutoAttack after %s (stored)", arm_label(arm.beta, "prose"),
                         ", ".join(state.done).upper())
        spent[arm.beta] += time.perf_counter() - start
    attacks = runs[arms[0].beta].attacks
    n = len(x)
    last: Provisional | None = None
    with _interruption_note(lambda: last, attacks):
        for k, attack in enumerate(attacks):
            for arm in arms:
                run = runs[arm.beta]
                if attack not in run.pending:
                    continue
                progress.meter.factor = TIME_FACTOR.get(attack, 1.0) * arm.cost
                progress.status(f"{attack.upper()} on {arm_label(arm.beta, 'prose')}: {run.robust_count} of {n} "
                                "still robust",
                                f"{attack.upper()} {arm_label(arm.beta, 'short')} {run.robust_count}/{n}")
                _revise(progress, arms, runs, spec.version)
                start = time.perf_counter()
                with progress.meter.watching(arm.model):
                    run.run_stage(attack)
                spent[arm.beta] += time.perf_counter() - start
                if store is not None and arm.identity is not None:
                    run.state.behaviour = None if arm.behaviour is None else arm.behaviour.to_dict()
                    store.put_stage(arm.identity, run.state.to_arrays())
            progress.meter.factor = 1.0
            last = _provisional(attack, k + 1, len(attacks), n, runs)
            log.info("%s", last)
            if on_provisional is not None:
                on_provisional(last)
    results = {}
    for arm in arms:
        p, start = prepared[arm.beta], time.perf_counter()
        with progress.meter.watching(arm.model):
            whole = runs[arm.beta].finish()
            # checked() adds the re-check's own time to the seconds it is given
            results[arm.beta] = p.checked(whole.x_adv, autoattack_extra(whole, p.x, p.y),
                                          spent[arm.beta] + time.perf_counter() - start)
    return results


def _resumable(state: StageState, arm: FinalArm, y: torch.Tensor) -> StageState | None:
    """A stored run of AutoAttack, if the model that made it behaves as this arm's on the points (a stage
    stored by an older ctrobust holds no behaviour and is trusted as before)."""
    stored = SplitBehaviour.from_dict(state.behaviour)
    if stored is None or arm.behaviour is None:
        return state
    labels = y.tolist()
    change = arm.behaviour.change_from(labels, [int(p == t) for p, t in zip(stored.predictions, labels)], stored)
    if change is None:
        return state
    log.warning("warning: the stored AutoAttack stages of %s were made by another model (%s on its images): "
                "starting it again", arm_label(arm.beta, "prose"), change)
    return None


def drop_stages(store: Store | None, identities: Iterable[dict[str, Any]]) -> None:
    """The cells are stored whole: their stages are no longer needed."""
    if store is not None:
        for identity in identities:
            store.drop_stage(identity)


def _provisional(attack: str, stage: int, stages: int, n: int, runs: dict[float, StagedAutoAttack]) -> Provisional:
    robust = {beta: run.robust_count for beta, run in runs.items()}
    gain = None
    if BASE_BETA in runs and len(runs) == 2:
        (ct_beta,) = [b for b in runs if not is_base(b)]
        gain = paired_gain(runs[BASE_BETA].state.robust.int().tolist(), runs[ct_beta].state.robust.int().tolist())
    return Provisional(attack, stage, stages, n, robust, gain)


def _revise(progress: RunProgress, arms: list[FinalArm], runs: dict[float, StagedAutoAttack], version: str) -> None:
    """The work left in the final attack before the next arm's next attack starts, from the points each
    arm has left now (and, before the first attack ends, the expected survivors)."""
    remaining = 0.0
    for arm in arms:
        run = runs[arm.beta]
        pending = run.pending
        if not pending:
            continue
        first = pending[0]
        left = run.robust_count
        expected = arm.expected_survivors if first == run.attacks[0] else None
        remaining += arm.cost * autoattack_remaining(version, first, True, left, run.num_classes, expected,
                                                     threat=run.threat)
    progress.revise_stage(remaining)


@contextmanager
def _interruption_note(last: Callable[[], Provisional | None], attacks: list[str]) -> Iterator[None]:
    """On Ctrl-C, say which bound the user has and where the same command resumes."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
            p = last()
            if p is None:
                note = "no AutoAttack attack had finished on both arms yet"
            else:
                bounds = ", ".join(f"{arm_label(b, 'ascii')} {100 * p.robust_accuracy(b):.2f}%"
                                   for b in sorted(p.robust, reverse=True))
                note = f"AutoAttack stopped after {p.after.upper()}, {p.bound}s: {bounds}"
                if p.gain is not None:
                    note += f", gain {p.gain.gain_points:+.2f} points [{p.gain.low:+.2f}, {p.gain.high:+.2f}]"
                if not p.final:
                    note += f"; the same command resumes at {attacks[p.stage].upper()}"
            exc.add_note(note)
        raise
