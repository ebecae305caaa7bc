"""The checks' numbers and the warnings they call for, as stored with a result: no torch.

``ctrobust.checks.sanity`` runs the checks against weak attacks and ``ctrobust.checks`` the tests of the attack;
what they measure lands in a :class:`SanityReport`, which the result, the store and the reports read
without importing a model or an attack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctrobust.results.stats import wilson_interval

BUDGET_FACTORS = (1, 2, 4, 8)  # 1x: the reference attack the reported one is compared with
REFERENCE_P = 0.05
# A re-attack's extra breaks always count; they are a warning from 2 points and 5% of the survivors on
# (one point is within the attack's own noise; 5% is Pintor et al.'s threshold for incomplete optimisation).
INCOMPLETE_WARN_MIN, INCOMPLETE_WARN_SHARE = 2, 0.05
ARM_LABELS = {"base": "the original model", "ct": "CT"}
NEAR_ZERO_ROBUST = 0.02  # robust accuracy at 8x eps above this is a warning


@dataclass
class ArmBinarization:
    """One arm's outcome: samples set up, attack successes, random-baseline successes, verdict."""

    label: str
    attack: str
    verdict: str
    m: int = 0
    found: int = 0
    random_found: int = 0
    setup_failed: int = 0
    features: str = ""
    note: str = ""
    success: list[int] = field(default_factory=list)  # per sample: 1 found, 0 not, -1 setup failed

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.found, self.m)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.ci
        return {"label": self.label, "attack": self.attack, "verdict": self.verdict, "m": self.m, "found": self.found,
                "ci": [low, high], "random_found": self.random_found, "setup_failed": self.setup_failed,
                "features": self.features, "note": self.note, "success": list(self.success)}

    def line(self, short: bool = False) -> str:
        if self.verdict == "NOT RUN":
            return f"{self.label}: NOT RUN ({self.note})"
        if short:
            return f"{self.label} {self.found}/{self.m} {self.verdict}"
        low, high = self.ci
        rate = self.found / self.m if self.m else 0.0
        return (f"{self.label} {self.attack}: {self.found}/{self.m} found ({100 * rate:.0f}%, CI {100 * low:.0f}-"
                f"{100 * high:.0f}%) {self.verdict}")


@dataclass
class SanityReport:
    """The checks' numbers and the warnings they raise."""

    transfer: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    logits: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    attack_evidence: dict[str, Any] = field(default_factory=dict)  # per arm: flags, rejected, silent, unattacked
    reference: dict[str, Any] = field(default_factory=dict)  # per arm: the reported attack against APGD-CE at 1x
    incomplete: dict[str, Any] = field(default_factory=dict)  # CT's survivors re-attacked with twice the steps
    gradients: dict[str, Any] = field(default_factory=dict)  # per arm: gradient fidelity
    binarization: dict[str, Any] = field(default_factory=dict)  # per arm, and the McNemar test between them
    seconds: dict[str, float] = field(default_factory=dict)  # what each check cost
    not_run: dict[str, str] = field(default_factory=dict)  # per check that could not run on this model: why
    sizes: dict[str, Any] = field(default_factory=dict)  # the checks' sizes and the budget they came from

    FIELDS = ("transfer", "budget", "logits", "breakdown", "warnings", "attack_evidence", "reference", "incomplete",
              "gradients", "binarization", "seconds", "not_run", "sizes")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SanityReport:
        """Stored checks, older ones (without the attack evidence) included."""
        return cls(**{name: data[name] for name in cls.FIELDS if name in data})

    @property
    def binarization_failed(self) -> bool:
        return any(arm.get("verdict") == "FAIL" for arm in self.binarization.get("arms", {}).values())

    def binarization_line(self) -> str | None:
        arms = self.binarization.get("arms", {})
        if not arms:
            note = self.binarization.get("note")
            return f"binarization  NOT RUN ({note})" if note else None
        parts = [ArmBinarization(**{k: v for k, v in arm.items() if k != "ci"}).line(short=i > 0)
                 for i, arm in enumerate(a for a in (arms.get("ct"), arms.get("base")) if a)]
        note = self.binarization.get("note")
        return "binarization  " + " | ".join(parts) + (f"  ({note})" if note else "")

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
            factors = [f for f in BUDGET_FACTORS if str(f) in b.get("base", {})]
            cells = ", ".join(f"{f}x eps: base {100 * b['base'][str(f)]:.1f}% / CT {100 * b['ct'][str(f)]:.1f}%"
                              for f in factors)
            out.append(f"budget sweep  APGD-CE on {b['n']} points, {cells}")
        for name, r in self.reference.items():
            out.append(f"reference     {ARM_LABELS.get(name, name)}: APGD-CE {r['steps']} steps at eps breaks "
                       f"{r['only_reference']} of the {r['n']} sampled points the reported attack left robust, "
                       f"the reported attack {r['only_reported']} it missed (McNemar p={r['p_value']:.3g})")
        if self.incomplete:
            i = self.incomplete
            out.append(f"re-attack     CT's survivors with {i['steps']} steps: {i['broken']} of {i['m']} broken "
                       "(counted as not robust)")
        for name in ("base", "ct"):
            s = self.logits.get(name)
            if s:
                out.append(f"logits {name:<6} max logit {s['max_logit_mean']:.2f}, margin median {s['margin_median']:.2f}, "
                           f"input-gradient norm mean {s['grad_norm_mean']:.3g} / median {s['grad_norm_median']:.3g}, "
                           f"{100 * s['zero_grad_share']:.1f}% near zero")
        for name, g in self.gradients.items():
            ratio = f", median ratio {g['ratio_median']:.3g}" if g.get("ratio_median") is not None else ""
            out.append(f"gradients     {ARM_LABELS.get(name, name)}: autograd and finite differences disagree on "
                       f"{g['disagreeing']} of {g['n']} points{ratio}")
        line = self.binarization_line()
        if line:
            out.append(line)
        if self.breakdown:
            steps = " -> ".join(f"{k} {100 * v:.1f}%" for k, v in self.breakdown.get("ct", {}).items())
            out.append(f"AutoAttack    CT after each attack: {steps}")
        out += [f"NOT RUN       {check}: {why}" for check, why in self.not_run.items() if check != "binarization"]
        out += [f"WARNING       {w}" for w in self.warnings]
        return out


