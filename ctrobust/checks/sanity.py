"""Checks against weak attacks (gradient masking) for every norm-bounded run (Linf, L2, L1).

Smoothing activations could weaken the gradients an attack follows instead of adding robustness; a
reader of a CT result will ask. Four checks, each a line in the terminal, a field in result.json and
a row in the HTML report:

- transfer: the base model's adversarial examples scored on CT. CT's reported robust accuracy
  counts a point robust only if it survives both its own white-box attack and the transferred
  example (the worst case per point, as AutoAttack takes across its attacks). Transfer finding more
  than the white-box attack is a warning sign.
- budget sweep: APGD-CE at 2x, 4x and 8x eps on a sample of the evaluation points must drive robust
  accuracy to near 0 for both models; a model that stays robust far outside its budget is hiding
  its gradients, not robust.
- clean logits and input gradients: logit scale, margin, and the input-gradient norm of the loss
  (mean, median, share of near-zero gradients) for base and CT.
- AutoAttack's per-attack breakdown, and a warning when a gain rests on plain PGD alone.

And the evidence that the reported attack itself worked, on each arm (docs/results.md):

- AutoAttack's own warnings about the model (randomised, probabilities, zero gradients, Square
  beating the gradient attacks), adversarial examples the re-check rejected, points no attack
  attempted, and PGD's silent successes (kept, and counted);
- the reference attack: the budget sweep's APGD-CE at 1x eps on the same points; where it breaks
  significantly more points than the reported attack (exact McNemar), the reported attack is weaker
  than a 20-step APGD-CE; its extra breaks always count as not robust (the worst case per point);
- incomplete optimisation (pgd / apgd-ce): CT's survivors attacked again with twice the steps;
- gradient fidelity: autograd's directional derivative against a finite difference;
- the binarization test (:mod:`ctrobust.checks.binarization`) on CT at the chosen beta and on the
  original model, with the same samples and planted points.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctrobust.attacks.evaluation import attack_and_check
from ctrobust.attacks.registry import REFERENCE_ATTACK, REFERENCE_SCALE_FREE_ATTACK
from ctrobust.attacks.runners import count_classes
from ctrobust.attacks.spec import AttackSpec
from ctrobust.cell import Arm
from ctrobust.checks import binarization
from ctrobust.checks.budget import PER_ARM, REFERENCE_STEPS, STATS_SAMPLE, CheckSizes
from ctrobust.checks.gradient_fidelity import gradient_fidelity
from ctrobust.ct.arm import BASE_BETA, arm_label
from ctrobust.results.evidence import (
    BUDGET_FACTORS,
    REFERENCE_P,
    AttackEvidence,
    Binarization,
    BudgetSweep,
    LogitStats,
    ReAttack,
    Reference,
    SanityReport,
    Transfer,
)
from ctrobust.results.stats import mcnemar_exact
from ctrobust.threats import ThreatModel

BUDGET_STEPS = REFERENCE_STEPS
ZERO_GRADIENT = 1e-10  # an input-gradient norm below this counts as zero


def transfer_check(ct: nn.Module, x: torch.Tensor, y: torch.Tensor, adversarial: dict[str, Any] | None,
                   ct_robust: Sequence[int], batch_size: int, device: torch.device) -> tuple[list[int], Transfer]:
    """CT's per-point robustness against both its own attack and the base model's adversarial examples."""
    robust = [int(v) for v in ct_robust]
    if adversarial is None or len(adversarial["indices"]) == 0:
        share = sum(robust) / max(len(robust), 1)
        return robust, Transfer(0, 0, 0, share, share)
    indices = torch.as_tensor(adversarial["indices"], dtype=torch.long)
    images = torch.as_tensor(adversarial["images"])
    preds = []
    ct.eval()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            preds.append(ct(images[i: i + batch_size].to(device)).argmax(1).cpu())
    fooled = torch.cat(preds) != y[indices].cpu()
    combined = list(robust)
    transfer_only = 0
    for position, was_fooled in zip(indices.tolist(), fooled.tolist(), strict=True):
        if was_fooled and combined[position]:
            combined[position] = 0
            transfer_only += 1
    n = max(len(robust), 1)
    return combined, Transfer(len(indices), int(fooled.sum()), transfer_only, sum(robust) / n, sum(combined) / n)


def budget_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float, seed: int,
                 batch_size: int, device: torch.device) -> tuple[dict[str, float], list[int], str]:
    """Robust accuracy under APGD-CE at multiples of eps (should fall to about 0 beyond 1x), and the
    per-point outcomes at 1x of the reference attack: APGD-CE and, where the model has three classes or
    more, APGD-DLR, whose loss no scale of the logits flattens (a point is robust only if robust to both);
    with the reference's name."""
    spec = AttackSpec(REFERENCE_ATTACK, steps=BUDGET_STEPS)
    fractions, at_eps = {}, []
    for f in BUDGET_FACTORS:
        res = attack_and_check(model, x, y, threat, eps * f, spec, seed, batch_size, device)
        fractions[str(f)] = res.robust_accuracy
        if f == 1:
            at_eps = res.robust_correct.int().tolist()
    if len(x) == 0 or count_classes(model, x[:1].to(device)) < 3:
        return fractions, at_eps, "APGD-CE"
    scale_free = AttackSpec(REFERENCE_SCALE_FREE_ATTACK, steps=BUDGET_STEPS)
    res = attack_and_check(model, x, y, threat, eps, scale_free, seed, batch_size, device)
    return fractions, worst_case(at_eps, res.robust_correct.int().tolist()), "APGD-CE+DLR"


