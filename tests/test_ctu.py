"""The CT unit against the reference formula (float64), its limits and its argument checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ctrobust import ctu


def reference_ctu(x: torch.Tensor, beta: float, c: float = 0.5) -> torch.Tensor:
    """The reference code's formula, written out independently."""
    s = 1 - beta + 1e-6
    return c * torch.sigmoid(beta * x / s) * x + (1 - c) * F.softplus(x / s, threshold=20) * s


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.7, 0.85, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("c", [0.0, 0.5, 1.0])
def test_matches_reference_formula(beta: float, c: float) -> None:
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    got, want = ctu(x, beta, c), reference_ctu(x, beta, c)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-12)


def test_beta_one_is_exactly_relu() -> None:
    x = torch.randn(1000, dtype=torch.float64) * 10
    assert torch.equal(ctu(x, 1.0), torch.relu(x))


def test_beta_zero_is_quarter_x_plus_half_softplus() -> None:
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    want = 0.25 * x + 0.5 * F.softplus(x / (1 + 1e-6)) * (1 + 1e-6)
    assert torch.allclose(ctu(x, 0.0), want, rtol=1e-6)


def test_approaches_relu_as_beta_goes_to_one() -> None:
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    errors = [float((ctu(x, b) - torch.relu(x)).abs().max()) for b in (0.5, 0.9, 0.99, 0.999)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3


def test_gradient_matches_reference() -> None:
    x = torch.randn(256, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(ctu(x, 0.9).sum(), x)
    (g2,) = torch.autograd.grad(reference_ctu(x, 0.9).sum(), x)
    assert torch.allclose(g1, g2, rtol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.0001, 2, math.nan, "x"])
def test_beta_outside_unit_interval_raises(bad: object) -> None:
    with pytest.raises(ValueError, match="beta"):
        ctu(torch.zeros(3), bad)  # type: ignore[arg-type]


def test_c_outside_unit_interval_raises() -> None:
    with pytest.raises(ValueError, match="`c`"):
        ctu(torch.zeros(3), 0.9, c=1.5)
