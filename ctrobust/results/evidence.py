"""The checks' numbers and the warnings they call for, as stored with a result: no torch.

``ctrobust.checks.sanity`` runs the checks against weak attacks and ``ctrobust.checks`` the tests of the attack;
what they measure lands in a :class:`SanityReport`, which the result, the store and the reports read
without importing a model or an attack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from ctrobust.outputs import plural
from ctrobust.results.stats import wilson_interval

BUDGET_FACTORS = (1, 2, 4, 8)  # 1x: the reference attack the reported one is compared with
REFERENCE_P = 0.05
# A re-attack's extra breaks always count; they are a warning from 2 points and 5% of the survivors on
# (one point is within the attack's own noise; 5% is Pintor et al.'s threshold for incomplete optimisation).
INCOMPLETE_WARN_MIN, INCOMPLETE_WARN_SHARE = 2, 0.05
ARM_LABELS = {"base": "the original model", "ct": "CT"}
MAX_DISAGREEING_SHARE = 0.1  # gradient fidelity: more points than this disagreeing is a warning
NEAR_ZERO_ROBUST = 0.02  # robust accuracy at 8x eps above this is a warning
# The logits' scale (median over points of their standard deviation across classes) outside which cross-entropy
# attacks weaken: below, the softmax is nearly uniform and the loss nearly flat; above, it saturates and its
# gradient underflows. A trained classifier's is a few units (the shipped CNN's: 6).
LOW_LOGIT_SPREAD = 1.0
HIGH_LOGIT_SPREAD = 100.0


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


_R = TypeVar("_R")


def _record(kind: type[_R], data: Any) -> _R | None:
    """A stored check's numbers as their record; keys it does not know (an older or newer ctrobust) are left
    out, missing ones take their defaults; an empty or absent entry is None (the check did not run)."""
    if not isinstance(data, dict) or not data:
        return None
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{k: v for k, v in data.items() if k in names})


def _plain(record: Any) -> dict[str, Any]:
    return {} if record is None else asdict(record)


def _per_arm(kind: type[_R], data: Any) -> dict[str, _R]:
    if not isinstance(data, dict):
        return {}
    return {arm: r for arm, value in data.items() if (r := _record(kind, value)) is not None}


@dataclass
class Transfer:
    """The base model's adversarial examples scored on CT: how many fool it, how many of those its own attack
    missed (counted as not robust), CT's robust accuracy before and after."""

    base_adversarials: int = 0
    fooled_ct: int = 0
    transfer_only: int = 0
    white_box_robust: float = 0.0
    combined_robust: float = 0.0


@dataclass
class BudgetSweep:
    """APGD-CE at 1x, 2x, 4x and 8x eps on ``n`` points: robust accuracy per factor (as text) and arm."""

    n: int = 0
    steps: int = 0
    base: dict[str, float] = field(default_factory=dict)
    ct: dict[str, float] = field(default_factory=dict)

    def arm(self, name: str) -> dict[str, float]:
        return self.base if name == "base" else self.ct


@dataclass
class Reference:
    """The reported attack against the reference attack at eps on the same points (per arm): APGD-CE, and
    APGD-DLR beside it (``APGD-CE+DLR``: robust only if robust to both) where the model has three classes."""

    n: int = 0
    steps: int = 0
    only_reference: int = 0
    only_reported: int = 0
    p_value: float = 1.0
    weaker: bool = False
    attack: str = "APGD-CE"


@dataclass
class LogitStats:
    """Scale and margin of the clean logits and the input gradient's norm (per arm)."""

    max_logit_mean: float = 0.0
    margin_mean: float = 0.0
    margin_median: float = 0.0
    grad_norm_mean: float = 0.0
    grad_norm_median: float = 0.0
    zero_grad_share: float = 0.0
    spread_median: float | None = None  # the logits' standard deviation across classes, median over points


@dataclass
class ReAttack:
    """CT's survivors attacked again with twice the steps: ``broken`` of ``m``."""

    steps: int = 0
    m: int = 0
    broken: int = 0


@dataclass
class GradientFidelity:
    """Autograd against finite differences on ``n`` points (the ``flat`` others said nothing), per arm."""

    n: int = 0
    disagreeing: int = 0
    ratio_median: float | None = None
    flat: int = 0

    @property
    def share(self) -> float:
        return self.disagreeing / self.n if self.n else 0.0

    @property
    def suspicious(self) -> bool:
        """More than a tenth of the compared points disagree: gradient attacks are not to be trusted."""
        return self.n > 0 and self.share > MAX_DISAGREEING_SHARE