def reference_check(reported: Sequence[int], reference: Sequence[int], attack: str = "APGD-CE") -> Reference:
    """The reported attack's per-point outcomes against the reference attack's, on the same points."""
    test = mcnemar_exact(list(reported), list(reference))
    # mcnemar_exact(a, b): only_base = robust under a only = broken by the reference alone
    return Reference(len(reported), BUDGET_STEPS, test.only_base, test.only_ct, test.p_value,
                     test.only_base > test.only_ct and test.p_value < REFERENCE_P, attack)


def worst_case(robust: Sequence[int], reference: Sequence[int]) -> list[int]:
    """Per point, robust only if robust under both attacks (on the points the reference attacked)."""
    out = [int(v) for v in robust]
    for i, r in enumerate(reference):
        out[i] = out[i] & int(r)
    return out


def logit_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> LogitStats:
    """Scale and margin of the clean logits, and the norm of the loss's gradient with respect to the input."""
    model.eval()
    xs = x.to(device).clone().requires_grad_(True)
    logits = model(xs)
    loss = F.cross_entropy(logits, y.to(device), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xs)
    top2 = logits.detach().topk(2, dim=1).values
    norms = grad.flatten(1).norm(dim=1).cpu()
    margins = (top2[:, 0] - top2[:, 1]).cpu()
    spread = logits.detach().double().std(dim=1).cpu()  # the logits' scale, per point
    return LogitStats(float(top2[:, 0].mean()), float(margins.mean()), float(margins.median()), float(norms.mean()),
                      float(norms.median()), float((norms < ZERO_GRADIENT).float().mean()), float(spread.median()))


class _Clock:
    """Adds the seconds spent in each ``with clock(name):`` block to ``sink[name]``."""

    def __init__(self, sink: dict[str, float]) -> None:
        self.sink = sink

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sink[name] = round(self.sink.get(name, 0.0) + time.perf_counter() - start, 3)


def _evidence(summary: dict[str, Any]) -> AttackEvidence:
    return AttackEvidence(list(summary.get("autoattack_flags") or []), int(summary.get("rejected_adversarials") or 0),
                          int(summary.get("unattacked_points") or 0), summary.get("silent_successes"),
                          bool(summary.get("randomised")))


