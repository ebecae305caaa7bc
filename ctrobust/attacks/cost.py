"""How much work an attack will do, in the units :class:`ctrobust.stages.progress.WorkMeter` counts.

A unit is one image through the model; a pass that is back-propagated counts GRAD_WEIGHT units.
Attacks after AutoAttack's first one only see the points still robust, so their work follows the
robust fraction, which the caller estimates (from the selection curve) and then learns as each attack
ends. ``TIME_FACTOR`` scales attacks whose own bookkeeping costs time beyond the model's passes (FAB's
projections, Square's small forward-only batches), so that units stay proportional to seconds and the bar's ETA holds; the
factors were
measured on the shipped model (see benchmarks/RESULTS.md, "Progress and ETA").
"""

from __future__ import annotations

from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.attacks.registry import GRAD_WEIGHT
from ctrobust.attacks.spec import AttackSpec
from ctrobust.threats import ThreatModel

AA_ITERATIONS = 100
SQUARE_QUERIES = {"standard": 5000, "plus": 5000, "rand": 0}
AUTOATTACK_ATTACKS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
TIME_FACTOR = {"fab-t": 1.5, "fab": 1.5, "square": 1.5}


def autoattack_attack_work(attack: str, points: int, n_classes: int = 10, version: str = "standard", *,
                           threat: ThreatModel) -> float:
    """Units one AutoAttack attack spends on ``points`` points (the robust ones when it starts), with AutoAttack's
    settings for the norm (``NormBall.autoattack``: L1 runs APGD-CE with 5 restarts and APGD-T with 5 targets)."""
    settings = NORM_BALLS[threat].autoattack
    apgd_targets = settings.apgd_targets if version == "standard" else 9
    targets = min(apgd_targets, max(n_classes - 1, 1))
    fab_targets = min(settings.fab_targets, max(n_classes - 1, 1))
    restarts = 5 if version == "plus" and attack in ("apgd-ce", "apgd-dlr", "fab") else 1
    if version == "standard" and attack == "apgd-ce":
        restarts = settings.apgd_restarts
    eot = 20 if version == "rand" else 1
    per_point = {
        "apgd-ce": (AA_ITERATIONS + 2) * GRAD_WEIGHT * restarts * eot,
        "apgd-dlr": (AA_ITERATIONS + 2) * GRAD_WEIGHT * restarts * eot,
        "apgd-t": targets * (AA_ITERATIONS + 2) * GRAD_WEIGHT,
        "fab-t": fab_targets * AA_ITERATIONS * (GRAD_WEIGHT + 1),
        "fab": restarts * AA_ITERATIONS * (GRAD_WEIGHT + 1),
        "square": SQUARE_QUERIES.get(version, 5000),
    }.get(attack, (AA_ITERATIONS + 2) * GRAD_WEIGHT)
    return points * per_point * TIME_FACTOR.get(attack, 1.0)


def autoattack_remaining(version: str, attack: str, started: bool, points_left: int, n_classes: int = 10,
                         expected_survivors: int | None = None, *, threat: ThreatModel) -> float:
    """Work left in an AutoAttack run when ``attack`` is about to start (``started``) or has just ended.

    While the first attack runs, the points the later attacks will see are not known yet: they are
    ``expected_survivors`` (the caller's estimate), or ``points_left`` when there is none.
    """
    order = AUTOATTACK_ATTACKS.get(version, AUTOATTACK_ATTACKS["standard"])
    name = attack.lower()
    later = points_left if expected_survivors is None else min(points_left, expected_survivors)
    if name not in order:
        return sum(autoattack_attack_work(a, points_left, n_classes, version, threat=threat) for a in order)
    if started:
        now = autoattack_attack_work(name, points_left, n_classes, version, threat=threat)
        after = order[order.index(name) + 1:]
        left_after = later if name == order[0] else points_left
        return now + sum(autoattack_attack_work(a, left_after, n_classes, version, threat=threat) for a in after)
    return sum(autoattack_attack_work(a, points_left, n_classes, version, threat=threat)
               for a in order[order.index(name) + 1:])


def autoattack_work(spec: AttackSpec, correct: float, survivors: float, n: int, n_classes: int,
                     threat: ThreatModel) -> float:
    checks = 3.0 * min(n, 500)  # AutoAttack's checks of the model on its first batch
    first, *rest = AUTOATTACK_ATTACKS.get(spec.version, AUTOATTACK_ATTACKS["standard"])
    work = autoattack_attack_work(first, round(correct), n_classes, spec.version, threat=threat)
    return checks + work + sum(autoattack_attack_work(a, round(survivors), n_classes, spec.version, threat=threat)
                               for a in rest)


def pgd_work(spec: AttackSpec, correct: float, survivors: float, n: int, n_classes: int, threat: ThreatModel) -> float:
    return correct * ((spec.steps or 20) * GRAD_WEIGHT + 1) * spec.restarts  # then one forward per restart


def apgd_work(spec: AttackSpec, correct: float, survivors: float, n: int, n_classes: int, threat: ThreatModel
               ) -> float:
    return correct * ((spec.steps or 20) + 2) * GRAD_WEIGHT * spec.restarts


def attack_work(spec: AttackSpec, n: int, clean_fraction: float, robust_fraction: float, n_classes: int = 10, *,
                threat: ThreatModel) -> float:
    """Estimated units of one evaluation: the clean pass, the attack, and the re-check of candidates."""
    fixed = 2.0 * n  # clean predictions and the re-check of the candidates
    work = spec.entry.load(spec.entry.work)
    return fixed + work(spec, n * clean_fraction, n * robust_fraction, n, n_classes, threat)
