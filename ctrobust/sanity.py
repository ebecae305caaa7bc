"""Checks against weak attacks (gradient masking) for every Linf / L2 run.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctrobust.attacks.evaluation import evaluate
from ctrobust.attacks.spec import AttackSpec
from ctrobust.threats import ThreatModel

BUDGET_FACTORS = (2, 4, 8)
BUDGET_SAMPLE = 100
BUDGET_STEPS = 20
NEAR_ZERO_ROBUST = 0.02  # robust accuracy at 8x eps above this is a warning
STATS_SAMPLE = 200
ZERO_GRADIENT = 1e-10  # an input-gradient norm below this counts as zero


@dataclass
class SanityReport:
    """The checks' numbers and the warnings they raise."""

    transfer: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    logits: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"transfer": self.transfer, "budget": self.budget, "logits": self.logits,
                "breakdown": self.breakdown, "warnings": list(self.warnings)}

    def lines(self) -> list[str]:
        out = []
        t = self.transfer
        if t:
            out.append(f"transfer      base's {t['base_adversarials']} adversarial examples fool CT on "
                       f"{t['fooled_ct']}; {t['transfer_only']} of them survived CT's own attack "
                       f"(counted as not robust: CT {100 * t['white_box_robust']:.2f}% white-box -> "
                       f"{100 * t['combined_robust']:.2f}% worst case)")
        b = self.budget
        if b:
            cells = ", ".join(f"{f}x eps: base {100 * b['base'][str(f)]:.1f}% / CT {100 * b['ct'][str(f)]:.1f}%"
                              for f in BUDGET_FACTORS)
            out.append(f"budget sweep  APGD-CE on {b['n']} points, {cells}")
        for name in ("base", "ct"):
            s = self.logits.get(name)
            if s:
                out.append(f"logits {name:<6} max logit {s['max_logit_mean']:.2f}, margin median {s['margin_median']:.2f}, "
                           f"input-gradient norm mean {s['grad_norm_mean']:.3g} / median {s['grad_norm_median']:.3g}, "
                           f"{100 * s['zero_grad_share']:.1f}% near zero")
        if self.breakdown:
            steps = " -> ".join(f"{k} {100 * v:.1f}%" for k, v in self.breakdown.get("ct", {}).items())
            out.append(f"AutoAttack    CT after each attack: {steps}")
        out += [f"WARNING       {w}" for w in self.warnings]
        return out


def transfer_check(ct: nn.Module, x: torch.Tensor, y: torch.Tensor, adversarial: dict[str, Any] | None,
                   ct_robust: Sequence[int], batch_size: int, device: torch.device) -> tuple[list[int], dict[str, Any]]:
    """CT's per-point robustness against both its own attack and the base model's adversarial examples."""
    robust = [int(v) for v in ct_robust]
    if adversarial is None or len(adversarial["indices"]) == 0:
        return robust, {"base_adversarials": 0, "fooled_ct": 0, "transfer_only": 0,
                        "white_box_robust": sum(robust) / max(len(robust), 1),
                        "combined_robust": sum(robust) / max(len(robust), 1)}
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
    return combined, {"base_adversarials": len(indices), "fooled_ct": int(fooled.sum()),
                      "transfer_only": transfer_only, "white_box_robust": sum(robust) / n,
                      "combined_robust": sum(combined) / n}


def budget_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float, seed: int,
                 batch_size: int, device: torch.device) -> dict[str, float]:
    """Robust accuracy under APGD-CE at multiples of eps (should fall to about 0)."""
    spec = AttackSpec("apgd-ce", steps=BUDGET_STEPS)
    return {str(f): evaluate(model, x, y, threat, eps * f, spec, seed, batch_size, device).robust_accuracy
            for f in BUDGET_FACTORS}