class _Isolated:
    """Runs each check so that it can never take the run down: an exception inside a check is recorded as that
    check NOT RUN, with the reason, and one warning line naming it; the run's numbers are written as always.
    (Ctrl-C is not caught: it still stops the run, with what was finished kept in the store.)"""

    def __init__(self, report: SanityReport, clock: _Clock, parts: dict[str, float] | None = None,
                 on_part: Callable[[float, float], None] | None = None) -> None:
        self.report, self.clock = report, clock
        # what each check was planned to cost (see CheckSizes.parts): as each starts, ``on_part`` hears its work
        # and the work of the checks after it
        self.parts, self.on_part = parts or {}, on_part
        self.left = sum(self.parts.values()) + sum(v for k, v in self.parts.items() if k in PER_ARM)

    @contextmanager
    def __call__(self, check: str, timing: str | None = None) -> Iterator[None]:
        units = self.parts.get(check, 0.0)
        self.left = max(self.left - units, 0.0)
        if self.on_part is not None and check in self.parts:
            self.on_part(units, self.left)
        try:
            with self.clock(timing or check):
                yield
        except Exception as exc:  # noqa: BLE001 - any failure of a check is that check's, never the run's
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
            self.report.not_run.setdefault(check, f"crashed ({reason})")
            self.report.warnings.append(f"the {check} check could not run on this model and is missing from the "
                                        f"evidence ({reason}); the run's numbers are unaffected")


def run_sanity_checks(ct: Any, beta: float, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float,
                      seed: int, batch_size: int, device: torch.device, base_adversarial: dict[str, Any] | None,
                      base: Arm, ct_arm: Arm, final: AttackSpec, sizes: CheckSizes,
                      on_part: Callable[[float, float], None] | None = None
                      ) -> tuple[list[int], list[int], SanityReport]:
    """All checks for one run; returns the base model's and CT's worst-case per-point robustness, and the report.

    ``sizes``: how many points each sized check takes (:mod:`ctrobust.checks.budget`); a check given none is
    NOT RUN with the budget's reason. Each check is isolated: one that cannot run on this model is recorded
    in ``report.not_run`` with its reason. ``on_part``: told, as each check starts, its planned work and that of
    the checks after it (the progress bar's revisions inside the stage).
    """
    report = SanityReport(sizes=sizes.to_dict())
    report.not_run.update({check: why for check, why in sizes.skipped.items() if check != "binarization"})
    clock = _Clock(report.seconds)
    isolated = _Isolated(report, clock, sizes.parts, on_part)
    ct.beta = beta
    combined = list(ct_arm.robust)
    with isolated("transfer"):
        combined, report.transfer = transfer_check(ct, x, y, base_adversarial, ct_arm.robust, batch_size, device)
    sample = slice(0, min(sizes.reference_points, len(x)))
    stats = slice(0, min(STATS_SAMPLE, len(x)))
    report.budget = BudgetSweep(sample.stop, BUDGET_STEPS) if sample.stop else None
    worst = {"base": list(base.robust), "ct": combined}
    for name, b, arm in (("base", 1.0, base), ("ct", beta, ct_arm)):
        ct.beta = b
        report.attack_evidence[name] = _evidence(arm.summary)
        if report.budget is not None:  # else NOT RUN: the check budget's reason is in report.not_run
            with isolated("budget sweep", "budget"):
                fractions, at_eps, reference = budget_sweep(ct, x[sample], y[sample], threat, eps, seed, batch_size,
                                                            device)
                report.budget.arm(name).update(fractions)
                report.reference[name] = reference_check(arm.robust[sample], at_eps, reference)
                worst[name] = worst_case(worst[name], at_eps)
        with isolated("logit statistics", "gradients"):
            report.logits[name] = logit_stats(ct, x[stats], y[stats], device)
        with isolated("gradient fidelity", "gradients"):
            report.gradients[name] = gradient_fidelity(ct, x, y, threat, eps, device)
    if "budget sweep" in report.not_run:  # one arm's sweep alone would read as a result: keep neither
        report.budget, report.reference = None, {}
    ct.beta = beta
    if final.entry.reattack and sizes.reattack_points:
        with isolated("re-attack", "incomplete"):
            worst["ct"], report.incomplete = _reattack_survivors(ct, x, y, threat, eps, final, seed, batch_size,
                                                                 device, worst["ct"], sizes.reattack_points)
    with isolated("binarization"):
        eligible = [i for i, (b, c) in enumerate(zip(base.clean, ct_arm.clean, strict=True)) if b and c]
        report.binarization = _binarization(ct, beta, x, threat, eps, final, seed, batch_size, device,
                                            sizes.binarization_samples, sizes.skipped.get("binarization", ""),
                                            eligible, _phases(on_part, isolated.left))
        if not report.binarization.arms:
            report.not_run.setdefault("binarization", report.binarization.note or "no sample points")
    if "binarization" in report.not_run and report.binarization is None:
        report.binarization = Binarization(note=report.not_run["binarization"])
    ct.beta = beta
    base_after, ct_after = base.summary.get("robust_accuracy_after"), ct_arm.summary.get("robust_accuracy_after")
    if base_after and ct_after:
        report.breakdown = {"base": base_after, "ct": ct_after}
    return worst["base"], worst["ct"], report


