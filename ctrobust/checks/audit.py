"""``ctrobust audit-attack``: the evidence of a stored run at full size, for a GPU (opt-in).

What the per-run checks do cheaply, done thoroughly on one stored run:

- the binarization test with hundreds of samples and up to 999 inner points, on CT at the chosen
  beta and on the original model, under several attacks: APGD with the cross-entropy and with a
  margin loss, FAB, Square, the run's reported attack and its selection attack; and the
  unbounded-eps variant (every sample must fall when eps covers the whole box);
- the binarized success rate of the selection attack along the whole beta grid: does the attack that
  chooses beta weaken near the chosen beta?
- the selection attack's fidelity: on the same selection points, its robust accuracy and
  AutoAttack's at every beta of the grid, and their rank correlation (does the cheap attack rank
  betas as AutoAttack does?);
- Pintor et al.'s indicators of attack failure ("Indicators of Attack Failure", NeurIPS 2022) on
  ctrobust's own PGD: silent success, incomplete optimisation (loss still rising by more than 5% over
  the last 10 steps), unavailable gradients, unstable predictions, and failure of the unconstrained
  attack (eps covering the whole box; the run's own eps is never changed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

from ctrobust.attacks.autoattack import apgd_ce
from ctrobust.attacks.evaluation import attack_and_check
from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.attacks.registry import BENCHMARK_ATTACK
from ctrobust.attacks.runners import AttackFn
from ctrobust.attacks.spec import AttackSpec
from ctrobust.checks import binarization as bz
from ctrobust.results.result import RunResult
from ctrobust.threats import ThreatModel

TRAJECTORY_WINDOW = 10
INCOMPLETE_THRESHOLD = 0.05
AUDIT_VERSION = 1


@dataclass(frozen=True)
class AuditSettings:
    """How big the audit is; every field is recorded with its result."""

    samples: int = 200
    inner: int = 999
    square_queries: int = 5000
    grid: bool = True
    fidelity_points: int | None = None  # default: the whole selection split
    trajectory_points: int = 100
    pgd_steps: int = 50
    seed: int | None = None  # default: the run's seed

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("samples", "inner", "square_queries", "grid", "fidelity_points",
                                              "trajectory_points", "pgd_steps", "seed")}


def margin_apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, threat: ThreatModel, seed: int,
                steps: int) -> torch.Tensor:
    """APGD on the margin loss (largest other logit minus the true one), through pyautoattack's DLR slot."""
    from pyautoattack.autopgd_base import APGDAttack

    class Margin(APGDAttack):
        def dlr_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
            others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
            return others.amax(1) - true

    attack = Margin(model, n_iter=steps, norm=threat.value, n_restarts=1, eps=eps, seed=seed, loss="dlr",
                    device=x.device)
    return attack.perturb(x, y)