def logit_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Scale and margin of the clean logits, and the norm of the loss's gradient with respect to the input."""
    model.eval()
    xs = x.to(device).clone().requires_grad_(True)
    logits = model(xs)
    loss = F.cross_entropy(logits, y.to(device), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xs)
    top2 = logits.detach().topk(2, dim=1).values
    norms = grad.flatten(1).norm(dim=1).cpu()
    margins = (top2[:, 0] - top2[:, 1]).cpu()
    return {"max_logit_mean": float(top2[:, 0].mean()), "margin_mean": float(margins.mean()),
            "margin_median": float(margins.median()), "grad_norm_mean": float(norms.mean()),
            "grad_norm_median": float(norms.median()), "zero_grad_share": float((norms < ZERO_GRADIENT).float().mean())}


def sanity_work(n_eval: int, clean: float) -> float:
    """Estimated work of the checks (progress units): the budget sweep's APGD-CE runs dominate."""
    from ctrobust.attacks.cost import attack_work
    from ctrobust.progress import GRAD_WEIGHT

    sample = min(BUDGET_SAMPLE, n_eval)
    sweep = 2 * len(BUDGET_FACTORS) * attack_work(AttackSpec("apgd-ce", steps=BUDGET_STEPS), sample, clean, clean)
    return sweep + GRAD_WEIGHT * min(STATS_SAMPLE, n_eval) * 2 + n_eval


def judge(report: SanityReport, gain_points: float, final_attack: str) -> None:
    """Add the warnings the numbers call for."""
    t = report.transfer
    if t and t["fooled_ct"] > 0 and t["transfer_only"] > 0:
        report.warnings.append(
            f"transfer from the base model fooled CT on {t['transfer_only']} points its own attack missed: "
            "CT's gradients may be misleading the white-box attack (those points are counted as not robust)")
    b = report.budget
    for name in ("base", "ct"):
        if b and b[name][str(BUDGET_FACTORS[-1])] > NEAR_ZERO_ROBUST:
            label = "the base model" if name == "base" else "CT"
            report.warnings.append(
                f"{label} keeps {100 * b[name][str(BUDGET_FACTORS[-1])]:.1f}% robust accuracy at "
                f"{BUDGET_FACTORS[-1]}x eps: a gradient attack that cannot break it far outside the budget points to "
                "gradient masking, not robustness")
    for name in ("base", "ct"):
        s = report.logits.get(name)
        if s and s["zero_grad_share"] > 0.5:
            label = "the base model" if name == "base" else "CT"
            report.warnings.append(f"{label}'s input gradients are near zero on {100 * s['zero_grad_share']:.0f}% of "
                                   "points: gradient attacks cannot work on it")
    if gain_points > 0 and final_attack.startswith("pgd"):
        report.warnings.append("the gain rests on plain PGD alone, which overstates the robustness of smooth models; "
                               "confirm it with --attack autoattack")


def run_sanity_checks(ct: Any, beta: float, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float,
                      seed: int, batch_size: int, device: torch.device, base_adversarial: dict[str, Any] | None,
                      ct_robust: Sequence[int], base_summary: dict[str, Any], ct_summary: dict[str, Any],
                      final_attack: str) -> tuple[list[int], SanityReport]:
    """All checks for one run; returns CT's worst-case per-point robustness and the report."""
    report = SanityReport()
    ct.beta = beta
    combined, report.transfer = transfer_check(ct, x, y, base_adversarial, ct_robust, batch_size, device)
    sample = slice(0, min(BUDGET_SAMPLE, len(x)))
    stats = slice(0, min(STATS_SAMPLE, len(x)))
    report.budget = {"n": sample.stop, "steps": BUDGET_STEPS}
    for name, b in (("base", 1.0), ("ct", beta)):
        ct.beta = b
        report.budget[name] = budget_sweep(ct, x[sample], y[sample], threat, eps, seed, batch_size, device)
        report.logits[name] = logit_stats(ct, x[stats], y[stats], device)
    ct.beta = beta
    base_after, ct_after = base_summary.get("robust_accuracy_after"), ct_summary.get("robust_accuracy_after")
    if base_after and ct_after:
        report.breakdown = {"base": base_after, "ct": ct_after}
    return combined, report
