"""Attacks against closed-form robust accuracy of a linear classifier, and the success re-check."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import ctrobust.attacks.runners as runners
from ctrobust import evaluate
from ctrobust.attacks.verify import perturbation_norm
from ctrobust.errors import CtrobustError
from ctrobust.threats import ThreatModel


class Linear2(nn.Module):
    """Linear model with logits (-f/2, f/2, -100, -101), f = w.x + b: the margin to the boundary is closed-form.

    The last two classes never compete; they are there because AutoAttack's targeted DLR loss needs four.
    """

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w)
        self.b = b

    def f(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.f(x)
        return torch.stack([-f / 2, f / 2, torch.full_like(f, -100.0), torch.full_like(f, -101.0)], dim=1)


def linear_problem(threat: ThreatModel, eps: float, n: int = 300, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    d = 64
    w = (torch.rand(d, generator=gen) + 0.5) * torch.where(torch.rand(d, generator=gen) < 0.5, -1.0, 1.0)
    model = Linear2(w / d, 0.0)
    x = 0.3 + 0.4 * torch.rand(n * 2, 1, 8, 8, generator=gen)  # box never binds for these eps
    f = model.f(x).detach()
    # 80% of labels agree with sign(f): many correct points, some wrong ones
    y = torch.where(torch.rand(n * 2, generator=gen) < 0.8, (f > 0).long(), 1 - (f > 0).long())
    dual = w.abs().sum() / d if threat is ThreatModel.LINF else (w / d).norm()
    margin = f.abs() / dual
    keep = (margin - eps).abs() > 0.05 * eps  # leave out points too close to call
    x, y, f, margin = x[keep][:n], y[keep][:n], f[keep][:n], margin[keep][:n]
    correct = (f > 0).long() == y
    return model, x, y, correct & (margin > eps)


@pytest.mark.parametrize("threat,eps", [(ThreatModel.LINF, 0.02), (ThreatModel.L2, 0.1)])
@pytest.mark.parametrize("attack", ["pgd", "apgd-ce", "autoattack"])
def test_attacks_reach_closed_form_robust_accuracy(threat: ThreatModel, eps: float, attack: str) -> None:
    model, x, y, robust_true = linear_problem(threat, eps)
    assert 0.1 < robust_true.float().mean() < 0.9  # a problem where both outcomes occur
    res = evaluate(model, x, y, threat, eps=eps, attack=attack, seed=0, batch_size=128)
    assert torch.equal(res.robust_correct, robust_true)
    assert res.rejected == 0


def test_autoattack_on_five_classes_caps_targets() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 5))
    x, y = torch.rand(20, 1, 16, 16), torch.randint(0, 5, (20,))
    res = evaluate(model, x, y, "linf", eps=0.03, attack="autoattack", seed=1, batch_size=64)
    assert res.robust_accuracy <= res.clean_accuracy


def test_claimed_success_outside_ball_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, y, _ = linear_problem(ThreatModel.LINF, 0.02)

    def cheating_attack(model, x, y, clean_correct, eps, threat, spec, seed, batch_size):  # type: ignore[no-untyped-def]
        f = model.f(x).detach()
        return (x - torch.sign(f).view(-1, 1, 1, 1) * 10 * eps).clamp(0, 1), {}  # far outside the ball

    monkeypatch.setattr(runners, "run_pgd", cheating_attack)  # what the pgd entry's runner names
    res = evaluate(model, x, y, "linf", eps=0.02, attack="pgd")
    assert res.rejected > 0
    assert torch.equal(res.robust_correct, res.clean_correct)


def test_results_stay_in_ball_and_box() -> None:
    model, x, y, _ = linear_problem(ThreatModel.L2, 0.1)
    from ctrobust.attacks.pgd import pgd_attack

    x_adv = pgd_attack(model, x, y, 0.1, ThreatModel.L2, steps=10).x_adv
    assert float(perturbation_norm(x_adv - x, ThreatModel.L2).max()) <= 0.1 + 1e-5
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1


def test_inputs_outside_unit_box_are_refused() -> None:
    model, x, y, _ = linear_problem(ThreatModel.LINF, 0.02)
    with pytest.raises(CtrobustError, match=r"\[0, 1\]"):
        evaluate(model, x * 5 - 2, y, "linf", eps=0.02)


def test_eps_none_needs_dataset() -> None:
    model, x, y, _ = linear_problem(ThreatModel.LINF, 0.02)
    with pytest.raises(CtrobustError, match="eps"):
        evaluate(model, x, y, "linf", attack="pgd")
    res = evaluate(model, x, y, "linf", attack="pgd", dataset="fashion-mnist")
    assert res.eps == 0.05


def l1_linear_problem(eps: float, n: int = 200, seed: int = 0):
    """A linear problem under L1 where the box binds: the smallest L1 perturbation inside [0, 1] that flips
    sign(f) is a fractional knapsack (coordinates by |w|, each moved as far as the box lets it)."""
    gen = torch.Generator().manual_seed(seed)
    d = 64
    w = torch.rand(d, generator=gen) ** 2 * torch.where(torch.rand(d, generator=gen) < 0.5, -1.0, 1.0)
    model = Linear2(w, 0.0)
    x = torch.rand(n * 3, 1, 8, 8, generator=gen)
    with torch.no_grad():
        f = model.f(x) - model.f(x).median()
        model.b = float(-model.f(x).median())
    flat = x.flatten(1)
    minimal = torch.full((len(x),), float("inf"))
    order = w.abs().argsort(descending=True)
    for i in range(len(x)):
        need, used = float(f[i].abs()), 0.0
        for j in order.tolist():
            # the room coordinate j has to lower |f|: towards 0 or 1, against sign(f) * sign(w_j)
            room = float(flat[i, j]) if float(torch.sign(f[i]) * torch.sign(w[j])) > 0 else 1.0 - float(flat[i, j])
            gain = abs(float(w[j])) * room
            if gain >= need:
                used += need / abs(float(w[j]))
                minimal[i] = used
                break
            need, used = need - gain, used + room
    y = torch.where(torch.rand(len(x), generator=gen) < 0.85, (f > 0).long(), 1 - (f > 0).long())
    keep = (minimal - eps).abs() > 0.05 * eps  # leave out points too close to call
    x, y, f, minimal = x[keep][:n], y[keep][:n], f[keep][:n], minimal[keep][:n]
    return model, x, y, ((f > 0).long() == y) & (minimal > eps)


@pytest.mark.parametrize("attack", ["apgd-ce", "autoattack"])
def test_l1_attacks_reach_the_closed_form_robust_accuracy(attack: str) -> None:
    """AutoAttack with its own L1 settings (and APGD-CE) find every flip the knapsack says exists within eps."""
    model, x, y, robust_true = l1_linear_problem(eps=0.7)
    assert 0.1 < robust_true.float().mean() < 0.9
    res = evaluate(model, x, y, ThreatModel.L1, eps=0.7, attack=attack, seed=0, batch_size=128)
    assert torch.equal(res.robust_correct, robust_true)
    assert res.rejected == 0
    assert float(perturbation_norm(res.x_adv - x, ThreatModel.L1).max()) <= 0.7 * (1 + 1e-4)


def test_pgd_is_refused_under_l1_with_what_to_use() -> None:
    model, x, y, _ = l1_linear_problem(eps=2.0, n=10)
    with pytest.raises(CtrobustError, match="apgd-ce or autoattack"):
        evaluate(model, x, y, "l1", eps=2.0, attack="pgd")


def test_l1_projection_keeps_ball_and_box() -> None:
    from ctrobust.attacks.norms import NORM_BALLS

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 8, 8, generator=gen)
    far = x + 3 * torch.randn(16, 1, 8, 8, generator=gen)
    projected = NORM_BALLS[ThreatModel.L1].project(far, x, 2.0)
    assert float(perturbation_norm(projected - x, ThreatModel.L1).max()) <= 2.0 * (1 + 1e-4)
    assert float(projected.min()) >= 0 and float(projected.max()) <= 1