def binarized_attacks(run: RunResult, threat: ThreatModel, seed: int, square_queries: int
                      ) -> dict[str, tuple[bz.AttackFn, int]]:
    """The attacks the audit runs on the binarized models, each with its query budget (for the random baseline)."""
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack

    final = AttackSpec(**_spec_fields(run.settings.get("attack_config") or {}))
    select = AttackSpec(**_spec_fields(run.settings.get("select_attack_config") or {}))
    reported = bz.binarized_attack(final, threat, seed)
    chooser = bz.binarized_attack(select, threat, seed)

    def fab(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return FABAttack_PT(model, norm=threat.value, n_restarts=1, n_iter=100, eps=eps, seed=seed,
                            device=x.device).perturb(x, y)

    def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return SquareAttack(model, norm=threat.value, n_queries=square_queries, eps=eps, p_init=0.8, seed=seed,
                            device=x.device, resc_schedule=False).perturb(x, y)

    attacks: dict[str, tuple[AttackFn, int]] = {
        "apgd-ce": (lambda m, x, y, eps: apgd_ce(m, x, y, eps, threat, 100, seed), 100),
        "apgd-margin": (lambda m, x, y, eps: margin_apgd(m, x, y, eps, threat, seed, 100), 100),
        "fab": (fab, 100),
        "square": (square, square_queries),
    }
    # The run's own attacks, each as its registry entry runs it on a binarized model (left out where it cannot).
    for label, attack in ((f"reported ({run.attack})", reported), (f"selection ({run.select_attack})", chooser)):
        if not isinstance(attack, str):
            attacks[label] = (attack.attack, attack.queries)
    return attacks


def _spec_fields(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k in ("name", "steps", "restarts", "step_size", "version")}


def unbounded_eps(threat: ThreatModel, x: torch.Tensor) -> float:
    """An eps whose ball holds the whole box [0, 1]^d around any point of it."""
    return NORM_BALLS[threat].box_diameter(x[0].numel())


@dataclass
class AuditProgress:
    """Where the audit is, for a bar: ``step(label)`` is called before each unit of work."""

    step: Callable[[str], None] = lambda _label: None


def plan_steps(run: RunResult, settings: AuditSettings) -> int:
    grid = len(run.candidates) if settings.grid else 0
    return 2 * (1 + 6 + 1) + grid + 2 + (2 * len(run.candidates) if settings.fidelity_points != 0 else 0)


def audit_run(run: RunResult, ct: Any, x_eval: torch.Tensor, y_eval: torch.Tensor, x_select: torch.Tensor,
              y_select: torch.Tensor, device: torch.device, settings: AuditSettings, batch_size: int,
              progress: AuditProgress | None = None) -> dict[str, Any]:
    """Run every part of the audit on ``ct`` (the run's model, CT-wrapped); returns the JSON-able result."""
    progress = progress or AuditProgress()
    threat, eps = run.threat, float(run.eps or 0.0)
    seed = run.seed if settings.seed is None else settings.seed
    clean = [i for i, (b, c) in enumerate(zip(run.per_example["base"]["clean"], run.per_example["ct"]["clean"],
                                              strict=True)) if b and c]
    positions = bz.sample_positions(clean, settings.samples, seed)
    if not positions:
        from ctrobust.errors import CtrobustError

        raise CtrobustError(f"run {run.run_id}: no evaluation point is classified correctly by both arms; "
                            "there is nothing for an attack audit to test.")
    planted = bz.plant(x_eval, positions, threat, eps, seed, n_inner=settings.inner)
    attacks = binarized_attacks(run, threat, seed, settings.square_queries)
    out: dict[str, Any] = {"audit_version": AUDIT_VERSION, "run_id": run.run_id, "beta": run.beta,
                           "settings": settings.to_dict(), "seed": seed, "samples": len(positions),
                           "inner_points": settings.inner + 1, "arms": {}}
    big = unbounded_eps(threat, x_eval)
    for name, beta in (("ct", run.beta), ("base", 1.0)):
        ct.beta = beta
        progress.step(f"binarize {name} (beta {beta:g})")
        binarized = bz.binarize(ct, planted, batch_size, device)
        arm: dict[str, Any] = {"beta": beta, "set_up": int(binarized.valid.sum()), "attacks": {}}
        for label, (attack, queries) in attacks.items():
            progress.step(f"{name}: {label}")
            found = bz.attack_samples(binarized, planted, threat, eps, attack, device)
            randomly = bz.random_baseline(binarized.model, planted, threat, eps, queries, seed, batch_size,
                                           device) & binarized.valid
            arm["attacks"][label] = bz.summarise(name, label, binarized, found, randomly).to_dict()
        progress.step(f"{name}: unbounded eps")
        found = bz.attack_samples(binarized, planted, threat, big, attacks["apgd-ce"][0], device)
        arm["unbounded"] = {"eps": big, "found": int(found.sum()), "m": int(binarized.valid.sum())}
        out["arms"][name] = arm
    select_fn = attacks.get(f"selection ({run.select_attack})", (None, 0))[0]
    if settings.grid and select_fn is not None:
        out["grid"] = {}
        for beta in run.candidates:
            ct.beta = beta
            progress.step(f"grid: selection attack at beta {beta:g}")
            binarized = bz.binarize(ct, planted, batch_size, device)
            found = bz.attack_samples(binarized, planted, threat, eps, select_fn, device)
            m = int(binarized.valid.sum())
            out["grid"][repr(float(beta))] = {"found": int(found.sum()), "m": m}
    out["trajectory"] = {}
    for name, beta in (("ct", run.beta), ("base", 1.0)):
        ct.beta = beta
        progress.step(f"{name}: PGD indicators of attack failure")
        n = min(settings.trajectory_points, len(x_eval))
        out["trajectory"][name] = pgd_indicators(ct, x_eval[:n].to(device), y_eval[:n].to(device), threat, eps,
                                                 settings.pgd_steps, seed, big)
    if settings.fidelity_points != 0:
        out["fidelity"] = selection_fidelity(run, ct, x_select, y_select, device, settings, batch_size, seed,
                                             progress)
    ct.beta = run.beta
    return out


def pgd_indicators(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float, steps: int,
                   seed: int, unbounded: float) -> dict[str, Any]:
    """Pintor et al.'s indicators on ctrobust's PGD (one restart, step 2.5 eps / steps), per point, counted."""
    trace = _pgd_trace(model, x, y, threat, eps, steps, seed)
    losses = trace["losses"]  # steps x n
    fooled_ever, fooled_last = trace["fooled_ever"], trace["fooled_last"]
    clean = trace["clean"]
    window = min(TRAJECTORY_WINDOW, steps - 1)
    before, after = losses[-window - 1], losses[-1]
    rising = (after - before) / before.abs().clamp_min(1e-12) > INCOMPLETE_THRESHOLD
    incomplete = rising & clean & ~fooled_ever
    unconstrained = _pgd_trace(model, x, y, threat, unbounded, steps, seed)
    unstable = _unstable(model, trace["x_last"], y, eps)
    return {
        "n": int(len(x)), "clean": int(clean.sum()), "steps": steps,
        "silent_success": int((fooled_ever & ~fooled_last).sum()),
        "incomplete_optimisation": int(incomplete.sum()),
        "unavailable_gradients": int((trace["grad_norm0"] == 0).logical_and(clean).sum()),
        "unstable_predictions": int((unstable & clean).sum()),
        "unconstrained_failure": int((clean & ~unconstrained["fooled_ever"]).sum()),
        "robust": int((clean & ~fooled_ever).sum()),
    }


def _pgd_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float, steps: int,
               seed: int) -> dict[str, torch.Tensor]:
    ball = NORM_BALLS[threat]
    gen = torch.Generator().manual_seed(seed)
    alpha = 2.5 * eps / steps
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    x_adv = ball.random_start(x, eps, gen)
    losses, fooled_ever, grad_norm0 = [], torch.zeros_like(clean), None
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        if grad_norm0 is None:
            grad_norm0 = grad.flatten(1).norm(dim=1)
        losses.append(loss.detach())
        fooled_ever |= (logits.argmax(1) != y).detach()
        with torch.no_grad():
            x_adv = ball.project(x_adv + alpha * ball.ascent(grad), x, eps)
    with torch.no_grad():
        fooled_last = model(x_adv).argmax(1) != y
    fooled_ever |= fooled_last
    return {"losses": torch.stack(losses), "fooled_ever": fooled_ever & clean, "fooled_last": fooled_last & clean,
            "clean": clean, "grad_norm0": grad_norm0 if grad_norm0 is not None else torch.zeros(len(x)),
            "x_last": x_adv.detach()}