def _reattack_survivors(ct: Any, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float,
                        final: AttackSpec, seed: int, batch_size: int, device: torch.device,
                        robust: list[int], points: int) -> tuple[list[int], ReAttack]:
    """Up to ``points`` of CT's survivors attacked again with twice the steps (same seed)."""
    survivors = [i for i, r in enumerate(robust) if r][:points]
    doubled = AttackSpec(final.name, steps=2 * (final.steps or 20), restarts=final.restarts,
                         step_size=final.step_size)
    info = ReAttack(doubled.steps or 0, len(survivors), 0)
    if not survivors:
        return robust, info
    idx = torch.tensor(survivors)
    res = attack_and_check(ct, x[idx], y[idx], threat, eps, doubled, seed, batch_size, device)
    out = list(robust)
    for position, still in zip(survivors, res.robust_correct.tolist(), strict=True):
        if not still:
            out[position] = 0
            info.broken += 1
    return out, info


def _phases(on_part: Callable[[float, float], None] | None, after: float
            ) -> Callable[[str, str, dict[str, float]], None] | None:
    """The binarization test's phases as parts for the bar: (arm, phase, units of each phase for the arms'
    samples) -> ``on_part(phase units, units of the later phases and of the checks after the test)``."""
    if on_part is None:
        return None

    def tell(arm: str, phase: str, units: dict[str, float]) -> None:
        order = [(a, p) for a in BINARIZATION_ARMS for p in units]
        later = order[order.index((arm, phase)) + 1 :]
        on_part(units[phase], sum(units[p] for _a, p in later) + after)
    return tell


BINARIZATION_ARMS = ("ct", "base")  # the order the test runs its arms in


def _binarization(ct: Any, beta: float, x: torch.Tensor, threat: ThreatModel, eps: float, final: AttackSpec,
                  seed: int, batch_size: int, device: torch.device, m: int, skipped: str,
                  eligible: list[int], on_phase: Callable[[str, str, dict[str, float]], None] | None = None
                  ) -> Binarization:
    """The binarization test on both arms, with the same samples and planted points; CT runs only at ``beta``.

    Samples are drawn from the points both arms classify correctly: the only points whose robustness
    an attack could overstate. None: NOT RUN (both robust accuracies are 0 on the other points anyway).
    """
    if not eligible:
        return Binarization(note="no evaluation point is classified correctly by both arms: nothing for a weak "
                            "attack to overstate")
    attack = binarization.binarized_attack(final, threat, seed)
    if isinstance(attack, str):  # the attack's entry says it cannot run on a two-class model
        return Binarization(note=attack)
    if not m:  # the check budget does not afford the samples a verdict needs
        return Binarization(note=skipped)
    planted = binarization.plant(x, binarization.sample_positions(eligible, m, seed), threat, eps, seed)
    arms = {}
    units = {phase: len(planted.positions) * w for phase, w in binarization.phase_work(final, threat).items()}
    for name in BINARIZATION_ARMS:
        ct.beta = beta if name == "ct" else BASE_BETA
        label = f"CT beta={beta:.2f}" if name == "ct" else arm_label(BASE_BETA, "ascii")  # the CT arm's role

        def tell(phase: str, arm: str = name) -> None:
            if on_phase is not None:
                on_phase(arm, phase, units)
        arms[name] = binarization.run_arm(ct, planted, threat, eps, final, seed, batch_size, device, label, tell)
    ct.beta = beta
    return Binarization(arms, attack.note, binarization.compare_arms(arms["base"], arms["ct"]), len(planted.positions),
                        binarization.N_INNER + 1, seed)