def judge(report: SanityReport, gain_points: float, final_attack: str, plain_gradient: bool = False) -> None:
    """Add the warnings the numbers call for; ``plain_gradient``: the final attack's entry says a gain resting on it
    alone is to be confirmed with a stronger attack."""
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
    if gain_points > 0 and plain_gradient:
        report.warnings.append("the gain rests on plain PGD alone, which overstates the robustness of smooth models; "
                               "confirm it with --attack autoattack")
    _judge_attack_evidence(report, final_attack)


def _judge_attack_evidence(report: SanityReport, final_attack: str) -> None:
    for name, evidence in report.attack_evidence.items():
        label = ARM_LABELS.get(name, name)
        for flag in evidence.get("autoattack_flags", []):
            report.warnings.append(f"AutoAttack flagged {label}: {flag}")
        if evidence.get("rejected"):
            report.warnings.append(f"the re-check rejected {evidence['rejected']} adversarial examples the attack "
                                   f"claimed on {label} (outside the eps-ball or [0, 1], or not misclassified again): "
                                   "the attack or the model is not behaving as expected")
        if evidence.get("unattacked"):
            report.warnings.append(f"{evidence['unattacked']} clean-correct points of {label} were never attacked "
                                   "(the attack's own clean pass disagreed): counted as not robust")
    for name, r in report.reference.items():
        if r.get("weaker"):
            report.warnings.append(
                f"the reported attack ({final_attack}) is weaker than a {r['steps']}-step APGD-CE on "
                f"{ARM_LABELS.get(name, name)}: APGD-CE broke {r['only_reference']} of the {r['n']} sampled points it "
                f"left robust against {r['only_reported']} the other way (McNemar p={r['p_value']:.3g}); those points "
                "are counted as not robust, the others are not re-checked")
    i = report.incomplete
    if i.get("broken", 0) >= INCOMPLETE_WARN_MIN and i["broken"] > INCOMPLETE_WARN_SHARE * i["m"]:
        report.warnings.append(f"incomplete optimisation: twice the steps broke {i['broken']} of {i['m']} of CT's "
                               "survivors (counted as not robust); the reported attack had not converged")
    for name, g in report.gradients.items():
        if g.get("n") and g["disagreeing"] > 0.1 * g["n"]:
            report.warnings.append(
                f"gradient fidelity: on {g['disagreeing']} of {g['n']} points of {ARM_LABELS.get(name, name)} the input "
                "gradient disagrees with finite differences of its forward pass (ratio outside [0.5, 2]): a wrong "
                "backward, a straight-through layer or scrambled gradients; gradient attacks are not to be trusted")
    arms = report.binarization.get("arms", {})
    for name, arm in arms.items():
        if arm.get("verdict") == "FAIL":
            report.warnings.append(
                f"binarization test FAILED on {ARM_LABELS.get(name, name)}: the attack found an adversarial example "
                f"that provably exists within eps in only {arm['found']} of {arm['m']} binarized copies of the model: "
                "its robust accuracy is not to be trusted")
    versus = report.binarization.get("mcnemar")
    if versus and versus["only_base"] > versus["only_ct"] and versus["p_value"] < REFERENCE_P:
        report.warnings.append(
            "the attack is weaker on CT than on the original model: the gain may be the attack's, not the model's "
            f"(binarization test, McNemar p={versus['p_value']:.3g}: {versus['only_base']} samples solved on the original "
            f"model only, {versus['only_ct']} on CT only)")