@dataclass
class AttackEvidence:
    """What the final attack itself reported on an arm: AutoAttack's flags, successes the re-check rejected,
    points never attacked, silent successes, a randomised model."""

    autoattack_flags: list[str] = field(default_factory=list)
    rejected: int = 0
    unattacked: int = 0
    silent_successes: int | None = None
    randomised: bool = False


@dataclass
class ArmsCompared:
    """Exact McNemar test on the binarization samples both arms set up."""

    n: int = 0
    only_base: int = 0
    only_ct: int = 0
    p_value: float = 1.0


@dataclass
class Binarization:
    """The binarization test on both arms (no arm: NOT RUN, ``note`` says why), and the test between them."""

    arms: dict[str, ArmBinarization] = field(default_factory=dict)
    note: str | None = None
    mcnemar: ArmsCompared | None = None
    samples: int = 0
    inner_points: int | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arms": {k: v.to_dict() for k, v in self.arms.items()}, "note": self.note,
                               "mcnemar": None if self.mcnemar is None else asdict(self.mcnemar),
                               "samples": self.samples}
        if self.inner_points is not None:
            out |= {"inner_points": self.inner_points, "seed": self.seed}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Binarization | None:
        if not isinstance(data, dict) or not data:
            return None
        arm_names = {f.name for f in fields(ArmBinarization)}
        arms = {k: ArmBinarization(**{n: v for n, v in a.items() if n in arm_names})
                for k, a in (data.get("arms") or {}).items() if isinstance(a, dict)}
        return cls(arms, data.get("note"), _record(ArmsCompared, data.get("mcnemar")),
                   int(data.get("samples") or 0), data.get("inner_points"), data.get("seed"))


