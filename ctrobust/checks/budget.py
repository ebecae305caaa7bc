"""What the checks may cost: a share of the run's final attacks declared in the plan (``check_budget``).

The sizes of the checks (the reference sample of the budget sweep, the survivors re-attacked, the binarization
samples) follow from that share and from the run's own outcomes: how many points each arm's final attack
attacked and how many survived. They never come from the progress bar's estimates, so one plan on one model
and data gives one set of sizes, and so one set of verdicts; the share is part of the run's identity.

Work is counted as the attacks' registry entries count it (``ctrobust.attacks.cost.attack_work``: images
through the model, a back-propagated one counted as three). The sized checks take the budget in order
(the reference sample, which can change the reported numbers, first), each up to its full size; a check
whose share is below the minimum a verdict needs is NOT RUN with the reason. Each check's claim counts
whether used or not, so every size only grows with the budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ctrobust.attacks.cost import attack_work
from ctrobust.attacks.registry import REFERENCE_ATTACK, REFERENCE_SCALE_FREE_ATTACK
from ctrobust.attacks.spec import AttackSpec
from ctrobust.checks.gradient_fidelity import N_POINTS as GRADIENT_POINTS
from ctrobust.results.evidence import BUDGET_FACTORS
from ctrobust.threats import ThreatModel

REFERENCE_STEPS = 20  # the reference attack: APGD-CE with 20 steps at 1x eps (APGD-DLR beside it), and at 2x, 4x, 8x eps
STATS_SAMPLE = 200  # clean logits and input gradients
GRAD_UNITS = 3.0  # a back-propagated image, in forward images (as attacks/cost.py counts)
# (full size, minimum for a verdict) of each sized check, in the order they claim the budget
SIZED = {"budget sweep": (100, 10), "re-attack": (100, 10), "binarization": (100, 20)}
PER_ARM = ("budget sweep", "logit statistics", "gradient fidelity")  # checks run once on each arm


@dataclass(frozen=True)
class CheckSizes:
    """The checks' sizes for one run, the budget they came from, and what did not fit."""

    share: float
    budget: float  # work units the checks may spend
    planned: float  # work units these sizes cost
    reference_points: int  # budget sweep and reference check
    reattack_points: int  # CT's survivors attacked again (0: not applicable or not affordable)
    binarization_samples: int  # 0: NOT RUN
    skipped: dict[str, str] = field(default_factory=dict)
    # work units of one pass of each check, as the checks name themselves (per arm where a check runs per arm):
    # the progress bar revises what is left after each, not kept with the result
    parts: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "parts"}


def final_attack_work(final: AttackSpec, n: int, arms: list[tuple[int, int]], n_classes: int,
                      threat: ThreatModel) -> float:
    """The work the final attacks did: one (clean-correct, still robust) count pair per arm that was attacked."""
    return sum(attack_work(final, n, clean / max(n, 1), robust / max(n, 1), n_classes, threat=threat)
               for clean, robust in arms)


def _per_unit(final: AttackSpec, threat: ThreatModel, binarized_per_sample: float) -> dict[str, float]:
    """Work of one point (one sample) of each sized check."""
    reference = AttackSpec(REFERENCE_ATTACK, steps=REFERENCE_STEPS)
    per_factor = attack_work(reference, 1, 1.0, 1.0, threat=threat)
    scale_free = attack_work(AttackSpec(REFERENCE_SCALE_FREE_ATTACK, steps=REFERENCE_STEPS), 1, 1.0, 1.0, threat=threat)
    doubled = AttackSpec(final.name, steps=2 * (final.steps or 1), restarts=final.restarts, step_size=final.step_size)
    reattack = attack_work(doubled, 1, 1.0, 1.0, threat=threat) if final.entry.reattack else 0.0
    return {"budget sweep": 2 * (len(BUDGET_FACTORS) * per_factor + scale_free),  # both arms
            "re-attack": reattack,  # CT only
            "binarization": 2 * binarized_per_sample}  # both arms, the same samples


def size_checks(share: float, final: AttackSpec, final_work: float, n_eval: int, ct_survivors: int,
                binarized_per_sample: float, binarization_reason: str, threat: ThreatModel) -> CheckSizes:
    """The checks' sizes for a run whose final attacks did ``final_work``.

    ``binarized_per_sample``: the binarization test's work per sample and arm (0: it cannot run, and
    ``binarization_reason`` says why).
    """
    budget = share * final_work
    stats, fidelity = min(STATS_SAMPLE, n_eval) * GRAD_UNITS, GRADIENT_POINTS * (GRAD_UNITS + 2)
    fixed = 2 * (stats + fidelity) + n_eval
    per = _per_unit(final, threat, binarized_per_sample)
    full = {"budget sweep": min(SIZED["budget sweep"][0], n_eval),
            "re-attack": min(SIZED["re-attack"][0], ct_survivors) if per["re-attack"] else 0,
            # a sample per 5 evaluation points, between the minimum and the full 100: it scales down with n
            "binarization": min(SIZED["binarization"][0], max(SIZED["binarization"][1], n_eval // 5))
            if per["binarization"] else 0}
    available = budget - fixed
    sizes: dict[str, int] = {}
    for check, (_, minimum) in SIZED.items():  # in order: each has first claim on the budget up to its full size
        claim = min(full[check] * per[check], max(available, 0.0))
        size = min(full[check], int(claim // per[check])) if per[check] else 0
        sizes[check] = size if size >= min(minimum, full[check]) else 0
        available -= full[check] * per[check]  # claimed whether used or not: sizes only grow with the budget

    def cost(chosen: dict[str, int]) -> float:
        return sum(chosen[c] * per[c] for c in SIZED)

    skipped: dict[str, str] = {}
    if not per["binarization"]:
        skipped["binarization"] = binarization_reason
    for check, (_, minimum) in SIZED.items():
        if full[check] and not sizes[check]:
            need = min(minimum, full[check])
            skipped[check] = (f"the check budget ({100 * share:g}% of the final attacks' work) cannot afford the "
                              f"{need} {'samples' if check == 'binarization' else 'points'} it needs after the checks "
                              "before it; raise --check-budget to run it")
    planned = fixed + cost(sizes)
    parts = {"transfer": float(n_eval), "budget sweep": sizes["budget sweep"] * per["budget sweep"] / 2,
             "logit statistics": stats, "gradient fidelity": fidelity,
             "re-attack": sizes["re-attack"] * per["re-attack"], "binarization": sizes["binarization"] * per["binarization"]}
    return CheckSizes(share, budget, planned, sizes["budget sweep"], sizes["re-attack"], sizes["binarization"],
                      skipped, parts)