def _unstable(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, draws: int = 10) -> torch.Tensor:
    """Points whose prediction at the attack's last point changes under tiny noise (0.01 eps, clipped)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        base = model(x).argmax(1)
        changed = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(draws):
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * 0.01 * eps
            changed |= model((x + noise).clamp(0, 1)).argmax(1) != base
    return changed


def selection_fidelity(run: RunResult, ct: Any, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                       settings: AuditSettings, batch_size: int, seed: int,
                       progress: AuditProgress) -> dict[str, Any]:
    """The selection attack's and AutoAttack's robust accuracy at every beta on the same selection points."""
    n = len(x) if settings.fidelity_points is None else min(settings.fidelity_points, len(x))
    x, y = x[:n], y[:n]
    select = AttackSpec(**_spec_fields(run.settings.get("select_attack_config") or {}))
    reference = AttackSpec(BENCHMARK_ATTACK)
    curves: dict[str, dict[str, float]] = {"selection": {}, "autoattack": {}}
    eps = run.eps
    assert eps is not None  # an audit is of a norm-bounded run
    for beta in run.candidates:
        ct.beta = beta
        progress.step(f"fidelity: selection attack at beta {beta:g}")
        curves["selection"][repr(float(beta))] = attack_and_check(ct, x, y, run.threat, eps, select, seed,
                                                                  batch_size, device).robust_accuracy
        progress.step(f"fidelity: AutoAttack at beta {beta:g}")
        curves["autoattack"][repr(float(beta))] = attack_and_check(ct, x, y, run.threat, eps, reference, seed,
                                                                   batch_size, device).robust_accuracy
    betas = list(curves["selection"])
    a = [curves["selection"][b] for b in betas]
    b = [curves["autoattack"][k] for k in betas]
    rho = stats.spearmanr(a, b).statistic if len(betas) > 2 else float("nan")
    tau = stats.kendalltau(a, b).statistic if len(betas) > 2 else float("nan")
    best = {name: max(curve, key=lambda k, c=curve: (c[k], float(k))) for name, curve in curves.items()}  # type: ignore[misc]
    return {"n": n, "curves": curves, "spearman": _finite(rho), "kendall": _finite(tau),
            "best_beta": {k: float(v) for k, v in best.items()}}


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)