@dataclass
class SanityReport:
    """The checks' numbers, each as its record (None or empty: the check did not run, ``not_run`` says why),
    and the warnings they raise."""

    transfer: Transfer | None = None
    budget: BudgetSweep | None = None
    logits: dict[str, LogitStats] = field(default_factory=dict)  # per arm
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)  # per arm: robust after each attack
    warnings: list[str] = field(default_factory=list)
    attack_evidence: dict[str, AttackEvidence] = field(default_factory=dict)  # per arm
    reference: dict[str, Reference] = field(default_factory=dict)  # per arm: the reported attack against APGD-CE
    incomplete: ReAttack | None = None  # CT's survivors re-attacked with twice the steps
    gradients: dict[str, GradientFidelity] = field(default_factory=dict)  # per arm
    binarization: Binarization | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # what each check cost
    not_run: dict[str, str] = field(default_factory=dict)  # per check that could not run on this model: why
    sizes: dict[str, Any] = field(default_factory=dict)  # the checks' sizes and the budget they came from

    def to_dict(self) -> dict[str, Any]:
        """As stored in result.json (``docs/result.schema.json``): a check that did not run is an empty object."""
        return {"transfer": _plain(self.transfer), "budget": _plain(self.budget),
                "logits": {k: asdict(v) for k, v in self.logits.items()}, "breakdown": self.breakdown,
                "warnings": self.warnings, "attack_evidence": {k: asdict(v) for k, v in self.attack_evidence.items()},
                "reference": {k: asdict(v) for k, v in self.reference.items()}, "incomplete": _plain(self.incomplete),
                "gradients": {k: asdict(v) for k, v in self.gradients.items()},
                "binarization": {} if self.binarization is None else self.binarization.to_dict(),
                "seconds": self.seconds, "not_run": self.not_run, "sizes": self.sizes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SanityReport:
        """Stored checks, older ones (without the attack evidence) included."""
        return cls(_record(Transfer, data.get("transfer")), _record(BudgetSweep, data.get("budget")),
                   _per_arm(LogitStats, data.get("logits")), dict(data.get("breakdown") or {}),
                   list(data.get("warnings") or []), _per_arm(AttackEvidence, data.get("attack_evidence")),
                   _per_arm(Reference, data.get("reference")), _record(ReAttack, data.get("incomplete")),
                   _per_arm(GradientFidelity, data.get("gradients")), Binarization.from_dict(data.get("binarization")),
                   dict(data.get("seconds") or {}), dict(data.get("not_run") or {}), dict(data.get("sizes") or {}))

    @property
    def binarization_failed(self) -> bool:
        return self.binarization is not None and any(a.verdict == "FAIL" for a in self.binarization.arms.values())

    def binarization_line(self) -> str | None:
        if self.binarization is None:
            return None
        arms, note = self.binarization.arms, self.binarization.note
        if not arms:
            return f"binarization  NOT RUN ({note})" if note else None
        parts = [arm.line(short=i > 0) for i, arm in enumerate(a for a in (arms.get("ct"), arms.get("base")) if a)]
        return "binarization  " + " | ".join(parts) + (f"  ({note})" if note else "")

    def lines(self) -> list[str]:
        out = []
        t = self.transfer
        if t is not None:
            out.append(f"transfer      base's {plural(t.base_adversarials, 'adversarial example')} fool CT on "
                       f"{t.fooled_ct}; {t.transfer_only} of them survived CT's own attack "
                       f"(counted as not robust: CT {100 * t.white_box_robust:.2f}% white-box -> "
                       f"{100 * t.combined_robust:.2f}% worst case)")
        b = self.budget
        if b is not None:
            factors = [f for f in BUDGET_FACTORS if str(f) in b.base]
            cells = ", ".join(f"{f}x eps: base {100 * b.base[str(f)]:.1f}% / CT {100 * b.ct[str(f)]:.1f}%"
                              for f in factors)
            out.append(f"budget sweep  APGD-CE on {b.n} points, {cells}")
        for name, r in self.reference.items():
            out.append(f"reference     {ARM_LABELS.get(name, name)}: {r.attack} {r.steps} steps at eps breaks "
                       f"{r.only_reference} of the {r.n} sampled points the reported attack left robust, "
                       f"the reported attack {r.only_reported} it missed (McNemar p={r.p_value:.3g})")
        if self.incomplete is not None:
            i = self.incomplete
            out.append(f"re-attack     CT's survivors with {i.steps} steps: {i.broken} of {i.m} broken "
                       "(counted as not robust)")
        for name in ("base", "ct"):
            s = self.logits.get(name)
            if s is not None:
                spread = f", spread {s.spread_median:.3g}" if s.spread_median is not None else ""
                out.append(f"logits {name:<6} max logit {s.max_logit_mean:.3g}{spread}, "
                           f"margin median {s.margin_median:.3g}, "
                           f"input-gradient norm mean {s.grad_norm_mean:.3g} / median {s.grad_norm_median:.3g}, "
                           f"{100 * s.zero_grad_share:.1f}% near zero")
        for name, g in self.gradients.items():
            ratio = f", median ratio {g.ratio_median:.3g}" if g.ratio_median is not None else ""
            out.append(f"gradients     {ARM_LABELS.get(name, name)}: autograd and finite differences disagree on "
                       f"{g.disagreeing} of {g.n} points{ratio}")
        line = self.binarization_line()
        if line:
            out.append(line)
        if self.breakdown:
            steps = " -> ".join(f"{k} {100 * v:.1f}%" for k, v in self.breakdown.get("ct", {}).items())
            out.append(f"AutoAttack    CT after each attack: {steps}")
        out += [f"NOT RUN       {check}: {why}" for check, why in self.not_run.items() if check != "binarization"]
        out += [f"WARNING       {w}" for w in self.warnings]
        return out


def judge(report: SanityReport, gain_points: float, final_attack: str, plain_gradient: bool = False,
          scale_sensitive: Sequence[str] = ()) -> None:
    """Add the warnings the numbers call for; ``plain_gradient``: the final attack's entry says a gain resting on it
    alone is to be confirmed with a stronger attack; ``scale_sensitive``: the run's attacks (as "the selection
    attack (apgd-ce)") whose loss the logits' scale can flatten."""
    t = report.transfer
    if t is not None and t.fooled_ct > 0 and t.transfer_only > 0:
        report.warnings.append(
            f"transfer from the base model fooled CT on {plural(t.transfer_only, 'point')} its own attack missed: "
            "CT's gradients may be misleading the white-box attack (those points are counted as not robust)")
    b = report.budget
    for name in ("base", "ct"):
        widest = b.arm(name).get(str(BUDGET_FACTORS[-1]), 0.0) if b is not None else 0.0
        if widest > NEAR_ZERO_ROBUST:
            label = "the base model" if name == "base" else "CT"
            report.warnings.append(
                f"{label} keeps {100 * widest:.1f}% robust accuracy at "
                f"{BUDGET_FACTORS[-1]}x eps: a gradient attack that cannot break it far outside the budget points to "
                "gradient masking, not robustness")
    for name in ("base", "ct"):
        s = report.logits.get(name)
        if s is not None and s.zero_grad_share > 0.5:
            label = "the base model" if name == "base" else "CT"
            report.warnings.append(f"{label}'s input gradients are near zero on {100 * s.zero_grad_share:.0f}% of "
                                   "points: gradient attacks cannot work on it")
    _judge_logit_scale(report, scale_sensitive)
    if gain_points > 0 and plain_gradient:
        report.warnings.append("the gain rests on plain PGD alone, which overstates the robustness of smooth models; "
                               "confirm it with --attack autoattack")
    _judge_attack_evidence(report, final_attack)


def _judge_logit_scale(report: SanityReport, scale_sensitive: Sequence[str]) -> None:
    """Logits far from unit scale, at either end: cross-entropy attacks weaken on them without a sign."""
    for name in ("base", "ct"):
        s = report.logits.get(name)
        if s is None or s.spread_median is None or LOW_LOGIT_SPREAD <= s.spread_median <= HIGH_LOGIT_SPREAD:
            continue
        label = "the base model" if name == "base" else "CT"
        small = s.spread_median < LOW_LOGIT_SPREAD
        why = ("so small that the softmax is nearly uniform and cross-entropy nearly flat" if small else
               "so large that the softmax saturates and cross-entropy's gradient underflows")
        weak = (" and ".join(scale_sensitive) + (" use" if len(scale_sensitive) > 1 else " uses") +
                " cross-entropy and may have missed points; ") if scale_sensitive else ""
        report.warnings.append(
            f"{label}'s logits are {why} (median spread {s.spread_median:.3g} across classes; a trained classifier's "
            f"is a few units): {weak}the reference attack's DLR loss does not see the scale. Return the logits "
            "unscaled (no temperature or constant after the last layer), or evaluate with --attack autoattack "
            "--select-attack apgd-dlr")


def _judge_attack_evidence(report: SanityReport, final_attack: str) -> None:
    for name, evidence in report.attack_evidence.items():
        label = ARM_LABELS.get(name, name)
        for flag in evidence.autoattack_flags:
            report.warnings.append(f"AutoAttack flagged {label}: {flag}")
        if evidence.rejected:
            report.warnings.append(f"the re-check rejected {plural(evidence.rejected, 'adversarial example')} the attack "
                                   f"claimed on {label} (outside the eps-ball or [0, 1], or not misclassified again): "
                                   "the attack or the model is not behaving as expected")
        if evidence.unattacked:
            were = "was" if evidence.unattacked == 1 else "were"
            report.warnings.append(f"{plural(evidence.unattacked, 'clean-correct point')} of {label} {were} never "
                                   "attacked (the attack's own clean pass disagreed): counted as not robust")
    for name, r in report.reference.items():
        if r.weaker:
            report.warnings.append(
                f"the reported attack ({final_attack}) is weaker than a {r.steps}-step {r.attack} on "
                f"{ARM_LABELS.get(name, name)}: {r.attack} broke {r.only_reference} of the {r.n} sampled points it "
                f"left robust against {r.only_reported} the other way (McNemar p={r.p_value:.3g}); those points "
                "are counted as not robust, the others are not re-checked")
    i = report.incomplete
    if i is not None and i.broken >= INCOMPLETE_WARN_MIN and i.broken > INCOMPLETE_WARN_SHARE * i.m:
        report.warnings.append(f"incomplete optimisation: twice the steps broke {i.broken} of {i.m} of CT's "
                               "survivors (counted as not robust); the reported attack had not converged")
    for name, g in report.gradients.items():
        if g.suspicious:
            report.warnings.append(
                f"gradient fidelity: on {g.disagreeing} of {g.n} points of {ARM_LABELS.get(name, name)} the input "
                "gradient disagrees with finite differences of its forward pass (ratio outside [0.5, 2]): a wrong "
                "backward, a straight-through layer or scrambled gradients; gradient attacks are not to be trusted")
    if report.binarization is None:
        return
    for name, arm in report.binarization.arms.items():
        if arm.verdict == "FAIL":
            report.warnings.append(
                f"binarization test FAILED on {ARM_LABELS.get(name, name)}: the attack found an adversarial example "
                f"that provably exists within eps in only {arm.found} of {arm.m} binarized copies of the model: "
                "its robust accuracy is not to be trusted")
    versus = report.binarization.mcnemar
    if versus is not None and versus.only_base > versus.only_ct and versus.p_value < REFERENCE_P:
        report.warnings.append(
            "the attack is weaker on CT than on the original model: the gain may be the attack's, not the model's "
            f"(binarization test, McNemar p={versus.p_value:.3g}: {plural(versus.only_base, 'sample')} solved on the "
            f"original model only, {versus.only_ct} on CT only)")
